/*
 * enc_request.c - device names and the payload of a signed encryption enrollment
 * (enc_request.h).  Pure functions.
 */
#include "enc_request.h"

#include <string.h>

int ks_enc_device_check(const char *device, struct err *e)
{
	size_t n = device ? strlen(device) : 0;

	if (n == 0 || n > 32 || device[0] == '-' || device[n - 1] == '-')
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char c = device[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			goto bad;
	}
	return 0;
bad:
	return err_set(e, ERR_INPUT, "bad_device",
	               "a device name is 1 to 32 of a-z, 0-9 and '-' (not first or last)");
}

static const char *member_str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int ks_enc_request_parse(const json_t *p, long long now, struct ks_enc_request *out, struct err *e)
{
	static const char *const known[] = {"type", "address", "device", "public_key", "issued"};
	const json_t *iss = json_object_get(p, "issued");
	const char *type = member_str(p, "type"), *k;
	json_t *v;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(p) || type == NULL || strcmp(type, KS_ENC_TYPE) != 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "the signed payload must be a JSON object of type " KS_ENC_TYPE);
	json_object_foreach((json_t *)p, k, v)
	{
		size_t i = 0;
		while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], k) != 0)
			i++;
		if (i == sizeof(known) / sizeof(known[0]))
			return err_set(e, ERR_INPUT, "bad_request",
			               "the encryption request has an unknown member \"%.40s\"", k);
	}
	out->address = member_str(p, "address");
	out->device = member_str(p, "device");
	out->public_key = member_str(p, "public_key");
	if (out->address == NULL || out->device == NULL || out->public_key == NULL ||
	    !json_is_integer(iss))
		return err_set(e, ERR_INPUT, "bad_request",
		               "the encryption request needs \"address\", \"device\" and "
		               "\"public_key\" as strings and \"issued\" in Unix seconds");
	out->issued = json_integer_value(iss);
	if (out->issued < now - KS_ENC_SKEW || out->issued > now + KS_ENC_SKEW)
		return err_set(e, ERR_INPUT, "stale_request",
		               "the request was signed more than %d seconds from now; check the "
		               "clock and sign it again",
		               KS_ENC_SKEW);
	return 0;
}
