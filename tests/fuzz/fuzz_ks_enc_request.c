/* fuzz_ks_enc_request.c - the payload of a request that adds a device's encryption key
 * (keyserver/enc_request.c) on arbitrary JSON, as the signer reads it once the request's
 * signature verifies; and the device name rule on the "device" member when it is one. */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "enc_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ks_enc_request req;
	struct err e = {0};
	json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	const char *device = json_string_value(json_object_get(body, "device"));

	(void)ks_enc_request_parse(body, 1800000000LL, &req, &e);
	if (device != NULL)
		(void)ks_enc_device_check(device, &e);
	json_decref(body);
	return 0;
}
