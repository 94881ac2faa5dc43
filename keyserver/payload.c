/*
 * payload.c - member and time checks shared by every signed request payload
 * (payload.h).  Pure functions.
 */
#include "payload.h"

#include <math.h>
#include <string.h>

const char *ks_payload_str(const json_t *p, const char *k)
{
	return json_string_value(json_object_get(p, k));
}

int ks_payload_only(const json_t *p, const char *const *known, size_t n, const char *what,
                    struct err *e)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)p, k, v)
	{
		size_t i = 0;
		while (i < n && strcmp(known[i], k) != 0)
			i++;
		if (i == n)
			return err_set(e, ERR_INPUT, "bad_request",
			               "the %s request has an unknown member \"%.40s\"", what, k);
	}
	return 0;
}

int ks_payload_issued(const json_t *p, long long now, long long *ms, struct err *e)
{
	const json_t *iss = json_object_get(p, "issued");
	double t = json_number_value(iss);

	/* 1e12 s is far beyond any clock; it keeps the product below in range. */
	if (!json_is_number(iss) || !isfinite(t) || t < 0 || t > 1e12)
		return err_set(e, ERR_INPUT, "bad_request",
		               "the signed payload needs \"issued\" in Unix seconds");
	*ms = json_is_integer(iss) ? (long long)json_integer_value(iss) * 1000 : llround(t * 1000);
	if (*ms / 1000 < now - KS_PAYLOAD_SKEW || *ms / 1000 > now + KS_PAYLOAD_SKEW)
		return err_set(e, ERR_INPUT, "stale_request",
		               "the request was signed more than %d seconds from now; check the "
		               "clock and sign it again",
		               KS_PAYLOAD_SKEW);
	return 0;
}
