/*
 * cmd_renew.c - "key renew": renew a certificate with a request signed by its
 * current key (PROTOCOL.md §5.3), keeping the key or, with --rekey, moving
 * to a new one.  No admin and no token: the current key vouches for the new
 * certificate.  --if-expiring-within makes it a timer's job: nothing is sent
 * while the certificate is far from expiry.
 *
 * Files are those `key enroll` (DIR/<address>.*) and `server issue`
 * (DIR/<host>.<purpose>.*) write: .key, .pem, .chain.pem and, for an address,
 * .revoke.  A new key is written to <base>.key.new first and takes the place
 * of <base>.key only once the new certificate is saved.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "cmd.h"
#include "names.h"
#include "output.h"
#include "pki/crypto.h"
#include "pki/csr.h"
#include "sign.h"

/* What one renewal works with. */
struct renew_job {
	const char *dir;
	const char *name; /* the address or host */
	const char *purpose;
	char base[400]; /* <address> or <host>.<purpose> */
	char *key_path, *new_key_path, *cert_path, *chain_path;
	enum cert_kind kind;
	struct ctl_signer signer; /* the current key and its chain */
	EVP_PKEY *new_key;        /* with --rekey; else the current key is kept */
	int wrote_new_key;        /* <base>.key.new is ours to remove if nothing is issued */
};

static void job_free(struct renew_job *j)
{
	free(j->key_path);
	free(j->new_key_path);
	free(j->cert_path);
	free(j->chain_path);
	ctl_signer_clear(&j->signer);
	EVP_PKEY_free(j->new_key);
}

static int job_paths(struct renew_job *j, struct err *e)
{
	if (j->kind == CERT_USER)
		snprintf(j->base, sizeof(j->base), "%s", j->name);
	else
		snprintf(j->base, sizeof(j->base), "%s.%s", j->name, j->purpose);
	j->key_path = ctl_name_file(j->dir, j->base, ".key");
	j->new_key_path = ctl_name_file(j->dir, j->base, ".key.new");
	j->cert_path = ctl_name_file(j->dir, j->base, ".pem");
	j->chain_path = ctl_name_file(j->dir, j->base, ".chain.pem");
	if (j->key_path == NULL || j->new_key_path == NULL || j->cert_path == NULL ||
	    j->chain_path == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return 0;
}

/* 1 when the certificate expires within `within` seconds (or has expired), else 0 after
 * saying why nothing is done. */
static int renewal_due(const struct renew_job *j, long long within)
{
	long long left = (long long)cert_not_after(j->signer.chain[0]) - (long long)time(NULL);
	time_t na = cert_not_after(j->signer.chain[0]);
	char when[32];
	struct tm tm;

	if (left <= within)
		return 1;
	gmtime_r(&na, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("not due: %s expires %s, in %lld days (more than %lld seconds from now); "
	       "nothing done\n",
	       j->cert_path, when, left / 86400, within);
	return 0;
}

/* The PKCS#10 request for the renewed certificate: the current key, or a new one saved to
 * <base>.key.new first (never overwriting one left behind). */
static char *renewal_csr(struct renew_job *j, int rekey, const char *alg, struct err *e)
{
	enum key_alg kalg = KEY_ED25519;
	int bits = 0;
	X509_REQ *req;
	char *pem = NULL;

	if (rekey) {
		if ((alg != NULL && crypto_alg_parse(alg, &kalg, &bits, e) < 0) ||
		    (j->new_key = crypto_key_generate(kalg, bits, e)) == NULL ||
		    crypto_key_write_private(j->new_key_path, j->new_key, e) < 0)
			return NULL;
		j->wrote_new_key = 1;
	}
	req = csr_make(rekey ? j->new_key : j->signer.key, j->kind, j->name, e);
	if (req != NULL)
		pem = csr_to_pem(req, e);
	X509_REQ_free(req);
	return pem;
}

/* The request of PROTOCOL.md §5.3, signed by the current key, as the body to send. */
static json_t *renewal_request(const struct renew_job *j, const char *csr, struct err *e)
{
	json_t *payload =
	    json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", "anchor-renew-request", "name", j->name,
	              "purpose", j->purpose, "csr", csr, "issued", (json_int_t)time(NULL));
	char *jws = payload != NULL
	                ? ctl_signer_sign(&j->signer, payload, "anchor-renew-request+jws", e)
	                : NULL;
	json_t *body = jws != NULL ? json_loads(jws, 0, NULL) : NULL;

	if (body == NULL && e->kind == ERR_NONE)
		err_set(e, ERR_INTERNAL, "internal", "cannot encode the renewal request");
	json_decref(payload);
	free(jws);
	return body;
}

/* Save what was issued: certificate and chain (checked against the key that asked), the
 * new revocation secret, then the new key in the old one's place. */
static int renewal_save(struct renew_job *j, json_t *answer, struct err *e)
{
	char *revoke_path = NULL;

	if (ctl_save_issued(j->dir, j->base, answer, j->new_key ? j->new_key_path : j->key_path,
	                    e) < 0 ||
	    ctl_save_revocation_secret(j->dir, j->base, answer, &revoke_path, e) < 0)
		return -1;
	free(revoke_path);
	if (j->new_key != NULL && rename(j->new_key_path, j->key_path) < 0)
		return err_set(e, ERR_INTERNAL, "io",
		               "the certificate is saved but %s could not replace %s: move it "
		               "by hand",
		               j->new_key_path, j->key_path);
	return 0;
}

static int renew_send(const struct ctl *ctl, const struct ctl_cmd *cmd, struct renew_job *j,
                      int rekey, const char *alg, int *status, struct err *e)
{
	const char *domain = j->kind == CERT_USER ? ctl_name_domain_of(j->name) : j->signer.domain;
	struct ctl_client client;
	json_t *body = NULL, *answer = NULL;
	char *csr = NULL, *path = NULL;
	int rc = -1;

	if (ctl_server(ctl, cmd, NULL, &client, status) < 0)
		return -2; /* usage, already printed */
	if (domain[0] == '\0')
		return err_set(e, ERR_INPUT, "bad_certificate",
		               "%s names no domain in its root's constraints", j->chain_path);
	if ((path = ctl_api_path("domains", domain, "/renew")) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return -1;
	}
	if ((csr = renewal_csr(j, rekey, alg, e)) != NULL &&
	    (body = renewal_request(j, csr, e)) != NULL &&
	    ctl_client_call(&client, "POST", path, body, &answer, e) == 0 &&
	    renewal_save(j, answer, e) == 0)
		rc = 0;
	if (rc == 0) {
		if (ctl->json)
			ctl_out_json(stdout, answer);
		else
			ctl_print_issued(j->dir, j->base, answer);
	} else if (j->wrote_new_key && answer == NULL) {
		remove(j->new_key_path); /* nothing was issued for it */
	}
	json_decref(body);
	json_decref(answer);
	free(csr);
	free(path);
	return rc;
}

/* The name and kind of what is renewed: an address, or --server HOST --purpose P. */
static int renew_target(const struct ctl_cmd *cmd, struct ctl_args *a, const char *host,
                        struct renew_job *j, int *status)
{
	enum cert_purpose p;
	struct err e = {0};

	if ((host == NULL) == (a->npos == 0)) {
		*status = ctl_usage(cmd, "give either an address or --server HOST --purpose P");
		return -1;
	}
	if (host == NULL) {
		j->kind = CERT_USER;
		j->purpose = "smime";
		j->name = a->pos[0];
		return ctl_arg_address(cmd, a->pos[0], status);
	}
	j->kind = CERT_SERVER;
	j->name = host;
	if (j->purpose == NULL || cert_purpose_parse(j->purpose, &p, &e) < 0 ||
	    p == CERT_PURPOSE_SMIME) {
		*status = ctl_usage(cmd, "--server needs --purpose mta, keyserver or signing");
		return -1;
	}
	return ctl_arg_domain(cmd, (char *)host, status);
}

int ctl_cmd_key_renew(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *host = NULL, *alg = NULL, *within_s = NULL;
	int rekey = 0, status = CTL_FAIL, rc;
	struct renew_job j = {.dir = "."};
	const struct ctl_opt opts[] = {
	    {"--dir", &j.dir, NULL},
	    {"--server", &host, NULL},
	    {"--purpose", &j.purpose, NULL},
	    {"--rekey", NULL, &rekey},
	    {"--alg", &alg, NULL},
	    {"--if-expiring-within", &within_s, NULL},
	    CTL_COMMON_OPTS(ctl),
	    {NULL, NULL, NULL},
	};
	struct ctl_args a;
	struct err e = {0};
	long long within = 0;

	if (ctl_parse(cmd, opts, argc, argv, 0, 1, &a, &status) < 0 ||
	    renew_target(cmd, &a, host, &j, &status) < 0)
		return status;
	if (within_s != NULL && ctl_args_duration(within_s, &within) < 0)
		return ctl_usage(cmd, "--if-expiring-within takes a duration such as 30d or 12h");
	if (alg != NULL && !rekey)
		return ctl_usage(cmd,
		                 "--alg goes with --rekey (a renewal keeps the key otherwise)");
	if (job_paths(&j, &e) < 0 ||
	    ctl_signer_load(&j.signer, j.key_path, j.cert_path, j.chain_path, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	if (cert_not_after(j.signer.chain[0]) <= time(NULL)) {
		err_set(&e, ERR_FORBIDDEN, "cert_expired",
		        "%s has expired: an expired key renews nothing; enroll again with a token "
		        "from the domain admin",
		        j.cert_path);
		status = ctl_fail(&e);
		goto out;
	}
	if (within_s != NULL && !renewal_due(&j, within)) {
		status = CTL_OK;
		goto out;
	}
	rc = renew_send(ctl, cmd, &j, rekey, alg, &status, &e);
	if (rc == 0)
		status = CTL_OK;
	else if (rc == -1)
		status = ctl_fail(&e);
out:
	job_free(&j);
	return status;
}
