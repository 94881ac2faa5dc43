/*
 * control_signed.h - requests to the relay's control API signed by a recipient's own
 * S/MIME key (control_signed.c, PROTOCOL.md §12.6); exported for the unit tests.
 */
#ifndef ANCHOR_RELAY_CONTROL_SIGNED_H
#define ANCHOR_RELAY_CONTROL_SIGNED_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "dns/certauth.h"
#include "pki/crypto.h"
#include "relay.h"

#define RELAY_CONTROL_WINDOW 300 /* seconds a signed request's "issued" may be off */

/* A user-signed request, verified. */
struct relay_control_signed {
	char address[RELAY_ADDR_MAX]; /* the signer's address, lowercase */
	char key_pin[CRYPTO_PIN_MAX]; /* the signer's key: the replay identity */
	long long issued;             /* Unix seconds */
	uint8_t digest[32]; /* SHA-256 of the request text: tells equal-time requests apart */
	json_t *body;       /* the payload's "body" (a reference), or NULL */
};

void relay_control_signed_clear(struct relay_control_signed *r);

/*
 * The "address" a signed request's payload claims, read without verifying
 * anything (to know which domain's pins to verify it with).  ERR_INPUT
 * bad_jws / bad_request.
 */
int relay_control_peek_address(json_t *jws, char out[RELAY_ADDR_MAX], struct err *e);

/*
 * Verify a signed request text (a flattened JWS): lib/certauth checks that it is
 * signed by the current certificate of the payload's address (chain to a root its
 * domain pins, leaf rfc822Name == the address, not revoked nor superseded, asked of
 * the domain's key server), then the payload must be {"type":
 * "anchor-relay-request", "address", "method", "path", "body", "issued": RFC 3339}
 * matching method and path, issued within RELAY_CONTROL_WINDOW of now.  Replay is
 * the caller's (newest issued per key).  Errors: those of relay_control_peek_address
 * and certauth_verify_jws, ERR_INPUT request_mismatch, stale_request, bad_request.
 */
int relay_control_verify_request(struct certauth *auth, const char *text, size_t len,
                                 const char *method, const char *path, time_t now,
                                 struct relay_control_signed *out, struct err *e);

#endif
