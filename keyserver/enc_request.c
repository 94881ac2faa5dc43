/*
 * enc_request.c - device names and the payload of a signed encryption enrollment
 * (enc_request.h).  Pure functions.
 */
#include "enc_request.h"
#include "payload.h"

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

int ks_enc_request_parse(const json_t *p, long long now, struct ks_enc_request *out, struct err *e)
{
	static const char *const known[] = {"type", "address", "device", "public_key", "issued"};
	const char *type = ks_payload_str(p, "type");
	long long ms;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(p) || type == NULL || strcmp(type, KS_ENC_TYPE) != 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "the signed payload must be a JSON object of type " KS_ENC_TYPE);
	if (ks_payload_only(p, known, sizeof(known) / sizeof(known[0]), "encryption", e) < 0)
		return -1;
	out->address = ks_payload_str(p, "address");
	out->device = ks_payload_str(p, "device");
	out->public_key = ks_payload_str(p, "public_key");
	if (out->address == NULL || out->device == NULL || out->public_key == NULL)
		return err_set(e, ERR_INPUT, "bad_request",
		               "the encryption request needs \"address\", \"device\" and "
		               "\"public_key\" as strings and \"issued\" in Unix seconds");
	if (ks_payload_issued(p, now, &ms, e) < 0)
		return -1;
	out->issued = ms / 1000;
	return 0;
}
