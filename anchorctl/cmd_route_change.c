/*
 * cmd_route_change.c - changing routes (PROTOCOL.md §6): the domain admin
 * sets receiving servers and aliases and removes routes; a user sets the
 * alias of their own address with a request signed by their key.  Each
 * change shows the server's signed answer, checked against the domain's pins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain.h"
#include "cmd.h"
#include "cmd_route.h"
#include "names.h"
#include "output.h"
#include "pki/crypto.h"
#include "pki/jws.h"
#include "sign.h"

#define ROUTE_TTL_MIN 60LL
#define ROUTE_TTL_MAX 86400LL
#define ROUTE_MAX_SERVERS 32

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

/* PUT the route body for name, then show the server's signed answer; a CTL_* status. */
static int put_route(const struct ctl *ctl, struct ctl_client *client, const char *name,
                     int is_domain, json_t *body)
{
	char *path = ctl_route_path(name, is_domain);
	json_t *answer = NULL;
	struct err e = {0};
	int status;

	if (path == NULL)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	if (path == NULL || ctl_client_call(client, "PUT", path, body, &answer, &e) < 0) {
		status = ctl_fail(&e);
	} else {
		client->token = NULL; /* the answer is read as anybody would */
		status = ctl_route_show_answer(ctl, client, name, is_domain, answer);
	}
	json_decref(answer);
	free(path);
	return status;
}

int ctl_cmd_route_set(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *ttl_s = NULL, *specs[ROUTE_MAX_SERVERS + 1];
	const struct ctl_opt opts[] = {
	    {"--ttl", &ttl_s, NULL}, CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	char token[CTL_TOKEN_MAX] = "", msg[200];
	struct ctl_client client;
	struct ctl_args a;
	json_t *body = NULL, *servers = NULL;
	long long ttl;
	int nspecs, is_domain, status = CTL_FAIL;

	nspecs = ctl_args_take_repeated("--server", &argc, argv, specs, ROUTE_MAX_SERVERS + 1, msg,
	                                sizeof(msg));
	if (nspecs < 0)
		return ctl_usage(cmd, "%s", msg);
	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_route_name(cmd, a.pos[0], &is_domain, &status) < 0 ||
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
	if (ctl_admin_client(ctl, cmd, ctl_route_domain_of(a.pos[0], is_domain), token, &client,
	                     &status) < 0)
		goto out;
	status = put_route(ctl, &client, a.pos[0], is_domain, body);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(servers);
	json_decref(body);
	return status;
}

/* ---- route alias ---- */

/* The user-signed request of PROTOCOL.md §6.3, as a parsed JWS object. */
static json_t *signed_alias_request(const struct ctl_client *c, const char *address,
                                    const char *target, const char *ttl_s, long long ttl,
                                    const char *key_path, const char *cert_path,
                                    const char *chain_path, struct err *e)
{
	X509 *chain[CTL_CHAIN_LEN] = {NULL, NULL, NULL};
	EVP_PKEY *key = crypto_key_read_private(key_path, e);
	json_t *payload = NULL, *body = NULL;
	char *text = NULL, *jws = NULL;

	if (key == NULL ||
	    ctl_chain_load(c, ctl_name_domain_of(address), cert_path, chain_path, chain, e) < 0)
		goto out;
	if (!crypto_key_matches(key, X509_get0_pubkey(chain[0]))) {
		err_set(e, ERR_INPUT, "key_mismatch", "%s is not the key of the certificate %s",
		        key_path, cert_path);
		goto out;
	}
	payload = json_pack("{s:s, s:s, s:s, s:o}", "type", "anchor-route-request", "address",
	                    address, "alias", target, "issued", ctl_signing_time());
	if (payload != NULL && ttl_s != NULL)
		json_object_set_new(payload, "ttl", json_integer(ttl));
	text = payload != NULL ? json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (text == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if ((jws = jws_sign(text, strlen(text), key, chain, CTL_CHAIN_LEN,
	                    "anchor-route-request+jws", e)) == NULL)
		goto out;
	body = json_loads(jws, 0, NULL);
	if (body == NULL)
		err_set(e, ERR_INTERNAL, "internal", "the signed request is not JSON");
out:
	for (int i = 0; i < CTL_CHAIN_LEN; i++)
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
	char token[CTL_TOKEN_MAX] = "", *guess = NULL;
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL;
	long long ttl;
	int is_domain, status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 2, 2, &a, &status) < 0 ||
	    ctl_route_name(cmd, a.pos[0], &is_domain, &status) < 0 ||
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
		if (cert_path == NULL &&
		    (guess = ctl_path_swap_suffix(key_path, ".key", ".pem")) != NULL)
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
		if (ctl_admin_client(ctl, cmd, ctl_route_domain_of(a.pos[0], is_domain), token,
		                     &client, &status) < 0)
			goto out;
		body = json_pack("{s:s}", "alias", a.pos[1]);
		if (ttl_s != NULL)
			json_object_set_new(body, "ttl", json_integer(ttl));
	}
	status = put_route(ctl, &client, a.pos[0], is_domain, body);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
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
	    ctl_route_name(cmd, a.pos[0], &is_domain, &status) < 0)
		return status;
	if (ctl_admin_client(ctl, cmd, ctl_route_domain_of(a.pos[0], is_domain), token, &client,
	                     &status) < 0)
		goto out;
	if ((path = ctl_route_path(a.pos[0], is_domain)) == NULL)
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
