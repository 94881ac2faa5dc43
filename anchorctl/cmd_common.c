/* cmd_common.c - helpers shared by the commands; see cmd.h. */
#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "pki/crypto.h"
#include "pki/csr.h"
#include "pki/name.h"
#include "names.h"
#include "output.h"

int ctl_parse(const struct ctl_cmd *cmd, const struct ctl_opt *opts, int argc, char **argv, int min,
              int max, struct ctl_args *a, int *status)
{
	char msg[200];

	if (ctl_args_parse(opts, argc - 1, argv + 1, 0, a, msg, sizeof(msg)) < 0) {
		*status = ctl_usage(cmd, "%s", msg);
		return -1;
	}
	if (a->help) {
		*status = ctl_help(cmd);
		return -1;
	}
	if (a->npos < min) {
		*status = ctl_usage(cmd, "missing argument");
		return -1;
	}
	if (max >= 0 && a->npos > max) {
		*status = ctl_usage(cmd, "unexpected argument '%s'", a->pos[max]);
		return -1;
	}
	return 0;
}

/*
 * A name argument into its canonical form (pki/name.h: case, NFC, U-labels into
 * A-labels), in place.  An A-label can be longer than the U-label it encodes: such a
 * name stays as the user wrote it, valid and with the same canonical form, which the
 * key server computes again (PROTOCOL.md "Names").
 */
static int canon_arg(const struct ctl_cmd *cmd, char *arg, int address, int *status)
{
	char canon[256];
	struct err e = {0};

	if ((address ? name_canon_address(arg, canon, sizeof(canon), &e)
	             : name_canon_idn(arg, canon, sizeof(canon), &e)) < 0) {
		*status = ctl_usage(cmd, "'%s' is not a %s: %s", arg,
		                    address ? "mail address" : "domain name", e.msg);
		return -1;
	}
	if (strlen(canon) <= strlen(arg))
		memcpy(arg, canon, strlen(canon) + 1);
	return 0;
}

int ctl_arg_domain(const struct ctl_cmd *cmd, char *arg, int *status)
{
	return canon_arg(cmd, arg, 0, status);
}

int ctl_arg_address(const struct ctl_cmd *cmd, char *arg, int *status)
{
	return canon_arg(cmd, arg, 1, status);
}

int ctl_arg_address_canon(const struct ctl_cmd *cmd, const char *arg, char *canon, int *status)
{
	struct err e = {0};

	if (name_canon_address(arg, canon, CTL_ADDR_CANON, &e) < 0) {
		*status = ctl_usage(cmd, "'%s' is not a mail address: %s", arg, e.msg);
		return -1;
	}
	return 0;
}

int ctl_server(const struct ctl *ctl, const struct ctl_cmd *cmd, const char *token,
               struct ctl_client *c, int *status)
{
	struct err e = {0};

	if (ctl->server == NULL || *ctl->server == '\0') {
		*status = ctl_usage(cmd, "no key server: give -s URL or set ANCHOR_SERVER");
		return -1;
	}
	if (ctl_client_check_url(ctl->server, &e) < 0) {
		*status = ctl_usage(cmd, "%s", e.msg);
		return -1;
	}
	c->resolve = ctl->resolve != NULL && *ctl->resolve != '\0' ? ctl->resolve : NULL;
	if (c->resolve != NULL && ctl_client_check_resolve(c->resolve, ctl->server, &e) < 0) {
		*status = ctl_usage(cmd, "%s", e.msg);
		return -1;
	}
	c->base_url = ctl->server;
	c->cacert = ctl->cacert != NULL && *ctl->cacert != '\0' ? ctl->cacert : NULL;
	c->token = token;
	c->basic = NULL;
	return 0;
}

int ctl_service(const struct ctl *ctl, const struct ctl_cmd *cmd, const char *env, const char *what,
                struct ctl_client *c, int *status)
{
	const char *own = getenv(env), *ks = getenv("ANCHOR_SERVER");
	struct ctl tmp = *ctl;

	/* ANCHOR_SERVER names the key server: it gives way to the service's own variable. */
	if (own != NULL && *own != '\0' && (ctl->server == NULL || ctl->server == ks))
		tmp.server = own;
	if (tmp.server == NULL || *tmp.server == '\0') {
		*status = ctl_usage(cmd, "no %s: give -s URL or set %s", what, env);
		return -1;
	}
	return ctl_server(&tmp, cmd, NULL, c, status);
}

int ctl_token(const struct ctl *ctl, const char *env, const char *fallback, const char *what,
              char out[CTL_TOKEN_MAX], struct err *e)
{
	const char *value;

	if (ctl->token_file != NULL)
		return ctl_token_read(ctl->token_file, out, e);
	value = getenv(env);
	if (value != NULL && *value != '\0') {
		snprintf(out, CTL_TOKEN_MAX, "%s", value);
		if (strlen(value) >= CTL_TOKEN_MAX || ctl_token_strip(out) < 0)
			return err_set(e, ERR_INPUT, "bad_token", "%s does not hold a token", env);
		return 0;
	}
	if (fallback != NULL && ctl_file_exists(fallback))
		return ctl_token_read(fallback, out, e);
	if (fallback != NULL)
		return err_set(e, ERR_AUTH, "no_token", "no %s token: use --token-file, %s or %s",
		               what, env, fallback);
	return err_set(e, ERR_AUTH, "no_token", "no %s token: use --token-file or %s", what, env);
}

int ctl_admin_client(const struct ctl *ctl, const struct ctl_cmd *cmd, const char *domain,
                     char token[CTL_TOKEN_MAX], struct ctl_client *c, int *status)
{
	char *fallback = ctl_name_file(domain, "admin.token", NULL);
	struct err e = {0};
	int rc;

	if (ctl_server(ctl, cmd, NULL, c, status) < 0) {
		free(fallback);
		return -1;
	}
	if (fallback == NULL)
		rc = err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	else
		rc = ctl_token(ctl, "ANCHOR_ADMIN_TOKEN", fallback, "admin", token, &e);
	free(fallback);
	if (rc < 0) {
		*status = ctl_fail(&e);
		return -1;
	}
	c->token = token;
	return 0;
}

char *ctl_api_path(const char *a, const char *b, const char *rest)
{
	char *esc = ctl_name_path_escape(b), *path = NULL;

	if (esc == NULL)
		return NULL;
	if (asprintf(&path, "/v1/%s/%s%s", a, esc, rest != NULL ? rest : "") < 0)
		path = NULL;
	free(esc);
	return path;
}

int ctl_make_key_csr(const char *dir, const char *base, enum cert_kind kind, const char *name,
                     const char *alg, char **csr_pem, const char **alg_name, struct err *e)
{
	char *key_path = ctl_name_file(dir, base, ".key");
	char *csr_path = ctl_name_file(dir, base, ".csr");
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	char *pem = NULL;
	enum key_alg kalg = KEY_ED25519;
	int bits = 0, rc = -1, wrote_key = 0;

	if (key_path == NULL || csr_path == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if (ctl_file_exists(key_path) || ctl_file_exists(csr_path)) {
		err_set(e, ERR_CONFLICT, "exists", "%s already exists; not overwriting it",
		        ctl_file_exists(key_path) ? key_path : csr_path);
		goto out;
	}
	if (ctl_dir_make(dir, e) < 0 ||
	    (alg != NULL && crypto_alg_parse(alg, &kalg, &bits, e) < 0) ||
	    (key = crypto_key_generate(kalg, bits, e)) == NULL ||
	    (req = csr_make(key, kind, name, e)) == NULL || (pem = csr_to_pem(req, e)) == NULL)
		goto out;
	if (crypto_key_write_private(key_path, key, e) < 0)
		goto out;
	wrote_key = 1;
	if (ctl_file_write(csr_path, pem, strlen(pem), 0644, 0, e) < 0)
		goto out;
	if (alg_name != NULL)
		*alg_name = crypto_key_alg_name(key);
	rc = 0;
out:
	if (rc < 0 && wrote_key)
		remove(key_path); /* a key without its request is of no use */
	if (rc == 0 && csr_pem != NULL) {
		*csr_pem = pem;
		pem = NULL;
	}
	free(pem);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	free(key_path);
	free(csr_path);
	return rc;
}

static X509 *pem_field(const json_t *v, const char *what, struct err *e)
{
	const char *pem = json_string_value(v);

	if (pem == NULL) {
		err_set(e, ERR_INTERNAL, "bad_response", "the answer has no %s certificate", what);
		return NULL;
	}
	return cert_from_pem(pem, strlen(pem), e);
}

static int check_key(X509 *leaf, const char *key_path, struct err *e)
{
	EVP_PKEY *key;
	int same;

	if (key_path == NULL || !ctl_file_exists(key_path))
		return 0;
	key = crypto_key_read_private(key_path, e);
	if (key == NULL)
		return -1;
	same = crypto_key_matches(key, X509_get0_pubkey(leaf));
	EVP_PKEY_free(key);
	if (!same)
		return err_set(e, ERR_INTERNAL, "bad_response",
		               "the issued certificate is not for the key in %s", key_path);
	return 0;
}

static int write_pems(const char *dir, const char *base, const char *leaf, const json_t *chain,
                      struct err *e)
{
	char *cert_path = ctl_name_file(dir, base, ".pem");
	char *chain_path = ctl_name_file(dir, base, ".chain.pem");
	const char *issuer = json_string_value(json_array_get(chain, 0));
	const char *root = json_string_value(json_array_get(chain, 1));
	size_t ilen = strlen(issuer);
	char *joined = NULL;
	int rc = -1;

	if (cert_path == NULL || chain_path == NULL ||
	    asprintf(&joined, "%s%s%s", issuer, ilen > 0 && issuer[ilen - 1] != '\n' ? "\n" : "",
	             root) < 0) {
		joined = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if (ctl_file_write(cert_path, leaf, strlen(leaf), 0644, 1, e) == 0 &&
	    ctl_file_write(chain_path, joined, strlen(joined), 0644, 1, e) == 0)
		rc = 0;
out:
	free(joined);
	free(cert_path);
	free(chain_path);
	return rc;
}

int ctl_save_issued(const char *dir, const char *base, const json_t *answer, const char *key_path,
                    struct err *e)
{
	const json_t *chain = json_object_get(answer, "chain");
	X509 *leaf = NULL, *issuer = NULL, *root = NULL;
	int rc = -1;

	if (!json_is_array(chain) || json_array_size(chain) < 2) {
		err_set(e, ERR_INTERNAL, "bad_response", "the answer has no issuer/root chain");
		return -1;
	}
	leaf = pem_field(json_object_get(answer, "certificate"), "issued", e);
	if (leaf == NULL || (issuer = pem_field(json_array_get(chain, 0), "issuer", e)) == NULL ||
	    (root = pem_field(json_array_get(chain, 1), "root", e)) == NULL)
		goto out;
	/* The server is trusted for nothing: what it issued must verify on its own. */
	if (cert_verify_chain(leaf, issuer, root, e) < 0 || check_key(leaf, key_path, e) < 0)
		goto out;
	rc = write_pems(dir, base, json_string_value(json_object_get(answer, "certificate")), chain,
	                e);
out:
	X509_free(leaf);
	X509_free(issuer);
	X509_free(root);
	return rc;
}

void ctl_print_issued(const char *dir, const char *base, const json_t *answer)
{
	char *cert_path = ctl_name_file(dir, base, ".pem");
	char *chain_path = ctl_name_file(dir, base, ".chain.pem");

	printf("certificate: %s\n", cert_path != NULL ? cert_path : base);
	printf("chain:       %s\n", chain_path != NULL ? chain_path : base);
	printf("key id:      %s\n", ctl_out_str(answer, "key_id"));
	printf("fingerprint: %s\n", ctl_out_str(answer, "fingerprint"));
	printf("algorithm:   %s\n", ctl_out_str(answer, "algorithm"));
	printf("not after:   %s\n", ctl_out_str(answer, "not_after"));
	free(cert_path);
	free(chain_path);
}
