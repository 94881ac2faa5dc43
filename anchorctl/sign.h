/*
 * sign.h - signing as a user or a host of an anchored domain: a private key,
 * its certificate and the chain up to the domain's root, as `key enroll` and
 * `server issue` write them.  Used for requests to the relay's control API
 * (cmd_relay.c) and for reports and delisting requests to a reputation
 * service (cmd_report.c): the receiver checks the x5c chain against the
 * domain's pinned root.
 */
#ifndef ANCHORCTL_SIGN_H
#define ANCHORCTL_SIGN_H

#include <jansson.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/err.h"

#define CTL_SIGN_CHAIN 3 /* leaf, issuer, root */

struct ctl_signer {
	EVP_PKEY *key;
	X509 *chain[CTL_SIGN_CHAIN];
	char name[320];   /* the leaf's address (canonical) or host name, lowercase */
	char domain[256]; /* the domain its root is constrained to ("" when none) */
};

/*
 * Load key_path and its certificate: cert_path, else key_path with .key
 * replaced by .pem (as `key new`/`key enroll` and `server issue` name them).
 * The chain is the certificate file (which may hold all three), then
 * chain_path, else <cert minus .pem>.chain.pem.  The key must be the
 * certificate's.  Errors: ERR_INPUT no_file, bad_certificate, key_mismatch.
 */
int ctl_signer_load(struct ctl_signer *s, const char *key_path, const char *cert_path,
                    const char *chain_path, struct err *e);
void ctl_signer_clear(struct ctl_signer *s); /* accepts a zeroed signer */

/* payload (compact, sorted keys) as a flattened JWS with typ; malloc'd text. */
char *ctl_signer_sign(const struct ctl_signer *s, const json_t *payload, const char *typ,
                      struct err *e);

/* The "issued" member of a request a user signs: now in Unix seconds with milliseconds,
 * so that two requests signed within one second are two distinct times to the key
 * server's replay check. */
json_t *ctl_signing_time(void);

/* Now as RFC 3339 UTC ("2026-11-23T15:43:05Z"). */
void ctl_rfc3339_now(char out[32]);

#endif
