/*
 * cmd_domain.c - "domain init" (make the domain's root and issuer, offline)
 * and "domain register" (hand root, issuer and issuer key to a key server).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "cmd.h"
#include "pki/crypto.h"
#include "names.h"
#include "output.h"

#define ROOT_DAYS_DEFAULT 3650
#define ISSUER_DAYS_DEFAULT 730

enum { F_ROOT_KEY, F_ROOT_PEM, F_ISSUER_KEY, F_ISSUER_PEM, F_COUNT };
static const char *const domain_files[F_COUNT] = {"root.key", "root.pem", "issuer.key",
                                                  "issuer.pem"};

struct domain_set {
	EVP_PKEY *root_key, *issuer_key;
	X509 *root, *issuer;
	char pin[CRYPTO_PIN_MAX];
};

static void domain_set_free(struct domain_set *s)
{
	EVP_PKEY_free(s->root_key);
	EVP_PKEY_free(s->issuer_key);
	X509_free(s->root);
	X509_free(s->issuer);
}

static int domain_set_make(struct domain_set *s, const char *domain, const char *alg, int root_days,
                           int issuer_days, struct err *e)
{
	enum key_alg kalg = KEY_ED25519;
	int bits = 0;

	if (alg != NULL && crypto_alg_parse(alg, &kalg, &bits, e) < 0)
		return -1;
	if ((s->root_key = crypto_key_generate(kalg, bits, e)) == NULL ||
	    (s->issuer_key = crypto_key_generate(kalg, bits, e)) == NULL ||
	    (s->root = cert_make_root(s->root_key, domain, root_days, e)) == NULL ||
	    (s->issuer = cert_make_issuer(s->issuer_key, s->root, s->root_key, domain, issuer_days,
	                                  e)) == NULL ||
	    crypto_key_pin(s->root_key, s->pin, e) < 0)
		return -1;
	return 0;
}

static int write_cert(const char *path, X509 *cert, struct err *e)
{
	char *pem = cert_to_pem(cert, e);
	int rc;

	if (pem == NULL)
		return -1;
	rc = ctl_file_write(path, pem, strlen(pem), 0644, 0, e);
	free(pem);
	return rc;
}

/* Write the four files; on failure remove those this call wrote. */
static int domain_set_write(struct domain_set *s, char *paths[F_COUNT], struct err *e)
{
	int n;

	for (n = 0; n < F_COUNT; n++) {
		int rc;

		switch (n) {
		case F_ROOT_KEY:
			rc = crypto_key_write_private(paths[n], s->root_key, e);
			break;
		case F_ROOT_PEM:
			rc = write_cert(paths[n], s->root, e);
			break;
		case F_ISSUER_KEY:
			rc = crypto_key_write_private(paths[n], s->issuer_key, e);
			break;
		default:
			rc = write_cert(paths[n], s->issuer, e);
			break;
		}
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	while (n-- > 0)
		remove(paths[n]);
	return -1;
}

static int domain_files_new(const char *dir, char *paths[F_COUNT], struct err *e)
{
	for (int i = 0; i < F_COUNT; i++) {
		paths[i] = ctl_name_file(dir, domain_files[i], NULL);
		if (paths[i] == NULL)
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		if (ctl_file_exists(paths[i]))
			return err_set(e, ERR_CONFLICT, "exists",
			               "%s already exists; not overwriting the domain's keys",
			               paths[i]);
	}
	return 0;
}

int ctl_cmd_domain_init(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *dir = NULL, *alg = NULL, *days_s = NULL, *idays_s = NULL;
	const struct ctl_opt opts[] = {
	    {"--dir", &dir, NULL},     {"--alg", &alg, NULL},
	    {"--days", &days_s, NULL}, {"--issuer-days", &idays_s, NULL},
	    CTL_COMMON_OPTS(ctl),      {NULL, NULL, NULL},
	};
	struct domain_set set = {0};
	char *paths[F_COUNT] = {0};
	struct ctl_args a;
	struct err e = {0};
	long long days = ROOT_DAYS_DEFAULT, idays = ISSUER_DAYS_DEFAULT;
	const char *domain;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_domain(cmd, a.pos[0], &status) < 0)
		return status;
	domain = a.pos[0];
	if (days_s != NULL && ctl_args_int(days_s, 1, 36500, &days) < 0)
		return ctl_usage(cmd, "--days must be a number of days, 1 to 36500");
	if (idays_s != NULL && ctl_args_int(idays_s, 1, 36500, &idays) < 0)
		return ctl_usage(cmd, "--issuer-days must be a number of days, 1 to 36500");
	if (alg != NULL && crypto_alg_parse(alg, &(enum key_alg){0}, &(int){0}, &e) < 0)
		return ctl_usage(cmd, "%s", e.msg);
	if (dir == NULL)
		dir = domain;

	if (domain_files_new(dir, paths, &e) < 0 || ctl_dir_make(dir, &e) < 0 ||
	    domain_set_make(&set, domain, alg, (int)days, (int)idays, &e) < 0 ||
	    domain_set_write(&set, paths, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	printf("root key:    %s (%s; keep it offline)\n", paths[F_ROOT_KEY],
	       crypto_key_alg_name(set.root_key));
	printf("root cert:   %s (valid %lld days)\n", paths[F_ROOT_PEM], days);
	printf("issuer key:  %s (goes to the key server with 'domain register')\n",
	       paths[F_ISSUER_KEY]);
	printf("issuer cert: %s (valid %lld days)\n", paths[F_ISSUER_PEM], idays);
	printf("pin: %s\n", set.pin);
	printf("Publish this DNS record:\n");
	printf("_anchor.%s. IN TXT \"v=ANCHOR1; pin=%s; mode=enforce\"\n", domain, set.pin);
	status = CTL_OK;
out:
	domain_set_free(&set);
	for (int i = 0; i < F_COUNT; i++)
		free(paths[i]);
	return status;
}

/* ---- domain register ---- */

struct reg_files {
	char *root, *issuer, *issuer_key;
};

static void reg_files_free(struct reg_files *f)
{
	free(f->root);
	if (f->issuer_key != NULL)
		explicit_bzero(f->issuer_key, strlen(f->issuer_key));
	free(f->issuer_key);
	free(f->issuer);
}

/* Read the set and check it locally before the issuer key travels anywhere. */
static int reg_files_load(const char *dir, const char *domain, struct reg_files *f, struct err *e)
{
	char *p[3] = {ctl_name_file(dir, "root.pem", NULL), ctl_name_file(dir, "issuer.pem", NULL),
	              ctl_name_file(dir, "issuer.key", NULL)};
	X509 *root = NULL, *issuer = NULL;
	EVP_PKEY *key = NULL;
	int rc = -1;

	if (p[0] == NULL || p[1] == NULL || p[2] == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if ((f->root = ctl_file_read(p[0], NULL, e)) == NULL ||
	    (f->issuer = ctl_file_read(p[1], NULL, e)) == NULL ||
	    (f->issuer_key = ctl_file_read(p[2], NULL, e)) == NULL)
		goto out;
	if ((root = cert_from_pem(f->root, strlen(f->root), e)) == NULL ||
	    (issuer = cert_from_pem(f->issuer, strlen(f->issuer), e)) == NULL ||
	    (key = crypto_key_private_from_pem(f->issuer_key, strlen(f->issuer_key), e)) == NULL ||
	    cert_check_domain_set(domain, root, issuer, key, e) < 0)
		goto out;
	rc = 0;
out:
	X509_free(root);
	X509_free(issuer);
	EVP_PKEY_free(key);
	for (int i = 0; i < 3; i++)
		free(p[i]);
	return rc;
}

static json_t *reg_body(const char *domain, const struct reg_files *f, const char *policy,
                        const char *mode)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "domain", domain, "root", f->root,
	                 "issuer", f->issuer, "issuer_key", f->issuer_key, "policy", policy, "mode",
	                 mode);
}

static int reg_report(const struct ctl *ctl, const char *domain, json_t *answer,
                      const char *token_path, int print_token, struct err *e)
{
	const char *token = json_string_value(json_object_get(answer, "admin_token"));
	char *line = NULL;
	const json_t *pins;
	size_t i;
	int wrote = 0;

	if (token == NULL)
		return err_set(e, ERR_INTERNAL, "bad_response", "the answer holds no admin token");
	if (!ctl_file_exists(token_path)) {
		if (asprintf(&line, "%s\n", token) < 0)
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		if (ctl_file_write(token_path, line, strlen(line), 0600, 0, e) < 0) {
			explicit_bzero(line, strlen(line));
			free(line);
			return -1;
		}
		explicit_bzero(line, strlen(line));
		free(line);
		wrote = 1;
	}
	if (ctl->json) {
		if (!print_token)
			json_object_del(answer, "admin_token");
		return ctl_out_json(stdout, answer);
	}
	printf("registered %s\n", domain);
	pins = json_object_get(answer, "pins");
	for (i = 0; i < json_array_size(pins); i++)
		printf("pin: %s\n", json_string_value(json_array_get(pins, i)));
	if (print_token)
		printf("admin token: %s\n", token);
	if (wrote)
		printf("admin token written to %s (mode 0600)\n", token_path);
	return 0;
}

static int check_choice(const char *value, const char *const *choices)
{
	for (; *choices != NULL; choices++)
		if (strcmp(value, *choices) == 0)
			return 0;
	return -1;
}

static const char *const policies[] = {"isp", "corporate", "groups", NULL};
static const char *const modes[] = {"enforce", "testing", NULL};

int ctl_cmd_domain_register(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *dir = NULL, *policy = "isp", *mode = "enforce";
	int print_token = 0;
	const struct ctl_opt opts[] = {
	    {"--dir", &dir, NULL},   {"--policy", &policy, NULL},
	    {"--mode", &mode, NULL}, {"--print-token", NULL, &print_token},
	    CTL_COMMON_OPTS(ctl),    {NULL, NULL, NULL},
	};
	char token[CTL_TOKEN_MAX] = "";
	struct reg_files files = {0};
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *answer = NULL;
	char *token_path = NULL;
	const char *domain;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_domain(cmd, a.pos[0], &status) < 0)
		return status;
	domain = a.pos[0];
	if (check_choice(policy, policies) < 0)
		return ctl_usage(cmd, "--policy must be isp, corporate or groups");
	if (check_choice(mode, modes) < 0)
		return ctl_usage(cmd, "--mode must be enforce or testing");
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		return status;
	if (dir == NULL)
		dir = domain;
	token_path = ctl_name_file(dir, "admin.token", NULL);
	if (token_path == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	/* The admin token is shown once: make sure there is somewhere to keep it. */
	if (ctl_file_exists(token_path) && !print_token) {
		err_set(&e, ERR_CONFLICT, "exists",
		        "%s already exists; move it away or use --print-token", token_path);
		goto fail;
	}
	if (ctl_token(ctl, "ANCHOR_OPERATOR_TOKEN", NULL, "operator", token, &e) < 0 ||
	    reg_files_load(dir, domain, &files, &e) < 0)
		goto fail;
	body = reg_body(domain, &files, policy, mode);
	if (body == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "cannot encode the request");
		goto fail;
	}
	client.token = token;
	if (ctl_client_call(&client, "POST", "/v1/admin/domains", body, &answer, &e) < 0 ||
	    reg_report(ctl, domain, answer, token_path, print_token, &e) < 0)
		goto fail;
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	json_decref(answer);
	reg_files_free(&files);
	free(token_path);
	return status;
}
