/*
 * cert_check.c - the registration checks on a domain's root, issuer and issuer
 * key (PROTOCOL.md §5.1); see cert_check_domain_set() in cert.h.
 *
 * Every refusal is ERR_UNPROC "bad_domain_set" with a sentence saying which
 * part of the set is wrong, so that the operator can fix it without guessing.
 */
#include "pki/cert.h"
#include "pki/name.h"
#include "pki/cert_priv.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define BAD_SET "bad_domain_set"

static int refuse(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int refuse(struct err *e, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return err_set(e, ERR_UNPROC, BAD_SET, "%s", msg);
}

/* A constraint name as a lowercase C string, or NULL when it holds NUL or non-ASCII. */
static int ia5_lower(const ASN1_IA5STRING *s, char *buf, size_t size)
{
	int i;

	if (s == NULL || s->length <= 0 || (size_t)s->length >= size)
		return -1;
	for (i = 0; i < s->length; i++) {
		if (s->data[i] == 0 || s->data[i] >= 0x80)
			return -1;
		buf[i] = (char)tolower(s->data[i]);
	}
	buf[i] = '\0';
	return 0;
}

/* An rfc822Name constraint ("host", ".host" or "local@host") lies within domain. */
static int email_constraint_in_domain(const char *c, const char *domain)
{
	const char *at = strrchr(c, '@');
	const char *host = at ? at + 1 : c[0] == '.' ? c + 1 : c;

	return name_in_domain(host, domain);
}

/*
 * The permitted subtrees must name dNSName <domain>, restrict rfc822Name (else
 * the root could certify any address), and stay inside the domain.
 */
static int check_constraints(X509 *root, const char *domain, struct err *e)
{
	NAME_CONSTRAINTS *nc;
	GENERAL_SUBTREE *sub;
	char name[300];
	int crit = -1, has_dns = 0, has_email = 0, i, rc = -1;

	nc = X509_get_ext_d2i(root, NID_name_constraints, &crit, NULL);
	if (nc == NULL)
		return refuse(e,
		              "the root has no name constraints; it must be constrained to %s "
		              "(permitted DNS and email subtrees)",
		              domain);
	if (crit != 1) {
		refuse(e, "the root's name constraints must be marked critical");
		goto out;
	}
	for (i = 0; i < sk_GENERAL_SUBTREE_num(nc->permittedSubtrees); i++) {
		sub = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i);
		if (sub->base->type != GEN_DNS && sub->base->type != GEN_EMAIL)
			continue; /* a permitted subtree of another type only narrows */
		if (ia5_lower(sub->base->d.ia5, name, sizeof(name)) < 0) {
			refuse(e, "the root's name constraints hold a malformed name");
			goto out;
		}
		if (sub->base->type == GEN_DNS) {
			has_dns |= strcmp(name, domain) == 0;
			if (!name_in_domain(name, domain)) {
				refuse(e, "the root's name constraints permit DNS:%s, outside %s",
				       name, domain);
				goto out;
			}
		} else {
			has_email = 1;
			if (!email_constraint_in_domain(name, domain)) {
				refuse(e, "the root's name constraints permit email:%s, outside %s",
				       name, domain);
				goto out;
			}
		}
	}
	if (!has_dns)
		refuse(e, "the root's name constraints do not permit DNS:%s", domain);
	else if (!has_email)
		refuse(e,
		       "the root's name constraints do not restrict email addresses; permit "
		       "email:%s and email:.%s",
		       domain, domain);
	else
		rc = 0;
out:
	NAME_CONSTRAINTS_free(nc);
	return rc;
}

static int check_key(const char *which, X509 *cert, struct err *e)
{
	struct err kerr;

	err_clear(&kerr);
	if (crypto_key_check_allowed(X509_get0_pubkey(cert), &kerr) < 0)
		return refuse(e, "the %s key is refused: %s", which, kerr.msg);
	return 0;
}

static int check_dates(const char *which, X509 *cert, struct err *e)
{
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
		return refuse(e, "the %s certificate has expired", which);
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0)
		return refuse(e, "the %s certificate is not valid yet", which);
	return 0;
}

static int check_root(const char *domain, X509 *root, struct err *e)
{
	if (X509_check_issued(root, root) != X509_V_OK)
		return refuse(e, "the root is not self-issued (its subject and issuer differ)");
	if (X509_verify(root, X509_get0_pubkey(root)) != 1)
		return refuse(e, "the root's signature does not verify with its own key");
	if (X509_check_ca(root) != 1)
		return refuse(e, "the root is not a CA (basicConstraints CA:TRUE is missing)");
	if (check_key("root", root, e) < 0 || check_dates("root", root, e) < 0)
		return -1;
	return check_constraints(root, domain, e);
}

/* Sign a probe with the key and verify it with the certificate: proves the private half. */
static int key_signs_for(EVP_PKEY *key, X509 *cert)
{
	static const unsigned char probe[] = "anchormail issuer key probe";
	const EVP_MD *md = cert_sign_md(key);
	unsigned char *sig = NULL;
	size_t siglen = 0;
	EVP_MD_CTX *ctx;
	int ok;

	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, md, NULL, key) == 1 &&
	     EVP_DigestSign(ctx, NULL, &siglen, probe, sizeof(probe)) == 1 &&
	     (sig = OPENSSL_malloc(siglen)) != NULL &&
	     EVP_DigestSign(ctx, sig, &siglen, probe, sizeof(probe)) == 1;
	EVP_MD_CTX_free(ctx);
	if (ok) {
		ctx = EVP_MD_CTX_new();
		ok = ctx != NULL &&
		     EVP_DigestVerifyInit(ctx, NULL, md, NULL, X509_get0_pubkey(cert)) == 1 &&
		     EVP_DigestVerify(ctx, sig, siglen, probe, sizeof(probe)) == 1;
		EVP_MD_CTX_free(ctx);
	}
	OPENSSL_free(sig);
	return ok;
}

static int check_issuer(X509 *root, X509 *issuer, EVP_PKEY *issuer_key, struct err *e)
{
	if (X509_check_ca(issuer) != 1)
		return refuse(e, "the issuer is not a CA (basicConstraints CA:TRUE and "
		                 "keyCertSign are required)");
	if (X509_get_pathlen(issuer) != 0)
		return refuse(e, "the issuer must have pathlen 0 (it may not certify other CAs)");
	if (X509_check_issued(root, issuer) != X509_V_OK)
		return refuse(e, "the issuer was not issued by this root (issuer name or key "
		                 "identifier differs)");
	if (X509_verify(issuer, X509_get0_pubkey(root)) != 1)
		return refuse(e, "the issuer's signature does not verify with the root's key");
	if (check_key("issuer", issuer, e) < 0 || check_dates("issuer", issuer, e) < 0)
		return -1;
	if (issuer_key == NULL || !crypto_key_matches(X509_get0_pubkey(issuer), issuer_key))
		return refuse(e, "the issuer key does not belong to the issuer certificate");
	if (!key_signs_for(issuer_key, issuer))
		return refuse(e, "the issuer key cannot sign (is it the private key?)");
	return 0;
}

int cert_check_domain_set(const char *domain, X509 *root, X509 *issuer, EVP_PKEY *issuer_key,
                          struct err *e)
{
	if (name_check_domain(domain, e) < 0)
		return -1;
	if (root == NULL || issuer == NULL)
		return refuse(e, "both a root and an issuer certificate are required");
	if (check_root(domain, root, e) < 0)
		return -1;
	return check_issuer(root, issuer, issuer_key, e);
}
