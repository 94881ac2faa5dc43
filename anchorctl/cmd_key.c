/*
 * cmd_key.c - the user's side: "key new" (key and CSR, locally), "key
 * enroll" (submit the CSR with the one-time token) and "pin".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "cmd.h"
#include "pki/crypto.h"
#include "names.h"
#include "output.h"

int ctl_cmd_key_new(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *dir = ".", *alg = NULL, *host = NULL;
	const struct ctl_opt opts[] = {
	    {"--dir", &dir, NULL}, {"--alg", &alg, NULL}, {"--server", &host, NULL},
	    CTL_COMMON_OPTS(ctl),  {NULL, NULL, NULL},
	};
	struct ctl_args a;
	struct err e = {0};
	const char *alg_name = "?";
	char canon[CTL_ADDR_CANON];
	char *name, *key_path = NULL, *csr_path = NULL;
	enum cert_kind kind;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 0, 1, &a, &status) < 0)
		return status;
	if ((host == NULL) == (a.npos == 0))
		return ctl_usage(cmd, "give either an address or --server HOST");
	if (host != NULL) {
		name = (char *)host;
		kind = CERT_SERVER;
		if (ctl_arg_domain(cmd, name, &status) < 0)
			return status;
	} else {
		name = canon;
		kind = CERT_USER;
		if (ctl_arg_address_canon(cmd, a.pos[0], canon, &status) < 0)
			return status;
	}
	if (alg != NULL && crypto_alg_parse(alg, &(enum key_alg){0}, &(int){0}, &e) < 0)
		return ctl_usage(cmd, "%s", e.msg);
	key_path = ctl_name_file(dir, name, ".key");
	csr_path = ctl_name_file(dir, name, ".csr");
	if (key_path == NULL || csr_path == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		status = ctl_fail(&e);
	} else if (ctl_make_key_csr(dir, name, kind, name, alg, NULL, &alg_name, &e) < 0) {
		status = ctl_fail(&e);
	} else {
		printf("key:       %s (%s, mode 0600)\n", key_path, alg_name);
		printf("request:   %s\n", csr_path);
		printf("algorithm: %s\n", alg_name);
		status = CTL_OK;
	}
	free(key_path);
	free(csr_path);
	return status;
}

static int enroll_token(const struct ctl *ctl, const char *given, char out[CTL_TOKEN_MAX],
                        struct err *e)
{
	if (given != NULL && ctl->token_file != NULL)
		return err_set(e, ERR_INPUT, "usage", "give --token or --token-file, not both");
	if (ctl->token_file != NULL)
		return ctl_token_read(ctl->token_file, out, e);
	if (given == NULL)
		return err_set(e, ERR_INPUT, "usage",
		               "the enrollment token is missing: give --token TOKEN or "
		               "--token-file FILE");
	snprintf(out, CTL_TOKEN_MAX, "%s", given);
	if (strlen(given) >= CTL_TOKEN_MAX || ctl_token_strip(out) < 0)
		return err_set(e, ERR_INPUT, "usage", "--token does not hold a token");
	return 0;
}

int ctl_save_revocation_secret(const char *dir, const char *base, json_t *answer, char **path_out,
                               struct err *e)
{
	const char *secret = json_string_value(json_object_get(answer, "revocation_secret"));
	char *path, *text = NULL;
	int rc;

	*path_out = NULL;
	if (secret == NULL)
		return 0;
	path = ctl_name_file(dir, base, ".revoke");
	if (path == NULL || asprintf(&text, "%s\n", secret) < 0) {
		free(path);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	rc = ctl_file_write(path, text, strlen(text), 0600, 1, e);
	explicit_bzero(text, strlen(text));
	free(text);
	json_object_del(answer, "revocation_secret");
	if (rc < 0) {
		free(path);
		return -1;
	}
	*path_out = path;
	return 0;
}

int ctl_cmd_key_enroll(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *dir = ".", *given = NULL;
	const struct ctl_opt opts[] = {
	    {"--dir", &dir, NULL},
	    {"--token", &given, NULL},
	    CTL_COMMON_OPTS(ctl),
	    {NULL, NULL, NULL},
	};
	char token[CTL_TOKEN_MAX] = "", canon[CTL_ADDR_CANON];
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *answer = NULL;
	char *csr = NULL, *csr_path = NULL, *key_path = NULL, *path = NULL, *revoke_path = NULL;
	const char *address;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_address_canon(cmd, a.pos[0], canon, &status) < 0)
		return status;
	address = canon;
	if (enroll_token(ctl, given, token, &e) < 0) {
		if (strcmp(e.code, "usage") == 0)
			return ctl_usage(cmd, "%s", e.msg);
		return ctl_fail(&e);
	}
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		goto out;
	csr_path = ctl_name_file(dir, address, ".csr");
	key_path = ctl_name_file(dir, address, ".key");
	path = ctl_api_path("domains", ctl_name_domain_of(address), "/enroll");
	if (csr_path == NULL || key_path == NULL || path == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if ((csr = ctl_file_read(csr_path, NULL, &e)) == NULL)
		goto fail;
	body = json_pack("{s:s, s:s}", "token", token, "csr", csr);
	if (body == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "cannot encode the request");
		goto fail;
	}
	if (ctl_client_call(&client, "POST", path, body, &answer, &e) < 0 ||
	    ctl_save_issued(dir, address, answer, key_path, &e) < 0 ||
	    ctl_save_revocation_secret(dir, address, answer, &revoke_path, &e) < 0)
		goto fail;
	if (ctl->json) {
		ctl_out_json(stdout, answer);
	} else {
		ctl_print_issued(dir, address, answer);
		if (revoke_path != NULL)
			printf("revocation secret: %s (0600): it revokes this key if the key is\n"
			       "                   lost; keep a copy offline\n",
			       revoke_path);
	}
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	json_decref(answer);
	free(csr);
	free(csr_path);
	free(key_path);
	free(path);
	free(revoke_path);
	return status;
}

int ctl_cmd_pin(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	char pin[CRYPTO_PIN_MAX];
	struct ctl_args a;
	struct err e = {0};
	size_t len = 0;
	char *pem;
	X509 *cert = NULL;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0)
		return status;
	pem = ctl_file_read(a.pos[0], &len, &e);
	if (pem == NULL || (cert = cert_from_pem(pem, len, &e)) == NULL ||
	    crypto_key_pin(X509_get0_pubkey(cert), pin, &e) < 0) {
		status = ctl_fail(&e);
	} else {
		printf("%s\n", pin);
		status = CTL_OK;
	}
	X509_free(cert);
	free(pem);
	return status;
}
