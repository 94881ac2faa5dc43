/*
 * signer_decrypt.c - gateway decryption in the signer process (PROTOCOL.md §12.11): the
 * keys of a domain whose mail is encrypted to a corporate or group key, and the
 * decryption of one message with them.  The keys never leave this process; the relay
 * sends the message and gets the inner entity back.
 */
#include "signer_decrypt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/x509.h>

#include "pki/name.h"
#include "signer_keyfile.h"

#define DEC_MAX 64 /* keys in gateway_decrypt_keys */

struct dec_key {
	char domain[256];
	EVP_PKEY *key;
	X509 *cert;
	char fpr[CERT_FPR_LEN];
};

struct signer_dec {
	struct dec_key k[DEC_MAX];
	size_t n;
};

void signer_decrypt_free(struct signer_dec *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++) {
		EVP_PKEY_free(d->k[i].key);
		X509_free(d->k[i].cert);
	}
	free(d);
}

/* One "domain:keyfile:certfile" (text is modified). */
static int entry_load(struct signer_dec *d, char *text, struct err *e)
{
	char *kp = strchr(text, ':'), *cp = kp ? strchr(kp + 1, ':') : NULL, *pem = NULL;
	struct dec_key *k = &d->k[d->n];
	struct stat st;
	struct err why = {0};

	if (cp == NULL || d->n == DEC_MAX)
		return err_set(
		    e, ERR_INPUT, "bad_setting",
		    "gateway_decrypt_keys: \"%.200s\" is not domain:keyfile:certfile (at "
		    "most %d)",
		    text, DEC_MAX);
	*kp++ = '\0';
	*cp++ = '\0';
	for (char *p = text; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	if (name_check_domain(text, &why) < 0 || *kp == '\0' || *cp == '\0')
		return err_set(e, ERR_INPUT, "bad_setting",
		               "gateway_decrypt_keys: bad domain or file in \"%.200s\"", text);
	snprintf(k->domain, sizeof(k->domain), "%s", text);
	if ((k->key = relay_signer_key_read(AT_FDCWD, kp, 0, &st, e)) == NULL)
		return -1;
	d->n++; /* counted now so that it is freed even when refused below */
	if ((pem = relay_signer_file_read(cp, e)) == NULL ||
	    (k->cert = cert_from_pem(pem, strlen(pem), e)) == NULL) {
		free(pem);
		return -1;
	}
	free(pem);
	if (X509_check_private_key(k->cert, k->key) != 1)
		return err_set(e, ERR_INPUT, "bad_setting",
		               "gateway_decrypt_keys: %s is not the key of %s", kp, cp);
	return cert_fingerprint(k->cert, k->fpr, e);
}

int signer_decrypt_load(const char *spec, struct signer_dec **out, struct err *e)
{
	char *copy, *tok, *save = NULL;
	int rc = 0;

	*out = NULL;
	if (spec == NULL || *spec == '\0')
		return 0;
	if ((copy = strdup(spec)) == NULL || (*out = calloc(1, sizeof(**out))) == NULL) {
		free(copy);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (tok = strtok_r(copy, ", ", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ", ", &save))
		rc = entry_load(*out, tok, e);
	free(copy);
	if (rc < 0) {
		signer_decrypt_free(*out);
		*out = NULL;
	}
	return rc;
}

int signer_decrypt_run(const struct signer_dec *d, const char *domain, const uint8_t *msg,
                       size_t len, struct smime_buf *plain, char fpr[CERT_FPR_LEN], struct err *e)
{
	int any = 0;

	for (size_t i = 0; d != NULL && i < d->n; i++) {
		const struct dec_key *k = &d->k[i];

		if (strcmp(k->domain, domain) != 0)
			continue;
		any = 1;
		memset(e, 0, sizeof(*e));
		if (smime_decrypt(msg, len, k->key, k->cert, plain, e) == 0) {
			memcpy(fpr, k->fpr, CERT_FPR_LEN);
			return 0;
		}
		if (strcmp(e->code, "not_for_you") != 0)
			return -1; /* this key is a recipient: another one will not do better */
	}
	if (!any)
		return err_set(e, ERR_NOTFOUND, "no_decryption_key", "no decryption key for %s",
		               domain);
	return -1;
}
