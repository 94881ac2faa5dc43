/*
 * chain.h - the chain [certificate, issuer, root] a user's key signs a
 * request with (`route alias --key`, `key revoke --key`): the certificate
 * file, then the chain file, else the issuer and root of the domain object
 * on the key server.
 */
#ifndef ANCHORCTL_CHAIN_H
#define ANCHORCTL_CHAIN_H

#include <openssl/x509.h>

#include "client.h"
#include "core/err.h"

#define CTL_CHAIN_LEN 3 /* certificate, issuer, root */

/*
 * Fill chain with the certificate of cert_path, then the issuer and root of
 * chain_path, else of <cert_path minus .pem>.chain.pem as `key enroll`
 * writes it, else of the domain object from the key server c (NULL: none)
 * for domain (NULL: the domain of the certificate's emailAddress).  The
 * chain is not verified here.  On error the caller still frees chain.
 * Errors: ERR_INPUT bad_certificate, no_chain; the key server's errors;
 * ERR_INTERNAL bad_response when its object lacks the issuer or the root.
 */
int ctl_chain_load(const struct ctl_client *c, const char *domain, const char *cert_path,
                   const char *chain_path, X509 *chain[CTL_CHAIN_LEN], struct err *e);

#endif
