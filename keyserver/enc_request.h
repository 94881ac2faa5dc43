/*
 * enc_request.h - the pieces of an encryption enrollment (PROTOCOL.md §4.1) that are
 * pure: a device name, and the payload of a request signed by a current key of the
 * address (typ KS_ENC_JWS_TYP) that authorises a new device's key.
 */
#ifndef KS_ENC_REQUEST_H
#define KS_ENC_REQUEST_H

#include <jansson.h>

#include "core/err.h"

#define KS_ENC_TYPE "anchor-encryption-request"
#define KS_ENC_JWS_TYP "anchor-encryption-request+jws"
#define KS_ENC_DEVICE_DEFAULT "default"

/* 1 to 32 characters of [a-z0-9-], not starting or ending with '-'; else ERR_INPUT
 * "bad_device". */
int ks_enc_device_check(const char *device, struct err *e);

/* The signed payload {"type", "address", "device", "public_key", "issued"}: members
 * borrowed from p.  ERR_INPUT "bad_request" for another shape, "stale_request" when
 * issued is more than KS_PAYLOAD_SKEW seconds from now (payload.h). */
struct ks_enc_request {
	const char *address, *device, *public_key;
	long long issued;
};
int ks_enc_request_parse(const json_t *p, long long now, struct ks_enc_request *out, struct err *e);

#endif
