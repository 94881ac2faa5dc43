/*
 * cmd_direct.c - a user's direct endpoint (PROTOCOL.md §6.5): `direct register`
 * signs the registration with the address's own key, `direct show` reads the one in
 * force, `direct remove` ends it (signed by the key, or as the domain admin).
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

#define DIRECT_TTL_DEFAULT 3600LL
#define DIRECT_TTL_MAX (7 * 86400LL)

/* The user's key, certificate and chain; the certificate defaults to KEY.pem. */
struct direct_key {
	const char *key, *cert, *chain;
};

/* payload signed by the address's key as a parsed flattened JWS, or NULL with *e. */
static json_t *direct_signed(const struct ctl_client *c, const char *address,
                             const struct direct_key *k, json_t *payload, const char *typ,
                             struct err *e)
{
	X509 *chain[CTL_CHAIN_LEN] = {NULL, NULL, NULL};
	char *guess = NULL, *text = NULL, *jws = NULL;
	const char *cert = k->cert;
	EVP_PKEY *key = crypto_key_read_private(k->key, e);
	json_t *body = NULL;

	if (cert == NULL && (guess = ctl_path_swap_suffix(k->key, ".key", ".pem")) != NULL)
		cert = guess;
	if (key == NULL)
		goto out;
	if (cert == NULL) {
		err_set(e, ERR_INPUT, "usage", "give --cert FILE with the key's certificate");
		goto out;
	}
	if (ctl_chain_load(c, ctl_name_domain_of(address), cert, k->chain, chain, e) < 0)
		goto out;
	if (!crypto_key_matches(key, X509_get0_pubkey(chain[0]))) {
		err_set(e, ERR_INPUT, "key_mismatch", "%s is not the key of the certificate %s",
		        k->key, cert);
		goto out;
	}
	json_object_set_new(payload, "address", json_string(address));
	json_object_set_new(payload, "issued", ctl_signing_time());
	if ((text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if ((jws = jws_sign(text, strlen(text), key, chain, CTL_CHAIN_LEN, typ, e)) == NULL)
		goto out;
	if ((body = json_loads(jws, 0, NULL)) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "the signed request is not JSON");
out:
	for (int i = 0; i < CTL_CHAIN_LEN; i++)
		X509_free(chain[i]);
	EVP_PKEY_free(key);
	free(guess);
	free(text);
	free(jws);
	return body;
}

/* PIN or @CERTFILE (the pin of the certificate's key). */
static int pin_arg(const char *arg, char pin[CRYPTO_PIN_MAX], struct err *e)
{
	size_t len;
	char *pem;
	X509 *cert;
	int rc;

	if (arg[0] != '@') {
		snprintf(pin, CRYPTO_PIN_MAX, "%s", arg);
		return 0;
	}
	if ((pem = ctl_file_read(arg + 1, &len, e)) == NULL)
		return -1;
	cert = cert_from_pem(pem, len, e);
	rc = cert != NULL ? crypto_key_pin(X509_get0_pubkey(cert), pin, e) : -1;
	X509_free(cert);
	free(pem);
	return rc;
}

static void show_direct(const json_t *answer)
{
	const json_t *d = json_object_get(answer, "direct");

	printf("address:  %s\n", ctl_out_str(answer, "address"));
	printf("host:     %s\n", ctl_out_str(d, "host"));
	printf("port:     %lld\n", (long long)json_integer_value(json_object_get(d, "port")));
	printf("pin:      %s\n", ctl_out_str(d, "pin"));
	printf("expires:  %s\n", ctl_out_str(d, "expires"));
	printf("key:      %s\n", ctl_out_str(answer, "key_id"));
}

static int call_and_show(const struct ctl *ctl, struct ctl_client *c, const char *method,
                         const char *address, json_t *body)
{
	char *path = ctl_api_path("direct", address, NULL);
	json_t *answer = NULL;
	struct err e = {0};
	int status;

	if (path == NULL)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	if (path == NULL || ctl_client_call(c, method, path, body, &answer, &e) < 0) {
		status = ctl_fail(&e);
	} else {
		status = CTL_OK;
		if (ctl->json)
			ctl_out_json(stdout, answer);
		else if (strcmp(method, "DELETE") == 0)
			printf("direct endpoint of %s removed\n", address);
		else
			show_direct(answer);
	}
	json_decref(answer);
	free(path);
	return status;
}

static int register_payload(const struct ctl_cmd *cmd, const char *host, const char *port_s,
                            const char *pin_s, const char *ttl_s, json_t **out, int *status)
{
	long long port, ttl = DIRECT_TTL_DEFAULT;
	char pin[CRYPTO_PIN_MAX];
	struct err e = {0};

	if (host == NULL || port_s == NULL || pin_s == NULL) {
		*status = ctl_usage(cmd, "give --host, --port and --pin");
		return -1;
	}
	if (ctl_args_int(port_s, 1, 65535, &port) < 0) {
		*status = ctl_usage(cmd, "--port must be 1 to 65535");
		return -1;
	}
	if (ttl_s != NULL &&
	    (ctl_args_duration(ttl_s, &ttl) < 0 || ttl < 60 || ttl > DIRECT_TTL_MAX)) {
		*status = ctl_usage(cmd, "--ttl must be a duration from 60s to 7d");
		return -1;
	}
	if (pin_arg(pin_s, pin, &e) < 0) {
		*status = ctl_fail(&e);
		return -1;
	}
	*out = json_pack("{s:s, s:s, s:I, s:s, s:I}", "type", "anchor-direct-request", "host",
	                 ctl_name_lower((char *)host), "port", (json_int_t)port, "pin", pin,
	                 "expires", (json_int_t)(time(NULL) + ttl));
	return 0;
}

int ctl_cmd_direct_register(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *host = NULL, *port_s = NULL, *pin_s = NULL, *ttl_s = NULL;
	struct direct_key k = {0};
	const struct ctl_opt opts[] = {
	    {"--host", &host, NULL},     {"--port", &port_s, NULL}, {"--pin", &pin_s, NULL},
	    {"--ttl", &ttl_s, NULL},     {"--key", &k.key, NULL},   {"--cert", &k.cert, NULL},
	    {"--chain", &k.chain, NULL}, CTL_COMMON_OPTS(ctl),      {NULL, NULL, NULL},
	};
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *payload = NULL, *body = NULL;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_address(cmd, a.pos[0], &status) < 0 ||
	    register_payload(cmd, host, port_s, pin_s, ttl_s, &payload, &status) < 0)
		return status;
	if (k.key == NULL) {
		status = ctl_usage(cmd, "give --key FILE: the address's own key signs the request");
		goto out;
	}
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		goto out;
	if ((body = direct_signed(&client, a.pos[0], &k, payload, "anchor-direct-request+jws",
	                          &e)) == NULL) {
		status = ctl_fail(&e);
		goto out;
	}
	status = call_and_show(ctl, &client, "PUT", a.pos[0], body);
out:
	json_decref(payload);
	json_decref(body);
	return status;
}

int ctl_cmd_direct_show(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_client client;
	struct ctl_args a;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_address(cmd, a.pos[0], &status) < 0 ||
	    ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		return status;
	return call_and_show(ctl, &client, "GET", a.pos[0], NULL);
}

int ctl_cmd_direct_remove(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct direct_key k = {0};
	const struct ctl_opt opts[] = {
	    {"--key", &k.key, NULL}, {"--cert", &k.cert, NULL}, {"--chain", &k.chain, NULL},
	    CTL_COMMON_OPTS(ctl),    {NULL, NULL, NULL},
	};
	char token[CTL_TOKEN_MAX] = "";
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_address(cmd, a.pos[0], &status) < 0)
		return status;
	if (k.key == NULL) {
		if (ctl_admin_client(ctl, cmd, ctl_name_domain_of(a.pos[0]), token, &client,
		                     &status) == 0)
			status = call_and_show(ctl, &client, "DELETE", a.pos[0], NULL);
		explicit_bzero(token, sizeof(token));
		return status;
	}
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		return status;
	json_t *payload = json_pack("{s:s}", "type", "anchor-direct-remove");
	body = payload
	           ? direct_signed(&client, a.pos[0], &k, payload, "anchor-direct-remove+jws", &e)
	           : NULL;
	json_decref(payload);
	if (body == NULL)
		return ctl_fail(&e);
	status = call_and_show(ctl, &client, "DELETE", a.pos[0], body);
	json_decref(body);
	return status;
}
