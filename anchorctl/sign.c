/* sign.c - signing with a key of an anchored domain; see sign.h. */
#include "sign.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/cert_san.h"
#include "pki/crypto.h"
#include "files.h"
#include "keyfiles.h"
#include "pki/jws.h"

/* The certificate's file (which may hold all three), then the chain file if needed. */
static int load_chain(struct ctl_signer *s, const struct ctl_keyfiles *f, struct err *e)
{
	int n;

	if ((n = ctl_certs_read(f->cert, s->chain, 0, CTL_SIGN_CHAIN, e)) < 0)
		return -1;
	if (n < CTL_SIGN_CHAIN && f->chain != NULL &&
	    (n = ctl_certs_read(f->chain, s->chain, n, CTL_SIGN_CHAIN, e)) < 0)
		return -1;
	if (n < CTL_SIGN_CHAIN)
		return err_set(e, ERR_INPUT, "bad_certificate",
		               "need the certificate, its issuer and the root: give --chain FILE "
		               "(or a --cert file holding all three)");
	return 0;
}

static void ia5_lower(const ASN1_IA5STRING *s, char *out, size_t size)
{
	size_t i;

	out[0] = '\0';
	if (s->length <= 0 || (size_t)s->length >= size ||
	    memchr(s->data, 0, (size_t)s->length) != NULL)
		return;
	for (i = 0; i < (size_t)s->length; i++)
		out[i] = (char)tolower(s->data[i]);
	out[i] = '\0';
}

/* The leaf's address (rfc822Name or SmtpUTF8Mailbox, canonical: pki/cert_san.c), else
 * its dNSName. */
static void leaf_name(X509 *leaf, char *out, size_t size)
{
	GENERAL_NAMES *gens;

	cert_san_address(leaf, out, size);
	if (out[0] != '\0')
		return;
	gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && out[0] == '\0'; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_DNS)
			ia5_lower(g->d.dNSName, out, size);
	}
	GENERAL_NAMES_free(gens);
}

/* The dNSName a domain root is constrained to (PROTOCOL.md §2): the domain itself. */
static void root_domain(X509 *root, char *out, size_t size)
{
	NAME_CONSTRAINTS *nc = X509_get_ext_d2i(root, NID_name_constraints, NULL, NULL);

	out[0] = '\0';
	for (int i = 0;
	     nc != NULL && i < sk_GENERAL_SUBTREE_num(nc->permittedSubtrees) && out[0] == '\0';
	     i++) {
		const GENERAL_SUBTREE *t = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i);

		if (t->base->type == GEN_DNS)
			ia5_lower(t->base->d.dNSName, out, size);
	}
	NAME_CONSTRAINTS_free(nc);
}

int ctl_signer_load(struct ctl_signer *s, const char *key_path, const char *cert_path,
                    const char *chain_path, struct err *e)
{
	struct ctl_keyfiles f;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	if (ctl_keyfiles_find(&f, key_path, cert_path, chain_path, e) < 0)
		return -1;
	if ((s->key = crypto_key_read_private(f.key, e)) == NULL || load_chain(s, &f, e) < 0 ||
	    ctl_keyfiles_match(&f, s->key, s->chain[0], e) < 0)
		goto out;
	leaf_name(s->chain[0], s->name, sizeof(s->name));
	root_domain(s->chain[CTL_SIGN_CHAIN - 1], s->domain, sizeof(s->domain));
	rc = 0;
out:
	ctl_keyfiles_clear(&f);
	if (rc < 0)
		ctl_signer_clear(s);
	return rc;
}

void ctl_signer_clear(struct ctl_signer *s)
{
	EVP_PKEY_free(s->key);
	s->key = NULL;
	for (int i = 0; i < CTL_SIGN_CHAIN; i++) {
		X509_free(s->chain[i]);
		s->chain[i] = NULL;
	}
}

char *ctl_signer_sign(const struct ctl_signer *s, const json_t *payload, const char *typ,
                      struct err *e)
{
	char *text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS), *jws;

	if (text == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	jws = jws_sign(text, strlen(text), s->key, s->chain, CTL_SIGN_CHAIN, typ, e);
	free(text);
	return jws;
}

void ctl_rfc3339_now(char out[32])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *ctl_signing_time(void)
{
	struct timespec ts;
	long long ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000; /* whole milliseconds */
	return json_real((double)ms / 1000.0);
}
