/*
 * cmd_offline.c - "server issue <host> --purpose keyserver --offline": the first key
 * server of a domain needs a TLS certificate before any key server runs to issue one.
 * The owner holds the domain's issuer key from "domain init" (it is handed to the key
 * server by "domain register" later), so anchorctl issues the certificate itself, with
 * the library call the key server's signer uses (cert_issue_leaf), checks it against
 * the domain's own chain (name constraints included) as it checks what a server issues,
 * and writes the same files (ctl_save_issued).
 *
 * Such a certificate is in no transparency log: nothing logs before a key server runs.
 * It is therefore only for the keyserver purpose and short-lived (--days, 30 by
 * default): once the key server runs, the owner replaces it with a logged one from
 * "server issue <host> --purpose keyserver" (anchor-keyserver(8), FIRST START).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "cmd_offline.h"
#include "names.h"
#include "output.h"
#include "pki/crypto.h"
#include "pki/csr.h"
#include "pki/name.h"

#define OFFLINE_DAYS_MAX 90

struct domain_keys {
	EVP_PKEY *issuer_key;
	X509 *issuer, *root;
	char *issuer_pem, *root_pem;
};

static void domain_keys_free(struct domain_keys *k)
{
	EVP_PKEY_free(k->issuer_key);
	X509_free(k->issuer);
	X509_free(k->root);
	free(k->issuer_pem);
	free(k->root_pem);
}

/* The longest parent of host (host included) with <domain>/issuer.key here. */
static const char *offline_domain(const char *host)
{
	for (const char *d = host; d != NULL; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL) {
		char *p = ctl_name_file(d, "issuer.key", NULL);
		int found = p != NULL && ctl_file_exists(p);

		free(p);
		if (found)
			return d;
	}
	return NULL;
}

static X509 *read_cert(const char *dir, const char *name, char **pem, struct err *e)
{
	char *path = ctl_name_file(dir, name, NULL);
	size_t len = 0;
	X509 *c = NULL;

	*pem = path != NULL ? ctl_file_read(path, &len, e) : NULL;
	if (*pem != NULL)
		c = cert_from_pem(*pem, len, e);
	free(path);
	return c;
}

/* issuer.key, issuer.pem and root.pem of dir, checked as a registration checks them. */
static int domain_keys_load(const char *domain, const char *dir, struct domain_keys *k,
                            struct err *e)
{
	char *path = ctl_name_file(dir, "issuer.key", NULL), *pem = NULL;
	size_t len = 0;

	if (path != NULL && (pem = ctl_file_read(path, &len, e)) != NULL)
		k->issuer_key = crypto_key_private_from_pem(pem, len, e);
	free(path);
	if (pem != NULL)
		explicit_bzero(pem, len);
	free(pem);
	if (k->issuer_key == NULL ||
	    (k->issuer = read_cert(dir, "issuer.pem", &k->issuer_pem, e)) == NULL ||
	    (k->root = read_cert(dir, "root.pem", &k->root_pem, e)) == NULL)
		return -1;
	return cert_check_domain_set(domain, k->root, k->issuer, k->issuer_key, e);
}

/* The certificate for the CSR, as the signer makes one: checked request, a name under the
 * domain, a fresh key id, verified against the domain's chain. */
static X509 *issue(const struct ctl_offline_issue *r, const char *domain, const char *csr_pem,
                   const struct domain_keys *k, char key_id[CRYPTO_UUID_LEN], struct err *e)
{
	X509_REQ *csr = csr_from_pem(csr_pem, strlen(csr_pem), e);
	char *name = NULL;
	X509 *cert = NULL;

	if (csr == NULL || csr_verify(csr, e) < 0 ||
	    (name = csr_requested_name(csr, CERT_SERVER, e)) == NULL)
		goto out;
	if (strcmp(name, r->host) != 0 || !name_in_domain(name, domain)) {
		err_set(e, ERR_INPUT, "address_outside_domain",
		        "the request is for %s, not for %s under %s", name, r->host, domain);
		goto out;
	}
	struct cert_issue req = {
	    .purpose = CERT_PURPOSE_KEYSERVER, .name = name, .key_id = key_id, .days = r->days};
	if (crypto_uuid_v4(key_id, e) < 0 ||
	    (cert = cert_issue_leaf(&req, X509_REQ_get0_pubkey(csr), k->issuer, k->issuer_key,
	                            e)) == NULL)
		goto out;
	if (cert_verify_chain(cert, k->issuer, k->root, e) < 0) {
		X509_free(cert);
		cert = NULL;
	}
out:
	X509_REQ_free(csr);
	free(name);
	return cert;
}

/* The answer a key server gives for an issuance (PROTOCOL.md), for ctl_save_issued. */
static json_t *answer_of(X509 *cert, const char *key_id, const struct domain_keys *k, struct err *e)
{
	char fpr[CERT_FPR_LEN], after[32];
	char *pem = cert_to_pem(cert, e);
	time_t na = cert_not_after(cert);
	struct tm tm;
	json_t *a = NULL;

	if (pem == NULL || cert_fingerprint(cert, fpr, e) < 0)
		goto out;
	gmtime_r(&na, &tm);
	strftime(after, sizeof(after), "%Y-%m-%dT%H:%M:%SZ", &tm);
	a = json_pack("{s:s, s:[s,s], s:s, s:s, s:s, s:s}", "certificate", pem, "chain",
	              k->issuer_pem, k->root_pem, "key_id", key_id, "fingerprint", fpr, "algorithm",
	              crypto_key_alg_name(X509_get0_pubkey(cert)), "not_after", after);
	if (a == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
out:
	free(pem);
	return a;
}

static int offline_args(const struct ctl_cmd *cmd, const struct ctl_offline_issue *r,
                        const char **domain, int *status)
{
	if (strcmp(r->purpose, "keyserver") != 0) {
		*status = ctl_usage(cmd, "--offline is only for --purpose keyserver (the key "
		                         "server's own certificate, before it runs); mta and "
		                         "signing certificates come from the key server, logged");
		return -1;
	}
	if (r->days < 1 || r->days > OFFLINE_DAYS_MAX) {
		*status = ctl_usage(cmd, "--days must be 1 to %d for an offline certificate",
		                    OFFLINE_DAYS_MAX);
		return -1;
	}
	*domain = r->domain != NULL ? r->domain : offline_domain(r->host);
	if (*domain == NULL) {
		*status =
		    ctl_usage(cmd,
		              "cannot tell which domain %s belongs to (no <domain>/issuer.key "
		              "here from domain init): give --domain DOMAIN",
		              r->host);
		return -1;
	}
	if (!name_in_domain(r->host, *domain)) {
		*status = ctl_usage(cmd, "%s is not under the domain %s", r->host, *domain);
		return -1;
	}
	return 0;
}

int ctl_server_issue_offline(struct ctl *ctl, const struct ctl_cmd *cmd,
                             const struct ctl_offline_issue *r)
{
	struct domain_keys k = {0};
	char key_id[CRYPTO_UUID_LEN], *base = NULL, *csr = NULL, *key_path = NULL;
	const char *domain;
	struct err e = {0};
	json_t *answer = NULL;
	X509 *cert = NULL;
	int status = CTL_FAIL;

	if (offline_args(cmd, r, &domain, &status) < 0)
		return status;
	if (domain_keys_load(domain, r->domain_dir != NULL ? r->domain_dir : domain, &k, &e) < 0)
		goto fail;
	if (asprintf(&base, "%s.%s", r->host, r->purpose) < 0) {
		base = NULL;
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if (r->csr_file != NULL)
		csr = ctl_file_read(r->csr_file, NULL, &e);
	else if (ctl_make_key_csr(r->dir, base, CERT_SERVER, r->host, r->alg, &csr, NULL, &e) == 0)
		fprintf(stderr, "anchorctl: made %s/%s.key and %s.csr\n", r->dir, base, base);
	if (csr == NULL || (cert = issue(r, domain, csr, &k, key_id, &e)) == NULL ||
	    (answer = answer_of(cert, key_id, &k, &e)) == NULL)
		goto fail;
	key_path = r->csr_file == NULL ? ctl_name_file(r->dir, base, ".key") : NULL;
	if (ctl_save_issued(r->dir, base, answer, key_path, &e) < 0)
		goto fail;
	if (ctl->json) {
		ctl_out_json(stdout, answer);
	} else {
		ctl_print_issued(r->dir, base, answer);
		printf("offline:     issued here from %s's issuer key, in no log; once the key "
		       "server runs,\n             replace it with a logged one: anchorctl "
		       "server issue %s --purpose keyserver\n",
		       domain, r->host);
	}
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	domain_keys_free(&k);
	json_decref(answer);
	X509_free(cert);
	free(base);
	free(csr);
	free(key_path);
	return status;
}
