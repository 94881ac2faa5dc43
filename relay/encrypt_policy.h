/*
 * encrypt_policy.h - what a recipient's domain asks of an encrypting relay, and the
 * recipient's checked encryption certificates (encrypt_policy.c; encrypt.h says what
 * gateway encryption is).
 */
#ifndef ANCHOR_RELAY_ENCRYPT_POLICY_H
#define ANCHOR_RELAY_ENCRYPT_POLICY_H

#include <openssl/x509.h>

#include "relay.h"

enum relay_enc_req { RELAY_ENC_NONE = 0, RELAY_ENC_OPPORTUNISTIC, RELAY_ENC_REQUIRED };

/* What a recipient's domain asks, and the certificates to encrypt to. */
struct relay_enc_target {
	enum relay_enc_req req;
	STACK_OF(X509) * certs; /* checked and usable; NULL when none */
	char domain[256];
	char why[200]; /* why none is usable (for the deferral and the bounce) */
};
void relay_enc_target_clear(struct relay_enc_target *t);
const char *relay_enc_req_name(enum relay_enc_req r);

/* The encryption requirement a domain publishes (the `encryption` member of its
 * domain object as discovery verified it; none for a legacy domain).  -1 when the
 * domain cannot be discovered now. */
int relay_enc_requirement(struct relay_verifier *v, const char *domain, enum relay_enc_req *out,
                          struct err *e);

/*
 * The requirement of rcpt's domain and, unless none, rcpt's usable encryption
 * certificates (out->certs; out->why when there are none).  -1 (ERR_TEMP) only when
 * the requirement itself cannot be told; a key server that cannot be believed
 * leaves the certificates empty with why set.  An answer is reused for ttl seconds
 * (0: asked every time).  Thread-safe.
 */
int relay_enc_lookup(struct relay_verifier *v, const char *rcpt, long long ttl,
                     struct relay_enc_target *out, struct err *e);

#endif
