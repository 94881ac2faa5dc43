/*
 * cmd_enc.c - "key enroll --encryption": an encryption key for one device of an address
 * (PROTOCOL.md §4.1).  The key is made here and never leaves: the key server encrypts a
 * nonce to its public key, we open it and send the nonce back with the authorisation,
 * an enrollment token or a request signed by the address's current signing key
 * (DIR/<address>.key and .pem, as `key enroll` wrote them).
 *
 * Files: DIR/<address>.<device>.enc.key (0600), .pem, .chain.pem and .revoke.  The key
 * is written before anything is sent, and removed again when nothing was issued.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "names.h"
#include "output.h"
#include "pki/crypto.h"
#include "pki/enckey.h"
#include "sign.h"

#define ENC_JWS_TYP "anchor-encryption-request+jws"

struct enc_job {
	const struct ctl *ctl;
	const char *dir, *address, *device, *token;
	char base[400];
	char *key_path;
	EVP_PKEY *key;
	char *pub_pem;
	char *path_challenge, *path_enroll;
};

static void job_free(struct enc_job *j)
{
	free(j->key_path);
	EVP_PKEY_free(j->key);
	free(j->pub_pem);
	free(j->path_challenge);
	free(j->path_enroll);
}

/* The nonce of the challenge answer, opened with our key: base64url, malloc'd. */
static char *open_challenge(const struct enc_job *j, const json_t *answer, struct err *e)
{
	json_t *env = json_object_get(answer, "envelope");
	char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
	uint8_t nonce[ENCKEY_NONCE_LEN * 2];
	size_t n = 0;
	char *b64 = NULL;

	if (text == NULL) {
		err_set(e, ERR_INTERNAL, "bad_response", "the challenge has no envelope");
		return NULL;
	}
	if (enckey_challenge_open(j->key, text, strlen(text), nonce, sizeof(nonce), &n, e) == 0 &&
	    (b64 = crypto_b64url_encode(nonce, n)) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	explicit_bzero(nonce, sizeof(nonce));
	free(text);
	return b64;
}

/* The authorisation by the current signing key: a JWS naming address, device and key. */
static char *signed_request(const struct enc_job *j, struct err *e)
{
	struct ctl_signer s = {0};
	char *key = ctl_name_file(j->dir, j->address, ".key"), *jws = NULL;
	json_t *p = NULL;

	if (key == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	if (ctl_signer_load(&s, key, NULL, NULL, e) == 0) {
		p = json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", "anchor-encryption-request",
		              "address", j->address, "device", j->device, "public_key", j->pub_pem,
		              "issued", (json_int_t)time(NULL));
		jws = p ? ctl_signer_sign(&s, p, ENC_JWS_TYP, e) : NULL;
	}
	json_decref(p);
	ctl_signer_clear(&s);
	free(key);
	return jws;
}

/* Challenge, answer, save: the answer of the enrollment into *out. */
static int enroll(struct enc_job *j, const struct ctl_client *client, json_t **out, struct err *e)
{
	json_t *body = json_pack("{s:s, s:s, s:s}", "address", j->address, "device", j->device,
	                         "public_key", j->pub_pem);
	json_t *ch = NULL;
	char *nonce = NULL, *jws = NULL;
	int rc = -1;

	if (body == NULL || ctl_client_call(client, "POST", j->path_challenge, body, &ch, e) < 0 ||
	    (nonce = open_challenge(j, ch, e)) == NULL)
		goto out;
	json_decref(body);
	body = json_pack("{s:s, s:s}", "challenge", ctl_out_str(ch, "challenge"), "answer", nonce);
	if (j->token != NULL)
		json_object_set_new(body, "token", json_string(j->token));
	else if ((jws = signed_request(j, e)) != NULL)
		json_object_set_new(body, "request", json_string(jws));
	else
		goto out;
	rc = ctl_client_call(client, "POST", j->path_enroll, body, out, e);
out:
	json_decref(body);
	json_decref(ch);
	free(nonce);
	free(jws);
	return rc;
}

int ctl_enc_enroll_key(const struct ctl *ctl, const struct ctl_client *client, const char *address,
                       const char *device, EVP_PKEY *key, const char *token, json_t **answer,
                       struct err *e)
{
	struct enc_job j = {.ctl = ctl, .address = address, .device = device, .token = token};
	int rc = -1;

	*answer = NULL;
	j.path_challenge =
	    ctl_api_path("domains", ctl_name_domain_of(address), "/encryption/challenge");
	j.path_enroll = ctl_api_path("domains", ctl_name_domain_of(address), "/encryption");
	if (j.path_challenge == NULL || j.path_enroll == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	else if ((j.pub_pem = crypto_key_public_to_pem(key, e)) != NULL) {
		j.key = key; /* borrowed: job_free must not free it */
		rc = enroll(&j, client, answer, e);
		j.key = NULL;
	}
	job_free(&j);
	return rc;
}

static int job_prepare(struct enc_job *j, const char *alg, struct err *e)
{
	enum enckey_alg a = ENCKEY_RSA;
	int bits = 3072;

	/* The default is RSA-3072: every stock tool here decrypts it (PROTOCOL.md §4.1). */
	if (alg != NULL && enckey_alg_parse(alg, &a, &bits, e) < 0)
		return -1;
	snprintf(j->base, sizeof(j->base), "%s.%s.enc", j->address, j->device);
	j->key_path = ctl_name_file(j->dir, j->base, ".key");
	j->path_challenge =
	    ctl_api_path("domains", ctl_name_domain_of(j->address), "/encryption/challenge");
	j->path_enroll = ctl_api_path("domains", ctl_name_domain_of(j->address), "/encryption");
	if (j->key_path == NULL || j->path_challenge == NULL || j->path_enroll == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (access(j->key_path, F_OK) == 0)
		return err_set(e, ERR_INPUT, "exists",
		               "%s exists: this device has a key; give another --device",
		               j->key_path);
	if ((j->key = enckey_generate(a, bits, e)) == NULL ||
	    (j->pub_pem = crypto_key_public_to_pem(j->key, e)) == NULL)
		return -1;
	return crypto_key_write_private(j->key_path, j->key, e);
}

static int enroll_encryption(struct ctl *ctl, const struct ctl_cmd *cmd, const char *address,
                             const char *dir, const char *alg, const char *device,
                             const char *token)
{
	struct enc_job j = {.ctl = ctl, .dir = dir, .address = address, .token = token};
	struct ctl_client client;
	struct err e = {0};
	json_t *answer = NULL;
	char *revoke_path = NULL;
	int status = CTL_FAIL, wrote = 0;

	j.device = device ? device : "default";
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		goto out;
	if (job_prepare(&j, alg, &e) < 0)
		goto fail;
	wrote = 1;
	if (enroll(&j, &client, &answer, &e) < 0)
		goto fail;
	wrote = 0; /* issued: the key stays, whatever happens to the files below */
	if (ctl_save_issued(dir, j.base, answer, j.key_path, &e) < 0 ||
	    ctl_save_revocation_secret(dir, j.base, answer, &revoke_path, &e) < 0)
		goto fail;
	if (ctl->json) {
		ctl_out_json(stdout, answer);
	} else {
		printf("key:         %s (%s, mode 0600)\n", j.key_path, crypto_key_alg_name(j.key));
		printf("device:      %s\n", j.device);
		ctl_print_issued(dir, j.base, answer);
		if (revoke_path != NULL)
			printf("revocation secret: %s (0600)\n", revoke_path);
	}
	status = CTL_OK;
	goto out;
fail:
	status = strcmp(e.code, "usage") == 0 ? ctl_usage(cmd, "%s", e.msg) : ctl_fail(&e);
out:
	if (wrote && j.key_path != NULL)
		unlink(j.key_path);
	json_decref(answer);
	free(revoke_path);
	job_free(&j);
	return status;
}

int ctl_cmd_key_enroll_any(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *dir = ".", *given = NULL, *alg = NULL, *device = NULL;
	int encryption = 0, status = CTL_FAIL;
	const struct ctl_opt opts[] = {
	    {"--dir", &dir, NULL}, {"--token", &given, NULL},   {"--encryption", NULL, &encryption},
	    {"--alg", &alg, NULL}, {"--device", &device, NULL}, CTL_COMMON_OPTS(ctl),
	    {NULL, NULL, NULL},
	};
	char token[CTL_TOKEN_MAX] = "";
	struct ctl_args a;
	struct err e = {0};

	for (int i = 0; i < argc && !encryption; i++)
		encryption = strcmp(argv[i], "--encryption") == 0;
	if (!encryption)
		return ctl_cmd_key_enroll(ctl, cmd, argc, argv);
	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_address(cmd, a.pos[0], &status) < 0)
		return status;
	if (given != NULL && ctl->token_file != NULL)
		return ctl_usage(cmd, "give --token or --token-file, not both");
	/* Without a token the address's current signing key authorises the new device. */
	if (ctl->token_file != NULL && ctl_token_read(ctl->token_file, token, &e) < 0)
		return ctl_fail(&e);
	if (given != NULL) {
		snprintf(token, sizeof(token), "%s", given);
		if (strlen(given) >= sizeof(token) || ctl_token_strip(token) < 0)
			return ctl_usage(cmd, "--token does not hold a token");
	}
	status = enroll_encryption(ctl, cmd, a.pos[0], dir, alg, device, token[0] ? token : NULL);
	explicit_bzero(token, sizeof(token));
	return status;
}

/* `domain encryption <domain> none|opportunistic|required`: what the domain asks of the
 * relays that send it mail (PUT /v1/domains/{d}/policy {"encryption"}), logged. */
int ctl_cmd_domain_encryption(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	char token[CTL_TOKEN_MAX] = "";
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *answer = NULL;
	char *path = NULL;
	const char *want;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 2, 2, &a, &status) < 0 ||
	    ctl_arg_domain(cmd, a.pos[0], &status) < 0)
		return status;
	want = a.pos[1];
	if (strcmp(want, "none") != 0 && strcmp(want, "opportunistic") != 0 &&
	    strcmp(want, "required") != 0)
		return ctl_usage(cmd, "the requirement is none, opportunistic or required");
	if (ctl_admin_client(ctl, cmd, a.pos[0], token, &client, &status) < 0)
		goto out;
	body = json_pack("{s:s}", "encryption", want);
	path = ctl_api_path("domains", a.pos[0], "/policy");
	if (body == NULL || path == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		status = ctl_fail(&e);
	} else if (ctl_client_call(&client, "PUT", path, body, &answer, &e) < 0) {
		status = ctl_fail(&e);
	} else {
		if (ctl->json)
			ctl_out_json(stdout, answer);
		else
			printf("%s: encryption %s\n", a.pos[0], ctl_out_str(answer, "encryption"));
		status = CTL_OK;
	}
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	json_decref(answer);
	free(path);
	return status;
}
