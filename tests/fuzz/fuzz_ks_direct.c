/* fuzz_ks_direct.c - the key server's direct endpoint parser (keyserver/direct_json.c) on
 * arbitrary JSON: the payload of a user's signed registration (PROTOCOL.md §6.5), with the
 * published object built back from whatever it accepts. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "direct_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ks_direct dr;
	struct err e = {0};
	json_t *body;

	if (size < 1)
		return 0;
	/* The first byte picks the limits: private hosts allowed or not. */
	const struct ks_direct_limits lim = {.max_lifetime = 86400, .allow_private = data[0] & 1};
	body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(body) && ks_direct_parse(body, 1800000000LL, &lim, &dr, &e) == 0) {
		json_t *out = ks_direct_json(&dr);
		if (out == NULL || strlen(dr.host) == 0 || dr.port < 1 || dr.port > 65535)
			__builtin_trap();
		json_decref(out);
	}
	json_decref(body);
	return 0;
}
