/*
 * cmd_revoke.c - `key revoke` (PROTOCOL.md §9): by the key itself (a request
 * it signs, which --sign-only writes out to be kept offline and --request
 * sends later), by the revocation secret `key enroll` stored in
 * <address>.revoke, or by the domain admin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "chain.h"
#include "cmd.h"
#include "cmd_log.h"
#include "pki/crl.h"
#include "pki/jws.h"
#include "names.h"
#include "output.h"

#define REVOKE_TYP "anchor-revoke+jws"

struct revoke_opts {
	const char *reason, *key, *cert, *chain, *secret_file, *request;
	int sign_only;
};

/* The key's certificate: <key minus .key>.pem, or <key>.pem for a key named otherwise. */
static char *key_cert_path(const char *key_path)
{
	char *out = ctl_path_swap_suffix(key_path, ".key", ".pem");

	if (out == NULL && asprintf(&out, "%s.pem", key_path) < 0)
		out = NULL;
	return out;
}

/* The key id in a certificate's subject serialNumber, into out. */
static int cert_key_id(X509 *cert, char out[CRYPTO_UUID_LEN])
{
	X509_NAME *subject = X509_get_subject_name(cert);
	int i = X509_NAME_get_index_by_NID(subject, NID_serialNumber, -1);
	ASN1_STRING *v = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)) : NULL;

	if (v == NULL || ASN1_STRING_length(v) != CRYPTO_UUID_LEN - 1)
		return -1;
	memcpy(out, ASN1_STRING_get0_data(v), CRYPTO_UUID_LEN - 1);
	out[CRYPTO_UUID_LEN - 1] = '\0';
	ctl_name_lower(out);
	return 0;
}

/* [cert, issuer, root]: the chain file next to the certificate, else the domain object. */
static int signer_chain(const struct ctl *ctl, const struct revoke_opts *o, const char *cert_path,
                        X509 *chain[CTL_CHAIN_LEN], struct err *e)
{
	/* The server's copy is checked: the request must verify against its pins anyway. */
	struct ctl_client c = {ctl->server, ctl->cacert, NULL, ctl->resolve, NULL};

	if (ctl_chain_load(ctl->server != NULL ? &c : NULL, NULL, cert_path, o->chain, chain, e) <
	    0)
		return -1;
	return cert_verify_chain(chain[0], chain[1], chain[2], e);
}

/* The JWS of PROTOCOL.md §9 signed by the key being revoked; malloc'd text. */
static char *signed_request(const struct ctl *ctl, const struct revoke_opts *o, const char *key_id,
                            struct err *e)
{
	X509 *chain[3] = {NULL, NULL, NULL};
	char *cert_path = o->cert != NULL ? strdup(o->cert) : key_cert_path(o->key);
	EVP_PKEY *key = NULL;
	json_t *payload = NULL;
	char *text = NULL, *jws = NULL, kid[CRYPTO_UUID_LEN];

	if (cert_path == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if ((key = crypto_key_read_private(o->key, e)) == NULL ||
	    signer_chain(ctl, o, cert_path, chain, e) < 0)
		goto out;
	if (!crypto_key_matches(key, X509_get0_pubkey(chain[0]))) {
		err_set(e, ERR_INPUT, "key_mismatch", "%s is not the key of the certificate %s",
		        o->key, cert_path);
		goto out;
	}
	/* Only the key itself can revoke itself: refuse to sign a request the server refuses. */
	if (cert_key_id(chain[0], kid) < 0 || strcmp(kid, key_id) != 0) {
		err_set(e, ERR_INPUT, "wrong_key", "%s is the certificate of key id %s, not %s",
		        cert_path, kid, key_id);
		goto out;
	}
	payload = json_pack("{s:s, s:s, s:s}", "type", "anchor-revoke", "key_id", key_id, "reason",
	                    o->reason != NULL ? o->reason : "unspecified");
	if (payload == NULL ||
	    (text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	jws = jws_sign(text, strlen(text), key, chain, 3, REVOKE_TYP, e);
out:
	for (int i = 0; i < 3; i++)
		X509_free(chain[i]);
	EVP_PKEY_free(key);
	json_decref(payload);
	free(text);
	free(cert_path);
	return jws;
}

/* The key id a stored request revokes (its payload, unverified: the server verifies). */
static int request_key_id(const json_t *req, char out[CRYPTO_UUID_LEN], struct err *e)
{
	const char *b64 = json_string_value(json_object_get(req, "payload"));
	size_t len = 0;
	uint8_t *raw = b64 != NULL ? crypto_b64url_decode(b64, &len) : NULL;
	json_t *p = raw != NULL ? json_loadb((const char *)raw, len, 0, NULL) : NULL;
	const char *kid = json_string_value(json_object_get(p, "key_id"));
	int rc = 0;

	if (kid == NULL || strlen(kid) != CRYPTO_UUID_LEN - 1)
		rc = err_set(e, ERR_INPUT, "bad_request",
		             "the stored request is not a signed revocation");
	else
		snprintf(out, CRYPTO_UUID_LEN, "%s", kid);
	json_decref(p);
	free(raw);
	return rc;
}

static int file_exists(const char *path, void *arg)
{
	(void)arg;
	return ctl_file_exists(path);
}

/* The admin token: --token-file, ANCHOR_ADMIN_TOKEN, or <domain>/admin.token where the
 * domain is that of the key's certificate (looked up). */
static int admin_token(const struct ctl *ctl, const struct ctl_client *c, const char *key_id,
                       char token[CTL_TOKEN_MAX], struct err *e)
{
	char *path = NULL, *fallback = NULL;
	const char *name, *domain, *env = getenv("ANCHOR_ADMIN_TOKEN");
	json_t *obj = NULL;
	int rc = -1;

	if (ctl->token_file != NULL || (env != NULL && *env != '\0'))
		return ctl_token(ctl, "ANCHOR_ADMIN_TOKEN", NULL, "admin", token, e);
	if ((path = ctl_api_path("keys", key_id, NULL)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ctl_client_call(c, "GET", path, NULL, &obj, e) < 0)
		goto out;
	name = json_string_value(json_object_get(obj, "name"));
	if (name == NULL)
		domain = NULL;
	else if (strchr(name, '@') != NULL)
		domain = ctl_name_domain_of(name);
	else /* a host: the longest parent domain with an admin.token here */
		domain = ctl_name_admin_domain(name, file_exists, NULL);
	if (domain == NULL || (fallback = ctl_name_file(domain, "admin.token", NULL)) == NULL) {
		rc = ctl_token(ctl, "ANCHOR_ADMIN_TOKEN", NULL, "admin", token, e);
		goto out;
	}
	rc = ctl_token(ctl, "ANCHOR_ADMIN_TOKEN", fallback, "admin", token, e);
out:
	json_decref(obj);
	free(fallback);
	free(path);
	return rc;
}

static void show_revoked(const json_t *answer)
{
	const json_t *r = json_object_get(answer, "revocation");

	printf("revoked:  %s (%s)\n", ctl_out_str(answer, "key_id"), ctl_out_str(answer, "name"));
	printf("status:   %s\n", ctl_out_str(answer, "status"));
	printf("reason:   %s\n", ctl_out_str(r, "reason"));
	printf("method:   %s\n", ctl_out_str(r, "method"));
	printf("time:     %s\n", ctl_out_str(r, "time"));
	printf("The CRL, every lookup and the domain's feed now show it.\n");
}

/* The body to send, by the way the user chose. */
static json_t *revoke_body(const struct ctl *ctl, const struct revoke_opts *o, const char *key_id,
                           char token[CTL_TOKEN_MAX], const struct ctl_client *c, int *use_token,
                           struct err *e)
{
	char *jws, secret[CTL_TOKEN_MAX];
	json_t *body;

	*use_token = 0;
	if (o->request != NULL) {
		char *text = ctl_file_read(o->request, NULL, e);
		body = text != NULL ? json_loads(text, 0, NULL) : NULL;
		if (text != NULL && body == NULL)
			err_set(e, ERR_INPUT, "bad_request", "%s is not a signed request (JSON)",
			        o->request);
		free(text);
		return body;
	}
	if (o->key != NULL) {
		if ((jws = signed_request(ctl, o, key_id, e)) == NULL)
			return NULL;
		body = json_loads(jws, 0, NULL);
		free(jws);
		return body;
	}
	if (o->secret_file != NULL) {
		if (ctl_token_read(o->secret_file, secret, e) < 0)
			return NULL;
		body = json_pack("{s:s}", "secret", secret);
		explicit_bzero(secret, sizeof(secret));
	} else {
		if (admin_token(ctl, c, key_id, token, e) < 0)
			return NULL;
		*use_token = 1;
		body = json_object();
	}
	if (body != NULL && o->reason != NULL)
		json_object_set_new(body, "reason", json_string(o->reason));
	return body;
}

/* The key a --request revokes; it must be key_id when one was given, and becomes key_id. */
static int request_names_key(const json_t *body, const char *request, char key_id[CRYPTO_UUID_LEN],
                             struct err *e)
{
	char kid[CRYPTO_UUID_LEN];

	if (request_key_id(body, kid, e) < 0)
		return -1;
	if (key_id[0] != '\0' && strcmp(kid, key_id) != 0)
		return err_set(e, ERR_INPUT, "wrong_key", "%s revokes the key %s, not %s", request,
		               kid, key_id);
	snprintf(key_id, CRYPTO_UUID_LEN, "%s", kid);
	return 0;
}

int ctl_cmd_key_revoke(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct revoke_opts o = {0};
	const struct ctl_opt opts[] = {
	    {"--reason", &o.reason, NULL},
	    {"--key", &o.key, NULL},
	    {"--cert", &o.cert, NULL},
	    {"--chain", &o.chain, NULL},
	    {"--secret-file", &o.secret_file, NULL},
	    {"--request", &o.request, NULL},
	    {"--sign-only", NULL, &o.sign_only},
	    CTL_COMMON_OPTS(ctl),
	    {NULL, NULL, NULL},
	};
	char token[CTL_TOKEN_MAX] = "", key_id[CRYPTO_UUID_LEN] = "", *path = NULL;
	struct ctl_client client = {0};
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *answer = NULL;
	int status = CTL_FAIL, use_token = 0, ways;

	if (ctl_parse(cmd, opts, argc, argv, 0, 1, &a, &status) < 0)
		return status;
	ways = (o.key != NULL) + (o.secret_file != NULL) + (o.request != NULL);
	if (ways > 1)
		return ctl_usage(cmd, "give one of --key, --secret-file and --request");
	if ((o.cert != NULL || o.chain != NULL || o.sign_only) && o.key == NULL)
		return ctl_usage(cmd, "--cert, --chain and --sign-only go with --key");
	if (o.reason != NULL && crl_reason_parse(o.reason, &(int){0}, &e) < 0)
		return ctl_usage(cmd, "%s", e.msg);
	if (a.npos == 0 && o.request == NULL)
		return ctl_usage(cmd, "missing argument: the key id");
	if (a.npos == 1) {
		ctl_name_lower(a.pos[0]);
		if (strlen(a.pos[0]) != CRYPTO_UUID_LEN - 1)
			return ctl_usage(cmd, "'%s' is not a key id (a UUID)", a.pos[0]);
		snprintf(key_id, sizeof(key_id), "%s", a.pos[0]);
	}
	if (o.sign_only) {
		char *jws = signed_request(ctl, &o, key_id, &e);
		if (jws == NULL)
			return ctl_fail(&e);
		printf("%s\n", jws);
		free(jws);
		return CTL_OK;
	}
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		return status;
	if ((body = revoke_body(ctl, &o, key_id, token, &client, &use_token, &e)) == NULL)
		goto fail;
	if (o.request != NULL && request_names_key(body, o.request, key_id, &e) < 0)
		goto fail;
	client.token = use_token ? token : NULL;
	if ((path = ctl_api_path("keys", key_id, "/revoke")) == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if (ctl_client_call(&client, "POST", path, body, &answer, &e) < 0)
		goto fail;
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		show_revoked(answer);
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	json_decref(answer);
	free(path);
	return status;
}
