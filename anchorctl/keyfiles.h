/*
 * keyfiles.h - a user's or host's private key and the files named after it,
 * as `key new`/`key enroll` and `server issue` write them: NAME.key, its
 * certificate NAME.pem (which may hold the chain too), and the issuer and
 * root in NAME.chain.pem.  Every command that acts with such a key (signed
 * requests, sign.c and chain.c; S/MIME mail, cmd_mail.c) finds and checks its
 * files here, so that --key alone means the same thing everywhere.
 */
#ifndef ANCHORCTL_KEYFILES_H
#define ANCHORCTL_KEYFILES_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/err.h"

/* The paths of one key's files; the guesses are owned (ctl_keyfiles_clear). */
struct ctl_keyfiles {
	const char *key;   /* the private key */
	const char *cert;  /* --cert, else the key's name with .key replaced by .pem */
	const char *chain; /* --chain, else <cert minus .pem>.chain.pem if it exists, else NULL */
	char *cert_guess, *chain_guess;
};

/*
 * Name the files of key_path: cert_path and chain_path where given (NULL:
 * guessed as above).  Reads nothing but whether the guessed chain exists.
 * Errors: ERR_INPUT bad_certificate when no certificate is given and
 * key_path does not end in .key.
 */
int ctl_keyfiles_find(struct ctl_keyfiles *f, const char *key_path, const char *cert_path,
                      const char *chain_path, struct err *e);

/* key (read from f->key) must be the key of cert (read from f->cert).
 * Errors: ERR_INPUT key_mismatch. */
int ctl_keyfiles_match(const struct ctl_keyfiles *f, EVP_PKEY *key, X509 *cert, struct err *e);

void ctl_keyfiles_clear(struct ctl_keyfiles *f); /* accepts a zeroed one */

/* <cert_path minus .pem>.chain.pem when that file exists, malloc'd; else NULL. */
char *ctl_keyfiles_chain_guess(const char *cert_path);

#endif
