/*
 * cmd_route.c - routes (PROTOCOL.md §6): the domain admin sets receiving
 * servers and aliases, a user sets the alias of their own address with a
 * request signed by their key, anybody reads a signed route and checks it
 * against the domain's pins, and `route resolve` walks an address across
 * domains with lib/resolve, as a sending relay would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "cmd.h"
#include "cmd_route.h"
#include "pki/crypto.h"
#include "pki/jws.h"
#include "names.h"
#include "output.h"
#include "dns/resolve.h"

#define ROUTE_TTL_MIN 60LL
#define ROUTE_TTL_MAX 86400LL
#define ROUTE_MAX_SERVERS 32
#define ROUTE_MAX_PINS 8
#define ROUTE_REPEAT_MAX 10000000LL

/* ---- repeatable options ---- */

/*
 * args.c keeps one value per option; --server and --pin may repeat.  Take
 * every "NAME VALUE" / "NAME=VALUE" out of argv into vals, leaving the rest in
 * order for ctl_parse.  Returns the count, or -1 (usage message in msg).
 */
static int take_repeated(const char *name, int *argc, char **argv, const char **vals, int max,
                         char *msg, size_t msglen)
{
	size_t nlen = strlen(name);
	int n = 0, out = 0;

	for (int i = 0; i < *argc; i++) {
		const char *v = NULL;
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], name) == 0) {
			if (i + 1 >= *argc) {
				snprintf(msg, msglen, "option '%s' needs a value", name);
				return -1;
			}
			v = argv[++i];
		} else if (strncmp(argv[i], name, nlen) == 0 && argv[i][nlen] == '=') {
			v = argv[i] + nlen + 1;
		} else {
			argv[out++] = argv[i];
			continue;
		}
		if (*v == '\0' || n == max) {
			snprintf(msg, msglen,
			         *v == '\0' ? "option '%s' needs a non-empty value"
			                    : "option '%s' given too often",
			         name);
			return -1;
		}
		vals[n++] = v;
	}
	*argc = out;
	return n;
}

/* ---- names, tokens, calls ---- */

/* An address or a bare domain (the domain's default route), lowercased and checked. */
static int route_name(const struct ctl_cmd *cmd, char *arg, int *is_domain, int *status)
{
	*is_domain = strchr(arg, '@') == NULL;
	return *is_domain ? ctl_arg_domain(cmd, arg, status) : ctl_arg_address(cmd, arg, status);
}

static const char *domain_of(const char *name, int is_domain)
{
	return is_domain ? name : ctl_name_domain_of(name);
}

/* "/v1/routes/<address>" or "/v1/domains/<domain>/route"; malloc'd or NULL. */
static char *route_path(const char *name, int is_domain)
{
	return is_domain ? ctl_api_path("domains", name, "/route")
	                 : ctl_api_path("routes", name, NULL);
}

static int admin_client(const struct ctl *ctl, const struct ctl_cmd *cmd, const char *domain,
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

static int parse_ttl(const struct ctl_cmd *cmd, const char *text, long long *ttl, int *status)
{
	*ttl = 0;
	if (text != NULL && ctl_args_int(text, ROUTE_TTL_MIN, ROUTE_TTL_MAX, ttl) < 0) {
		*status = ctl_usage(cmd, "--ttl must be %lld to %lld seconds", ROUTE_TTL_MIN,
		                    ROUTE_TTL_MAX);
		return -1;
	}
	return 0;
}

/* The domain's pins from its object on the key server (GET /v1/domains/{d}). */
static int server_pins(const struct ctl_client *c, const char *domain, char pins[][CRYPTO_PIN_MAX],
                       int *npins, json_t **object, struct err *e)
{
	char *path = ctl_api_path("domains", domain, NULL);
	json_t *obj = NULL, *p;
	size_t i;
	int rc = -1;

	*npins = 0;
	if (path == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ctl_client_call(c, "GET", path, NULL, &obj, e) < 0)
		goto out;
	json_array_foreach(json_object_get(obj, "pins"), i, p)
	{
		if (json_is_string(p) && *npins < ROUTE_MAX_PINS)
			snprintf(pins[(*npins)++], CRYPTO_PIN_MAX, "%s", json_string_value(p));
	}
	if (*npins == 0) {
		err_set(e, ERR_INTERNAL, "bad_response", "the domain object of %s lists no pin",
		        domain);
		goto out;
	}
	rc = 0;
	if (object != NULL) {
		*object = obj;
		obj = NULL;
	}
out:
	json_decref(obj);
	free(path);
	return rc;
}

/* ---- showing a verified route ---- */

static void show_route(const json_t *p, const char *verified_by)
{
	const json_t *servers = json_object_get(p, "servers"), *s;
	size_t i;

	printf("route:    %s\n", ctl_out_str(p, "name"));
	printf("domain:   %s\n", ctl_out_str(p, "domain"));
	printf("scope:    %s\n", ctl_out_str(p, "scope"));
	if (json_is_array(servers)) {
		printf("servers:\n");
		json_array_foreach(servers, i, s)
		{
			printf("  %s:%lld priority %lld weight %lld pin %s\n",
			       ctl_out_str(s, "host"),
			       (long long)json_integer_value(json_object_get(s, "port")),
			       (long long)json_integer_value(json_object_get(s, "priority")),
			       (long long)json_integer_value(json_object_get(s, "weight")),
			       ctl_out_str(s, "pin"));
		}
	} else {
		printf("alias:    %s\n", ctl_out_str(p, "alias"));
	}
	printf("ttl:      %lld\n", (long long)json_integer_value(json_object_get(p, "ttl")));
	printf("issued:   %s\n", ctl_out_str(p, "issued"));
	printf("expires:  %s\n", ctl_out_str(p, "expires"));
	printf("updated:  %s\n", ctl_out_str(p, "updated"));
	printf("verified: %s\n", verified_by);
}

/* Check a signed answer (parsed JSON) for name against pins; prints it on success. */
static int check_and_show(const struct ctl *ctl, const json_t *jws, const char *name,
                          const char pins[][CRYPTO_PIN_MAX], int npins, const char *how,
                          struct err *e)
{
	char *text = jws != NULL ? json_dumps(jws, JSON_COMPACT) : NULL;
	json_t *payload = NULL;
	char verified[DNS_NAME_MAX + 128];

	if (text == NULL)
		return err_set(e, ERR_INTERNAL, "bad_response", "the key server sent no route");
	if (resolve_check_answer(text, strlen(text), name, pins, npins, time(NULL), &payload, e) <
	    0) {
		free(text);
		return -1;
	}
	free(text);
	if (ctl->json) {
		ctl_out_json(stdout, payload);
	} else {
		snprintf(verified, sizeof(verified), "signature and chain to a root pinned %s",
		         how);
		show_route(payload, verified);
	}
	json_decref(payload);
	return 0;
}

/* After a change: show the server's signed answer, checked against the domain's pins. */
static int show_answer(const struct ctl *ctl, const struct ctl_client *c, const char *name,
                       int is_domain, const json_t *answer)
{
	char pins[ROUTE_MAX_PINS][CRYPTO_PIN_MAX];
	struct err e = {0};
	int npins;

	if (server_pins(c, domain_of(name, is_domain), pins, &npins, NULL, &e) < 0 ||
	    check_and_show(ctl, answer, name, (const char(*)[CRYPTO_PIN_MAX])pins, npins,
	                   "by the domain object", &e) < 0)
		return ctl_fail(&e);
	return CTL_OK;
}

/* ---- route set ---- */

/* "host[:port[:priority[:weight]]]=<sha256:...|@certfile>" as a server object. */
static json_t *server_spec(const struct ctl_cmd *cmd, const char *spec, int *status)
{
	static const char *const names[] = {"port", "priority", "weight"};
	static const long long lo[] = {1, 0, 0};
	char *copy = strdup(spec), *eq, *part, *save = NULL;
	char pin[CRYPTO_PIN_MAX];
	json_t *o = NULL;
	int k = 0;

	if (copy == NULL || (eq = strchr(copy, '=')) == NULL || eq == copy || eq[1] == '\0') {
		*status = ctl_usage(
		    cmd, "--server %s: expected host[:port[:priority[:weight]]]=PIN", spec);
		goto out;
	}
	*eq = '\0';
	if (eq[1] == '@') {
		struct err e = {0};
		size_t len;
		char *pem = ctl_file_read(eq + 2, &len, &e);
		X509 *cert = pem != NULL ? cert_from_pem(pem, len, &e) : NULL;
		int rc = cert != NULL ? crypto_key_pin(X509_get0_pubkey(cert), pin, &e) : -1;
		X509_free(cert);
		free(pem);
		if (rc < 0) {
			*status = ctl_fail(&e);
			goto out;
		}
	} else {
		snprintf(pin, sizeof(pin), "%s", eq + 1);
	}
	part = strtok_r(copy, ":", &save);
	o = json_pack("{s:s, s:s}", "host", ctl_name_lower(part), "pin", pin);
	while (o != NULL && (part = strtok_r(NULL, ":", &save)) != NULL) {
		long long v;
		if (k == 3 || ctl_args_int(part, lo[k], 65535, &v) < 0) {
			*status = ctl_usage(cmd,
			                    k == 3 ? "--server %s: too many ':' fields"
			                           : "--server %s: bad %s (expected %lld to 65535)",
			                    spec, k < 3 ? names[k] : "", k < 3 ? lo[k] : 0);
			json_decref(o);
			o = NULL;
			goto out;
		}
		json_object_set_new(o, names[k++], json_integer(v));
	}
out:
	free(copy);
	return o;
}

int ctl_cmd_route_set(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *ttl_s = NULL, *specs[ROUTE_MAX_SERVERS + 1];
	const struct ctl_opt opts[] = {
	    {"--ttl", &ttl_s, NULL}, CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	char token[CTL_TOKEN_MAX] = "", msg[200];
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *servers = NULL, *answer = NULL;
	long long ttl;
	char *path = NULL;
	int nspecs, is_domain, status = CTL_FAIL;

	nspecs =
	    take_repeated("--server", &argc, argv, specs, ROUTE_MAX_SERVERS + 1, msg, sizeof(msg));
	if (nspecs < 0)
		return ctl_usage(cmd, "%s", msg);
	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    route_name(cmd, a.pos[0], &is_domain, &status) < 0 ||
	    parse_ttl(cmd, ttl_s, &ttl, &status) < 0)
		return status;
	if (nspecs == 0)
		return ctl_usage(cmd, "give at least one --server");
	servers = json_array();
	for (int i = 0; i < nspecs; i++) {
		json_t *s = server_spec(cmd, specs[i], &status);
		if (s == NULL)
			goto out;
		json_array_append_new(servers, s);
	}
	body = json_pack("{s:O}", "servers", servers);
	if (ttl_s != NULL)
		json_object_set_new(body, "ttl", json_integer(ttl));
	if (admin_client(ctl, cmd, domain_of(a.pos[0], is_domain), token, &client, &status) < 0)
		goto out;
	if ((path = route_path(a.pos[0], is_domain)) == NULL)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	if (path == NULL || ctl_client_call(&client, "PUT", path, body, &answer, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	client.token = NULL;
	status = show_answer(ctl, &client, a.pos[0], is_domain, answer);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(servers);
	json_decref(body);
	json_decref(answer);
	free(path);
	return status;
}

/* ---- route alias ---- */

static X509 *cert_member(const json_t *obj, const char *key, struct err *e)
{
	const char *pem = json_string_value(json_object_get(obj, key));

	if (pem == NULL) {
		err_set(e, ERR_INTERNAL, "bad_response", "the domain object has no %s", key);
		return NULL;
	}
	return cert_from_pem(pem, strlen(pem), e);
}

/*
 * The signer's chain [user, issuer, root]: the user certificate from cert_path,
 * then chain_path if given, else <cert_path minus .pem>.chain.pem as written by
 * `key enroll`, else the domain object from the key server.
 */
static int user_chain(const struct ctl_client *c, const char *domain, const char *cert_path,
                      const char *chain_path, X509 *chain[3], struct err *e)
{
	char *guess = NULL;
	size_t len = strlen(cert_path);
	int n, rc = -1;

	if (ctl_certs_read(cert_path, chain, 0, 1, e) < 0)
		return -1;
	if (chain_path == NULL && len > 4 && strcmp(cert_path + len - 4, ".pem") == 0 &&
	    asprintf(&guess, "%.*s.chain.pem", (int)(len - 4), cert_path) > 0 &&
	    ctl_file_exists(guess))
		chain_path = guess;
	if (chain_path != NULL) {
		n = ctl_certs_read(chain_path, chain + 1, 0, 2, e);
		if (n == 1)
			err_set(e, ERR_INPUT, "bad_certificate",
			        "%s must hold the issuer and the root", chain_path);
		rc = n == 2 ? 0 : -1;
	} else {
		json_t *obj = NULL;
		char pins[ROUTE_MAX_PINS][CRYPTO_PIN_MAX];
		int npins;
		if (server_pins(c, domain, pins, &npins, &obj, e) == 0 &&
		    (chain[1] = cert_member(obj, "issuer", e)) != NULL &&
		    (chain[2] = cert_member(obj, "root", e)) != NULL)
			rc = 0;
		json_decref(obj);
	}
	free(guess);
	return rc;
}

/* The user-signed request of PROTOCOL.md §6.3, as a parsed JWS object. */
static json_t *signed_alias_request(const struct ctl_client *c, const char *address,
                                    const char *target, const char *ttl_s, long long ttl,
                                    const char *key_path, const char *cert_path,
                                    const char *chain_path, struct err *e)
{
	X509 *chain[3] = {NULL, NULL, NULL};
	EVP_PKEY *key = crypto_key_read_private(key_path, e);
	json_t *payload = NULL, *body = NULL;
	char *text = NULL, *jws = NULL;

	if (key == NULL ||
	    user_chain(c, ctl_name_domain_of(address), cert_path, chain_path, chain, e) < 0)
		goto out;
	if (!crypto_key_matches(key, X509_get0_pubkey(chain[0]))) {
		err_set(e, ERR_INPUT, "key_mismatch", "%s is not the key of the certificate %s",
		        key_path, cert_path);
		goto out;
	}
	payload = json_pack("{s:s, s:s, s:s, s:I}", "type", "anchor-route-request", "address",
	                    address, "alias", target, "issued", (json_int_t)time(NULL));
	if (payload != NULL && ttl_s != NULL)
		json_object_set_new(payload, "ttl", json_integer(ttl));
	text = payload != NULL ? json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (text == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if ((jws = jws_sign(text, strlen(text), key, chain, 3, "anchor-route-request+jws", e)) ==
	    NULL)
		goto out;
	body = json_loads(jws, 0, NULL);
	if (body == NULL)
		err_set(e, ERR_INTERNAL, "internal", "the signed request is not JSON");
out:
	for (int i = 0; i < 3; i++)
		X509_free(chain[i]);
	EVP_PKEY_free(key);
	json_decref(payload);
	free(text);
	free(jws);
	return body;
}

static int alias_target(const struct ctl_cmd *cmd, char *target, int is_domain, int *status)
{
	/* A domain's default route aliases to a domain, an address's to an address. */
	return is_domain ? ctl_arg_domain(cmd, target, status)
	                 : ctl_arg_address(cmd, target, status);
}

int ctl_cmd_route_alias(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *ttl_s = NULL, *key_path = NULL, *cert_path = NULL, *chain_path = NULL;
	const struct ctl_opt opts[] = {
	    {"--ttl", &ttl_s, NULL},      {"--key", &key_path, NULL},
	    {"--cert", &cert_path, NULL}, {"--chain", &chain_path, NULL},
	    CTL_COMMON_OPTS(ctl),         {NULL, NULL, NULL},
	};
	char token[CTL_TOKEN_MAX] = "", *guess = NULL, *path = NULL;
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *answer = NULL;
	long long ttl;
	int is_domain, status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 2, 2, &a, &status) < 0 ||
	    route_name(cmd, a.pos[0], &is_domain, &status) < 0 ||
	    alias_target(cmd, a.pos[1], is_domain, &status) < 0 ||
	    parse_ttl(cmd, ttl_s, &ttl, &status) < 0)
		return status;
	if ((cert_path != NULL || chain_path != NULL) && key_path == NULL)
		return ctl_usage(cmd, "--cert and --chain go with --key");
	if (key_path != NULL && is_domain)
		return ctl_usage(cmd,
		                 "a domain's default route is set by its admin, not with --key");
	if (key_path != NULL) {
		/* DIR/<address>.key -> DIR/<address>.pem, as `key new` and `key enroll` name them.
		 */
		size_t len = strlen(key_path);
		if (cert_path == NULL && len > 4 && strcmp(key_path + len - 4, ".key") == 0 &&
		    asprintf(&guess, "%.*s.pem", (int)(len - 4), key_path) > 0)
			cert_path = guess;
		if (cert_path == NULL) {
			status = ctl_usage(cmd, "give --cert FILE with the key's certificate");
			goto out;
		}
		if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
			goto out;
		body = signed_alias_request(&client, a.pos[0], a.pos[1], ttl_s, ttl, key_path,
		                            cert_path, chain_path, &e);
		if (body == NULL) {
			status = ctl_fail(&e);
			goto out;
		}
	} else {
		if (admin_client(ctl, cmd, domain_of(a.pos[0], is_domain), token, &client,
		                 &status) < 0)
			goto out;
		body = json_pack("{s:s}", "alias", a.pos[1]);
		if (ttl_s != NULL)
			json_object_set_new(body, "ttl", json_integer(ttl));
	}
	if ((path = route_path(a.pos[0], is_domain)) == NULL)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	if (path == NULL || ctl_client_call(&client, "PUT", path, body, &answer, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	client.token = NULL;
	status = show_answer(ctl, &client, a.pos[0], is_domain, answer);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	json_decref(answer);
	free(path);
	free(guess);
	return status;
}

/* ---- route remove ---- */

int ctl_cmd_route_remove(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	char token[CTL_TOKEN_MAX] = "", *path = NULL;
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *answer = NULL;
	int is_domain, status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    route_name(cmd, a.pos[0], &is_domain, &status) < 0)
		return status;
	if (admin_client(ctl, cmd, domain_of(a.pos[0], is_domain), token, &client, &status) < 0)
		goto out;
	if ((path = route_path(a.pos[0], is_domain)) == NULL)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	if (path == NULL || ctl_client_call(&client, "DELETE", path, NULL, &answer, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	status = CTL_OK;
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		printf("route of %s removed\n", a.pos[0]);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(answer);
	free(path);
	return status;
}

/* ---- route show ---- */

static struct discover_ctx *discovery(const struct ctl *ctl, struct err *e)
{
	struct discover_config c = {0};

	c.cacert = ctl->cacert;
	discover_config_from_env(&c);
	return discover_new(&c, e);
}

/* Without -s: find the key server and the pins in DNS, as a sender would. */
static int show_discovered(const struct ctl *ctl, const char *name, int is_domain, struct err *e)
{
	struct discover_ctx *dctx = discovery(ctl, e);
	struct resolve_ctx *rctx = dctx != NULL ? resolve_new(dctx, e) : NULL;
	struct discover_result *d = NULL;
	struct https_reply rep = {0};
	json_t *jws = NULL;
	char how[DNS_NAME_MAX + 64];
	int rc = -1;

	if (rctx == NULL || discover_domain(dctx, domain_of(name, is_domain), &d, e) < 0)
		goto out;
	if (d->status == DISCOVER_LEGACY) {
		err_set(e, ERR_NOTFOUND, "legacy_domain",
		        "%s publishes no _anchor records: mail goes by its MX records", d->domain);
		goto out;
	}
	if (resolve_fetch_answer(rctx, d, name, &rep, e) < 0)
		goto out;
	if ((jws = json_loadb(rep.body, rep.len, 0, NULL)) == NULL) {
		err_set(e, ERR_UNPROC, "route_unverified", "the answer for %s is not JSON", name);
		goto out;
	}
	snprintf(how, sizeof(how), "in DNS (_anchor.%s, dnssec %s)", d->domain,
	         dns_sec_name(d->dnssec));
	rc = check_and_show(ctl, jws, name, (const char(*)[CRYPTO_PIN_MAX])d->pins, d->npins, how,
	                    e);
out:
	json_decref(jws);
	https_reply_clear(&rep);
	discover_result_free(d);
	resolve_free(rctx);
	discover_free(dctx);
	return rc;
}

int ctl_cmd_route_show(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	const char *pinv[ROUTE_MAX_PINS];
	char pins[ROUTE_MAX_PINS][CRYPTO_PIN_MAX], msg[200], *path = NULL;
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *answer = NULL;
	int npins, given, is_domain, status = CTL_FAIL;

	npins = take_repeated("--pin", &argc, argv, pinv, ROUTE_MAX_PINS, msg, sizeof(msg));
	if (npins < 0)
		return ctl_usage(cmd, "%s", msg);
	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    route_name(cmd, a.pos[0], &is_domain, &status) < 0)
		return status;
	for (int i = 0; i < npins; i++)
		snprintf(pins[i], CRYPTO_PIN_MAX, "%s", pinv[i]);
	given = npins;
	if (ctl->server == NULL || *ctl->server == '\0') {
		if (npins > 0)
			return ctl_usage(cmd,
			                 "--pin needs -s URL (without it the pins come from DNS)");
		return show_discovered(ctl, a.pos[0], is_domain, &e) < 0 ? ctl_fail(&e) : CTL_OK;
	}
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		return status;
	if (npins == 0 &&
	    server_pins(&client, domain_of(a.pos[0], is_domain), pins, &npins, NULL, &e) < 0)
		goto fail;
	if ((path = route_path(a.pos[0], is_domain)) == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if (ctl_client_call(&client, "GET", path, NULL, &answer, &e) < 0 ||
	    check_and_show(ctl, answer, a.pos[0], (const char(*)[CRYPTO_PIN_MAX])pins, npins,
	                   given > 0 ? "by --pin" : "by the domain object", &e) < 0)
		goto fail;
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	json_decref(answer);
	free(path);
	return status;
}

/* ---- route resolve ---- */

static const char *hop_kind(enum resolve_hop_kind k)
{
	return k == RESOLVE_HOP_ALIAS ? "alias" : k == RESOLVE_HOP_SERVERS ? "servers" : "legacy";
}

static void print_result(const struct resolve_result *r)
{
	for (int i = 0; i < r->nhops; i++) {
		const struct resolve_hop *h = &r->hops[i];
		printf("hop %d: %s (domain %s, dnssec %s, %s)", i + 1, h->address, h->domain,
		       dns_sec_name(h->dnssec),
		       h->kind == RESOLVE_HOP_LEGACY ? "no anchor"
		       : h->from_cache               ? "cached"
		                                     : "fetched");
		if (h->kind == RESOLVE_HOP_ALIAS && h->alias[0])
			printf(": alias -> %s", h->alias);
		else if (h->kind != RESOLVE_HOP_ALIAS || h->expires[0])
			printf(": %s", hop_kind(h->kind));
		if (h->kind != RESOLVE_HOP_LEGACY && h->expires[0])
			printf(" [scope %s, ttl %d, expires %s]", h->scope, h->ttl, h->expires);
		printf("\n");
	}
	if (r->ntargets > 0 || r->final_address[0]) {
		printf("final: %s%s\n", r->final_address,
		       r->legacy ? " (legacy: MX, no pins)" : "");
		printf("targets, in the order to try:\n");
	}
	for (int i = 0; i < r->ntargets; i++) {
		const struct resolve_target *t = &r->targets[i];
		printf("  %d. %s:%u priority %u weight %u%s%s\n", i + 1, t->host, t->port,
		       t->priority, t->weight, t->pin[0] ? " pin " : "", t->pin);
	}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Count how often each host came first: the load a sender would put on each server. */
static void count_first(json_t *firsts, const struct resolve_result *r)
{
	const char *host = r->ntargets > 0 ? r->targets[0].host : "(none)";
	json_t *n = json_object_get(firsts, host);

	json_object_set_new(firsts, host, json_integer(n != NULL ? json_integer_value(n) + 1 : 1));
}

/* A benchmarking aid: resolve n times (caches flushed each time when cold). */
static int resolve_repeat(const struct ctl *ctl, struct discover_ctx *dctx,
                          struct resolve_ctx *rctx, const char *address, long long n, int cold,
                          struct err *e)
{
	struct resolve_result *r = calloc(1, sizeof(*r));
	json_t *firsts = json_object();
	unsigned long long fetches = 0;
	double start = now_ms(), elapsed, worst = 0;
	int rc = -1;

	if (r == NULL || firsts == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	for (long long i = 0; i < n; i++) {
		double t0 = now_ms(), dt;
		if (cold) {
			resolve_cache_flush(rctx);
			discover_cache_flush(dctx);
		}
		if (resolve_address(rctx, address, r, e) < 0)
			goto out;
		dt = now_ms() - t0;
		worst = dt > worst ? dt : worst;
		fetches += r->network_fetches;
		count_first(firsts, r);
	}
	elapsed = now_ms() - start;
	if (ctl->json) {
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:i, s:O}",
		                      "address", address, "mode", cold ? "cold" : "warm",
		                      "resolutions", (json_int_t)n, "route_fetches",
		                      (json_int_t)fetches, "elapsed_ms", elapsed, "per_second",
		                      (double)n * 1e3 / elapsed, "mean_ms", elapsed / (double)n,
		                      "max_ms", worst, "hops", r->nhops, "first_targets", firsts);
		ctl_out_json(stdout, o);
		json_decref(o);
	} else {
		printf(
		    "%s: %lld %s resolutions (%d hops) in %.1f ms: %.1f per second, mean %.3f ms, "
		    "max %.3f ms, %llu route fetches\n",
		    address, n, cold ? "cold" : "warm", r->nhops, elapsed,
		    (double)n * 1e3 / elapsed, elapsed / (double)n, worst, fetches);
	}
	rc = 0;
out:
	json_decref(firsts);
	free(r);
	return rc;
}

int ctl_cmd_route_resolve(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *repeat_s = NULL;
	int cold = 0;
	const struct ctl_opt opts[] = {{"--repeat", &repeat_s, NULL},
	                               {"--cold", NULL, &cold},
	                               CTL_COMMON_OPTS(ctl),
	                               {NULL, NULL, NULL}};
	struct discover_ctx *dctx = NULL;
	struct resolve_ctx *rctx = NULL;
	struct resolve_result *r = NULL;
	struct ctl_args a;
	struct err e = {0};
	long long repeat = 0;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_address(cmd, a.pos[0], &status) < 0)
		return status;
	if (repeat_s != NULL && ctl_args_int(repeat_s, 1, ROUTE_REPEAT_MAX, &repeat) < 0)
		return ctl_usage(cmd, "--repeat must be 1 to %lld", ROUTE_REPEAT_MAX);
	if (cold && repeat_s == NULL)
		return ctl_usage(cmd, "--cold goes with --repeat N");
	if ((dctx = discovery(ctl, &e)) == NULL || (rctx = resolve_new(dctx, &e)) == NULL) {
		status = ctl_fail(&e);
		goto out;
	}
	if (repeat_s != NULL) {
		status = resolve_repeat(ctl, dctx, rctx, a.pos[0], repeat, cold, &e) < 0
		             ? ctl_fail(&e)
		             : CTL_OK;
		goto out;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		status = ctl_fail(&(struct err){ERR_INTERNAL, "internal", "out of memory"});
		goto out;
	}
	status = resolve_address(rctx, a.pos[0], r, &e) < 0 ? CTL_FAIL : CTL_OK;
	if (ctl->json) {
		json_t *o = resolve_result_json(r);
		if (status != CTL_OK) {
			json_object_set_new(o, "error", json_string(e.code));
			json_object_set_new(o, "message", json_string(e.msg));
		}
		ctl_out_json(stdout, o);
		json_decref(o);
	} else {
		print_result(r);
	}
	if (status != CTL_OK)
		ctl_fail(&e);
out:
	free(r);
	resolve_free(rctx);
	discover_free(dctx);
	return status;
}
