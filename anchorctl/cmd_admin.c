/*
 * cmd_admin.c - the domain admin's commands: enrollment tokens, server
 * certificates, the encryption policy and groups (PROTOCOL.md §5.2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_offline.h"
#include "pki/crypto.h"
#include "pki/name.h"
#include "names.h"
#include "output.h"

#define TTL_MIN 60LL
#define TTL_MAX (30LL * 86400)

/* One admin call; prints the error and returns -1 on failure. */
static int admin_call(const struct ctl_client *c, const char *method, const char *path,
                      json_t *body, json_t **answer, int *status)
{
	struct err e = {0};

	if (path == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	} else if (ctl_client_call(c, method, path, body, answer, &e) == 0) {
		*status = CTL_OK;
		return 0;
	}
	*status = ctl_fail(&e);
	return -1;
}

int ctl_cmd_token_issue(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *ttl_s = NULL, *from = NULL, *out_file = NULL, *domain_s = NULL;
	const struct ctl_opt opts[] = {
	    {"--ttl", &ttl_s, NULL},       {"--from", &from, NULL}, {"--out", &out_file, NULL},
	    {"--domain", &domain_s, NULL}, CTL_COMMON_OPTS(ctl),    {NULL, NULL, NULL},
	};
	char token[CTL_TOKEN_MAX] = "";
	struct ctl_client client;
	struct ctl_args a;
	json_t *body = NULL, *answer = NULL;
	long long ttl = 0;
	const char *address, *domain;
	char *path = NULL;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 0, 1, &a, &status) < 0)
		return status;
	if (from != NULL)
		return a.npos == 0 ? ctl_bulk_token_issue(ctl, cmd, from, out_file, domain_s, ttl_s)
		                   : ctl_usage(cmd, "an address or --from FILE, not both");
	if (a.npos == 0)
		return ctl_usage(cmd, "which address? (or --from FILE for many)");
	if (out_file != NULL || domain_s != NULL)
		return ctl_usage(cmd, "--out and --domain go with --from");
	if (ctl_arg_address(cmd, a.pos[0], &status) < 0)
		return status;
	address = a.pos[0];
	domain = ctl_name_domain_of(address);
	if (ttl_s != NULL && ctl_args_int(ttl_s, TTL_MIN, TTL_MAX, &ttl) < 0)
		return ctl_usage(cmd, "--ttl must be %lld to %lld seconds", TTL_MIN, TTL_MAX);
	if (ctl_admin_client(ctl, cmd, domain, token, &client, &status) < 0)
		goto out;
	body = ttl_s != NULL ? json_pack("{s:s, s:I}", "address", address, "ttl", (json_int_t)ttl)
	                     : json_pack("{s:s}", "address", address);
	path = ctl_api_path("domains", domain, "/tokens");
	if (admin_call(&client, "POST", path, body, &answer, &status) < 0)
		goto out;
	if (ctl->json) {
		ctl_out_json(stdout, answer);
	} else if (json_string_value(json_object_get(answer, "token")) == NULL) {
		status = ctl_fail(
		    &(struct err){ERR_INTERNAL, "bad_response", "the answer holds no token"});
	} else {
		/* stdout gets the token alone, so that scripts can take it as it is. */
		printf("%s\n", json_string_value(json_object_get(answer, "token")));
		fprintf(stderr, "anchorctl: one-time enrollment token for %s, expires %s\n",
		        address, ctl_out_str(answer, "expires"));
	}
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	json_decref(answer);
	free(path);
	return status;
}

static int exists_here(const char *path, void *arg)
{
	return ctl_file_exists(path);
}

/* --domain D (which must hold host), else the longest suffix with an admin.token. */
static const char *server_domain(const struct ctl_cmd *cmd, const char *host, char *given,
                                 int *status)
{
	const char *domain;

	if (given != NULL) {
		if (ctl_arg_domain(cmd, given, status) < 0)
			return NULL;
		if (!name_in_domain(host, given)) {
			*status = ctl_usage(cmd, "%s is not under the domain %s", host, given);
			return NULL;
		}
		return given;
	}
	domain = ctl_name_admin_domain(host, exists_here, NULL);
	if (domain == NULL)
		*status =
		    ctl_usage(cmd,
		              "cannot tell which domain %s belongs to (no <domain>/admin.token"
		              " here): give --domain DOMAIN",
		              host);
	return domain;
}

static const char *const purposes[] = {"mta", "keyserver", "signing", NULL};

static int purpose_ok(const char *p)
{
	for (int i = 0; purposes[i] != NULL; i++)
		if (strcmp(p, purposes[i]) == 0)
			return 1;
	return 0;
}

/* The CSR: from --csr, else a new key and CSR made as <dir>/<base>.key/.csr. */
static char *server_csr(const char *csr_file, const char *dir, const char *base, const char *host,
                        const char *alg, struct err *e)
{
	char *pem = NULL;

	if (csr_file != NULL)
		return ctl_file_read(csr_file, NULL, e);
	if (ctl_make_key_csr(dir, base, CERT_SERVER, host, alg, &pem, NULL, e) < 0)
		return NULL;
	fprintf(stderr, "anchorctl: made %s/%s.key and %s.csr\n", dir, base, base);
	return pem;
}

static int issue_offline(struct ctl *ctl, const struct ctl_cmd *cmd, const char *host,
                         const char *purpose, const char *domain, const char *domain_dir,
                         const char *csr_file, const char *dir, const char *alg, const char *days)
{
	struct ctl_offline_issue r = {.host = host,
	                              .domain = domain,
	                              .domain_dir = domain_dir,
	                              .purpose = purpose,
	                              .csr_file = csr_file,
	                              .dir = dir,
	                              .alg = alg,
	                              .days = 30};
	char *end;

	if (days != NULL) {
		long n = strtol(days, &end, 10);

		if (*days == '\0' || *end != '\0')
			return ctl_usage(cmd, "--days must be a number of days");
		r.days = n < 0 ? 0 : n > 1000 ? 1000 : (int)n; /* the range: offline_args */
	}
	if (domain != NULL && ctl_arg_domain(cmd, (char *)domain, &(int){0}) < 0)
		return CTL_USAGE;
	return ctl_server_issue_offline(ctl, cmd, &r);
}

int ctl_cmd_server_issue(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *purpose = NULL, *csr_file = NULL, *dir = ".", *alg = NULL, *given = NULL;
	const char *domain_dir = NULL, *days = NULL;
	int offline = 0;
	const struct ctl_opt opts[] = {
	    {"--purpose", &purpose, NULL},
	    {"--csr", &csr_file, NULL},
	    {"--dir", &dir, NULL},
	    {"--domain", &given, NULL},
	    {"--alg", &alg, NULL},
	    {"--offline", NULL, &offline},
	    {"--domain-dir", &domain_dir, NULL},
	    {"--days", &days, NULL},
	    CTL_COMMON_OPTS(ctl),
	    {NULL, NULL, NULL},
	};
	char token[CTL_TOKEN_MAX] = "";
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *answer = NULL;
	char *base = NULL, *key_path = NULL, *path = NULL, *csr = NULL;
	const char *host, *domain;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_domain(cmd, a.pos[0], &status) < 0)
		return status;
	host = a.pos[0];
	if (purpose == NULL || !purpose_ok(purpose))
		return ctl_usage(cmd, "--purpose must be mta, keyserver or signing");
	if (alg != NULL && csr_file != NULL)
		return ctl_usage(cmd, "--alg makes a new key; it does not go with --csr");
	if (alg != NULL && crypto_alg_parse(alg, &(enum key_alg){0}, &(int){0}, &e) < 0)
		return ctl_usage(cmd, "%s", e.msg);
	if (offline)
		return issue_offline(ctl, cmd, host, purpose, given, domain_dir, csr_file, dir, alg,
		                     days);
	if (domain_dir != NULL || days != NULL)
		return ctl_usage(cmd, "--domain-dir and --days go with --offline");
	if ((domain = server_domain(cmd, host, (char *)given, &status)) == NULL ||
	    ctl_admin_client(ctl, cmd, domain, token, &client, &status) < 0)
		goto out;
	if (asprintf(&base, "%s.%s", host, purpose) < 0) {
		base = NULL;
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if ((csr = server_csr(csr_file, dir, base, host, alg, &e)) == NULL)
		goto fail;
	body = json_pack("{s:s, s:s}", "csr", csr, "purpose", purpose);
	path = ctl_api_path("domains", domain, "/servers");
	if (admin_call(&client, "POST", path, body, &answer, &status) < 0)
		goto out;
	key_path = csr_file == NULL ? ctl_name_file(dir, base, ".key") : NULL;
	if (ctl_save_issued(dir, base, answer, key_path, &e) < 0)
		goto fail;
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		ctl_print_issued(dir, base, answer);
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	json_decref(answer);
	free(base);
	free(key_path);
	free(path);
	free(csr);
	return status;
}

int ctl_cmd_policy_set(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *corporate = NULL, *mode = NULL;
	const struct ctl_opt opts[] = {
	    {"--corporate-address", &corporate, NULL},
	    {"--mode", &mode, NULL},
	    CTL_COMMON_OPTS(ctl),
	    {NULL, NULL, NULL},
	};
	char token[CTL_TOKEN_MAX] = "";
	struct ctl_client client;
	struct ctl_args a;
	json_t *body = NULL, *answer = NULL;
	const char *domain, *policy;
	char *path = NULL;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 2, 2, &a, &status) < 0 ||
	    ctl_arg_domain(cmd, a.pos[0], &status) < 0)
		return status;
	domain = a.pos[0];
	policy = a.pos[1];
	if (strcmp(policy, "isp") != 0 && strcmp(policy, "corporate") != 0 &&
	    strcmp(policy, "groups") != 0)
		return ctl_usage(cmd, "the policy must be isp, corporate or groups");
	if (strcmp(policy, "corporate") == 0 && corporate == NULL)
		return ctl_usage(cmd, "the corporate policy needs --corporate-address ADDRESS");
	if (corporate != NULL && ctl_arg_address(cmd, (char *)corporate, &status) < 0)
		return status;
	if (mode != NULL && strcmp(mode, "enforce") != 0 && strcmp(mode, "testing") != 0)
		return ctl_usage(cmd, "--mode must be enforce or testing");
	if (ctl_admin_client(ctl, cmd, domain, token, &client, &status) < 0)
		goto out;
	body = json_pack("{s:s}", "policy", policy);
	if (body != NULL && corporate != NULL)
		json_object_set_new(body, "corporate_address", json_string(corporate));
	if (body != NULL && mode != NULL)
		json_object_set_new(body, "mode", json_string(mode));
	path = ctl_api_path("domains", domain, "/policy");
	if (admin_call(&client, "PUT", path, body, &answer, &status) < 0)
		goto out;
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		printf("%s: policy %s, mode %s\n", domain, ctl_out_str(answer, "policy"),
		       ctl_out_str(answer, "mode"));
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	json_decref(answer);
	free(path);
	return status;
}

/* The group's path "/v1/domains/<domain>/groups/<group>". */
static char *group_path(const char *domain, const char *group)
{
	char *esc = ctl_name_path_escape(group), *rest = NULL, *path = NULL;

	if (esc != NULL && asprintf(&rest, "/groups/%s", esc) >= 0)
		path = ctl_api_path("domains", domain, rest);
	free(esc);
	free(rest);
	return path;
}

static int group_cmd(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv, int set)
{
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	char token[CTL_TOKEN_MAX] = "";
	struct ctl_client client;
	struct ctl_args a;
	json_t *body = NULL, *answer = NULL;
	const char *group, *domain;
	char *path = NULL;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, set ? 2 : 1, set ? -1 : 1, &a, &status) < 0)
		return status;
	for (int i = 0; i < a.npos; i++)
		if (ctl_arg_address(cmd, a.pos[i], &status) < 0)
			return status;
	group = a.pos[0];
	domain = ctl_name_domain_of(group);
	if (ctl_admin_client(ctl, cmd, domain, token, &client, &status) < 0)
		goto out;
	if (set) {
		body = json_pack("{s:[]}", "members");
		for (int i = 1; body != NULL && i < a.npos; i++)
			json_array_append_new(json_object_get(body, "members"),
			                      json_string(a.pos[i]));
	}
	path = group_path(domain, group);
	if (admin_call(&client, set ? "PUT" : "DELETE", path, body, &answer, &status) < 0)
		goto out;
	if (ctl->json && answer != NULL)
		ctl_out_json(stdout, answer);
	else if (set)
		printf("group %s: %d member%s\n", group, a.npos - 1, a.npos == 2 ? "" : "s");
	else
		printf("group %s deleted\n", group);
	if (!ctl->json && json_is_true(json_object_get(answer, "rotation_needed")))
		printf("group %s: a member who left holds the current key: run group key rotate "
		       "%s\n",
		       group, group);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	json_decref(answer);
	free(path);
	return status;
}

int ctl_cmd_group_set(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return group_cmd(ctl, cmd, argc, argv, 1);
}

int ctl_cmd_group_delete(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return group_cmd(ctl, cmd, argc, argv, 0);
}

/* One --window/--min-interval/--max-lifetime value into body: a duration, or "default"
 * (null: the key server's own). */
static int renewal_opt(const struct ctl_cmd *cmd, json_t *body, const char *key, const char *opt,
                       const char *text, int *status)
{
	long long secs;

	if (text == NULL)
		return 0;
	if (strcmp(text, "default") == 0) {
		json_object_set_new(body, key, json_null());
		return 0;
	}
	if (ctl_args_duration(text, &secs) < 0) {
		*status = ctl_usage(cmd, "%s: a duration (30d, 12h, seconds) or default", opt);
		return -1;
	}
	json_object_set_new(body, key, json_integer(secs));
	return 0;
}

static void renewal_print(const char *domain, json_t *answer)
{
	json_t *r = json_object_get(answer, "renewal");
	const char *keys[3] = {"window", "min_interval", "max_lifetime"};

	printf("%s: renewal limits", domain);
	for (int i = 0; i < 3; i++) {
		json_t *v = json_object_get(r, keys[i]);
		if (json_is_integer(v))
			printf(" %s=%llds", keys[i], (long long)json_integer_value(v));
		else
			printf(" %s=server", keys[i]);
	}
	printf("\n");
}

int ctl_cmd_domain_renewal(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *window = NULL, *interval = NULL, *lifetime = NULL;
	const struct ctl_opt opts[] = {
	    {"--window", &window, NULL},
	    {"--min-interval", &interval, NULL},
	    {"--max-lifetime", &lifetime, NULL},
	    CTL_COMMON_OPTS(ctl),
	    {NULL, NULL, NULL},
	};
	char token[CTL_TOKEN_MAX] = "";
	struct ctl_client client;
	struct ctl_args a;
	json_t *body = json_object(), *answer = NULL;
	char *path = NULL;
	int status = CTL_FAIL;

	if (body == NULL || ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_domain(cmd, a.pos[0], &status) < 0)
		goto out;
	if (window == NULL && interval == NULL && lifetime == NULL) {
		status = ctl_usage(cmd, "give --window, --min-interval or --max-lifetime");
		goto out;
	}
	if (renewal_opt(cmd, body, "window", "--window", window, &status) < 0 ||
	    renewal_opt(cmd, body, "min_interval", "--min-interval", interval, &status) < 0 ||
	    renewal_opt(cmd, body, "max_lifetime", "--max-lifetime", lifetime, &status) < 0)
		goto out;
	if (ctl_admin_client(ctl, cmd, a.pos[0], token, &client, &status) < 0)
		goto out;
	path = ctl_api_path("domains", a.pos[0], "/renewal");
	if (admin_call(&client, "PUT", path, body, &answer, &status) < 0)
		goto out;
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		renewal_print(a.pos[0], answer);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	json_decref(answer);
	free(path);
	return status;
}
