/* keyfiles.c - a key's certificate and chain files found by their names; see keyfiles.h. */
#include "keyfiles.h"

#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "pki/crypto.h"

char *ctl_keyfiles_chain_guess(const char *cert_path)
{
	char *guess = ctl_path_swap_suffix(cert_path, ".pem", ".chain.pem");

	if (guess != NULL && !ctl_file_exists(guess)) {
		free(guess);
		guess = NULL;
	}
	return guess;
}

int ctl_keyfiles_find(struct ctl_keyfiles *f, const char *key_path, const char *cert_path,
                      const char *chain_path, struct err *e)
{
	memset(f, 0, sizeof(*f));
	f->key = key_path;
	f->cert = cert_path;
	f->chain = chain_path;
	if (f->cert == NULL &&
	    (f->cert = f->cert_guess = ctl_path_swap_suffix(key_path, ".key", ".pem")) == NULL)
		return err_set(e, ERR_INPUT, "bad_certificate",
		               "give --cert FILE with the certificate of %s", key_path);
	if (f->chain == NULL)
		f->chain = f->chain_guess = ctl_keyfiles_chain_guess(f->cert);
	return 0;
}

int ctl_keyfiles_match(const struct ctl_keyfiles *f, EVP_PKEY *key, X509 *cert, struct err *e)
{
	if (!crypto_key_matches(key, X509_get0_pubkey(cert)))
		return err_set(e, ERR_INPUT, "key_mismatch",
		               "%s is not the key of the certificate %s", f->key, f->cert);
	return 0;
}

void ctl_keyfiles_clear(struct ctl_keyfiles *f)
{
	free(f->cert_guess);
	free(f->chain_guess);
	memset(f, 0, sizeof(*f));
}
