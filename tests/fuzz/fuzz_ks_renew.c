/* fuzz_ks_renew.c - the payload of a renewal request (keyserver/renew_policy.c) on
 * arbitrary JSON: what a holder's signed request hands the signer once its signature
 * verifies.  The policy check runs too, on dates and a domain's own limits taken from the
 * input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "renew_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ks_renew_request req;
	struct err e = {0};
	json_t *body;
	int64_t dates[4] = {0};

	if (size < sizeof(dates))
		return 0;
	memcpy(dates, data, sizeof(dates));
	body = json_loadb((const char *)data + sizeof(dates), size - sizeof(dates),
	                  JSON_REJECT_DUPLICATES, NULL);
	(void)ks_renew_request_parse(body, 1800000000LL, &req, &e);
	/* Dates as a stored row may hold them: within +-2^40 s, which no real row exceeds. */
	struct ks_renew_state s = {.now = dates[0] % (1LL << 40),
	                           .not_before = dates[1] % (1LL << 40),
	                           .not_after = dates[2] % (1LL << 40),
	                           .issued_at = dates[3] % (1LL << 40)};
	const struct ks_renew_policy server = {.window = (long long)(data[0] % 3) * 86400,
	                                       .min_interval = 3600,
	                                       .max_lifetime = 0,
	                                       .cert_days = 365};
	/* A domain's own limits as a row may hold them (any sign, up to 900 days). */
	const struct ks_renew_limits own = {.window = dates[1] % (900 * 86400LL),
	                                    .min_interval = dates[2] % (900 * 86400LL),
	                                    .max_lifetime = dates[3] % (900 * 86400LL)};
	struct ks_renew_policy p;

	(void)ks_renew_limits_check(&server, &own, &e);
	ks_renew_policy_for(&server, &own, &p);
	(void)ks_renew_check(&p, &s, &e);
	(void)ks_renew_days(&p);
	json_decref(body);
	return 0;
}
