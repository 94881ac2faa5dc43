/* chain.c - a signing user's certificate chain from files or the key server; see chain.h. */
#include "chain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd_log.h"
#include "files.h"
#include "keyfiles.h"
#include "pki/cert.h"

static X509 *cert_member(const json_t *obj, const char *key, struct err *e)
{
	const char *pem = json_string_value(json_object_get(obj, key));

	if (pem == NULL) {
		err_set(e, ERR_INTERNAL, "bad_response", "the domain object has no %s", key);
		return NULL;
	}
	return cert_from_pem(pem, strlen(pem), e);
}

/* The domain of the certificate's emailAddress, into out; -1 when it has none. */
static int cert_domain(X509 *cert, char *out, size_t size)
{
	char email[320] = "";
	const char *at;

	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_pkcs9_emailAddress, email,
	                          sizeof(email));
	if ((at = strrchr(email, '@')) == NULL)
		return -1;
	snprintf(out, size, "%s", at + 1);
	return 0;
}

/* Issuer and root from the domain object on the key server. */
static int server_chain(const struct ctl_client *c, const char *domain, const char *cert_path,
                        X509 *chain[CTL_CHAIN_LEN], struct err *e)
{
	struct ctl_trust t = {0};
	char own[256];
	int rc = -1;

	if (c == NULL)
		return err_set(e, ERR_INPUT, "no_chain",
		               "no chain file next to %s and no key server to take the chain from",
		               cert_path);
	if (domain == NULL) {
		if (cert_domain(chain[0], own, sizeof(own)) < 0)
			return err_set(e, ERR_INPUT, "no_chain",
			               "give --chain FILE (issuer and root)");
		domain = own;
	}
	if (ctl_trust_load(c, domain, NULL, &t, e) == 0 &&
	    (chain[1] = cert_member(t.object, "issuer", e)) != NULL &&
	    (chain[2] = cert_member(t.object, "root", e)) != NULL)
		rc = 0;
	ctl_trust_free(&t);
	return rc;
}

int ctl_chain_load(const struct ctl_client *c, const char *domain, const char *cert_path,
                   const char *chain_path, X509 *chain[CTL_CHAIN_LEN], struct err *e)
{
	char *guess = NULL;
	int n;

	if (ctl_certs_read(cert_path, chain, 0, 1, e) < 0)
		return -1;
	if (chain_path == NULL)
		chain_path = guess = ctl_keyfiles_chain_guess(cert_path);
	if (chain_path == NULL)
		return server_chain(c, domain, cert_path, chain, e);
	n = ctl_certs_read(chain_path, chain + 1, 0, CTL_CHAIN_LEN - 1, e);
	if (n == 1)
		err_set(e, ERR_INPUT, "bad_certificate", "%s must hold the issuer and the root",
		        chain_path);
	free(guess);
	return n == CTL_CHAIN_LEN - 1 ? 0 : -1;
}
