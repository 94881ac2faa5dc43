/*
 * cmd_group_key.c - `group key create|rotate|fetch` (PROTOCOL.md §5.5): a group's (or the
 * corporate address's) encryption key, made here and given to the key server only
 * wrapped to each member.
 *
 * create|rotate (the domain admin): read the group's members and their current
 * encryption certificates, make the key, enroll its certificate for the group address
 * (device "group", by an enrollment token the admin issues itself: §4.1), wrap the
 * PKCS#8 key to each member (lib/mail/smime_wrap.h) and upload the wraps.  The clear
 * key is only ever in this process's memory; nothing writes it.  A member without a
 * current encryption certificate stops it before anything is issued.
 *
 * fetch (a member): a request signed by the member's current key (DIR/<member>.key),
 * then each generation unwrapped with the member's device key
 * (DIR/<member>.<device>.enc.key) and written as DIR/<group>.g<N>.enc.key (0600) with
 * its certificate in .pem: what `mail decrypt --key` reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "cmd.h"
#include "mail/smime_wrap.h"
#include "names.h"
#include "output.h"
#include "pki/crypto.h"
#include "pki/enckey.h"
#include "sign.h"

#define GROUP_KEYS_TYP "anchor-group-keys-request+jws"

struct gk_opts {
	const char *dir, *alg, *as, *device;
};

/* Parse one PEM certificate text: the X509 or NULL. */
static X509 *pem_cert(const char *pem, struct err *e)
{
	if (pem == NULL) {
		err_set(e, ERR_INTERNAL, "bad_response", "a certificate is missing");
		return NULL;
	}
	return cert_from_pem(pem, strlen(pem), e);
}

/* The key wrapped to one member's certificates (group_read has checked it has some),
 * appended to wraps. */
static int member_wrap(EVP_PKEY *key, const json_t *member, json_t *wraps, struct err *e)
{
	const char *addr = ctl_out_str(member, "address");
	json_t *certs = json_object_get(member, "certificates"), *c;
	STACK_OF(X509) *st = sk_X509_new_null();
	char *env = NULL;
	size_t i;
	int rc = -1;

	if (st == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	json_array_foreach(certs, i, c)
	{
		X509 *x = pem_cert(json_string_value(c), e);
		if (x == NULL || sk_X509_push(st, x) <= 0) {
			X509_free(x);
			goto out;
		}
	}
	if ((env = smime_wrap_key(key, st, e)) == NULL)
		goto out;
	rc = json_array_append_new(wraps, json_pack("{s:s, s:s}", "member", addr, "envelope", env));
out:
	free(env);
	sk_X509_pop_free(st, X509_free);
	return rc;
}

/* The group as the key server sees it (GET, admin); checked for members with keys. */
static json_t *group_read(const struct ctl_client *client, const char *group, int rotate,
                          struct err *e)
{
	char *path = ctl_api_path("domains", ctl_name_domain_of(group), NULL);
	char *full = NULL;
	json_t *g = NULL, *m;
	size_t i;

	if (path == NULL || asprintf(&full, "%s/groups/%s", path, group) < 0)
		full = NULL;
	if (full == NULL || ctl_client_call(client, "GET", full, NULL, &g, e) < 0)
		goto fail;
	if (json_array_size(json_object_get(g, "members")) == 0) {
		err_set(e, ERR_INPUT, "no_members", "%s has no members (group set first)", group);
		goto fail;
	}
	json_array_foreach(json_object_get(g, "members"), i, m)
	{
		if (json_array_size(json_object_get(m, "certificates")) == 0) {
			err_set(e, ERR_INPUT, "member_without_key",
			        "%s has no current encryption certificate: it enrolls one (key "
			        "enroll --encryption) before it can be given the group's key",
			        ctl_out_str(m, "address"));
			goto fail;
		}
	}
	if (!rotate && json_integer_value(json_object_get(g, "generation")) > 0) {
		err_set(e, ERR_CONFLICT, "exists",
		        "%s has a key (generation %lld): use group key rotate", group,
		        (long long)json_integer_value(json_object_get(g, "generation")));
		goto fail;
	}
	free(path);
	free(full);
	return g;
fail:
	json_decref(g);
	free(path);
	free(full);
	return NULL;
}

/* An enrollment token for the group address, issued with the admin token. */
static char *group_token(const struct ctl_client *client, const char *group, struct err *e)
{
	char *path = ctl_api_path("domains", ctl_name_domain_of(group), "/tokens");
	json_t *body = json_pack("{s:s, s:i}", "address", group, "ttl", 600), *ans = NULL;
	char *tok = NULL;

	if (path != NULL && body != NULL &&
	    ctl_client_call(client, "POST", path, body, &ans, e) == 0 &&
	    (tok = strdup(ctl_out_str(ans, "token"))) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	json_decref(body);
	json_decref(ans);
	free(path);
	return tok;
}

static int upload(const struct ctl_client *client, const char *group, const char *key_id,
                  json_t *wraps, json_t **answer, struct err *e)
{
	char *path = ctl_api_path("domains", ctl_name_domain_of(group), NULL), *full = NULL;
	json_t *body = json_pack("{s:s, s:O}", "key_id", key_id, "wraps", wraps);
	int rc = -1;

	if (path != NULL && asprintf(&full, "%s/groups/%s/keys", path, group) >= 0 && body)
		rc = ctl_client_call(client, "PUT", full, body, answer, e);
	else
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	json_decref(body);
	free(path);
	free(full);
	return rc;
}

/* Make, enroll, wrap, upload: the upload's answer into *out. */
static int key_make(const struct ctl *ctl, const struct ctl_client *client, const char *group,
                    const struct gk_opts *o, const json_t *g, json_t **out, struct err *e)
{
	enum enckey_alg alg = ENCKEY_RSA;
	int bits = 3072, rc = -1;
	EVP_PKEY *key = NULL;
	json_t *issued = NULL, *wraps = json_array(), *m;
	char *tok = NULL, *revoke = NULL, base[400];
	size_t i;

	if (wraps == NULL || (o->alg != NULL && enckey_alg_parse(o->alg, &alg, &bits, e) < 0) ||
	    (key = enckey_generate(alg, bits, e)) == NULL)
		goto out;
	/* Wrapped first: a member whose certificate cannot be encrypted to stops it here,
	 * before a certificate is issued for a key nobody could get. */
	json_array_foreach(json_object_get(g, "members"), i, m)
	{
		if (member_wrap(key, m, wraps, e) < 0)
			goto out;
	}
	if ((tok = group_token(client, group, e)) == NULL ||
	    ctl_enc_enroll_key(ctl, client, group, "group", key, tok, &issued, e) < 0)
		goto out;
	snprintf(base, sizeof(base), "%s.group.enc", group);
	if (ctl_save_issued(o->dir, base, issued, NULL, e) < 0 ||
	    ctl_save_revocation_secret(o->dir, base, issued, &revoke, e) < 0 ||
	    upload(client, group, ctl_out_str(issued, "key_id"), wraps, out, e) < 0) {
		/* The certificate is current and its key is gone with this process: senders
		 * would encrypt to a key nobody holds until the next generation. */
		fprintf(stderr,
		        "anchorctl: %s: certificate %s was issued but its key not uploaded: run "
		        "group key rotate %s again now\n",
		        group, ctl_out_str(issued, "key_id"), group);
		goto out;
	}
	rc = 0;
out:
	if (tok != NULL)
		OPENSSL_cleanse(tok, strlen(tok));
	free(tok);
	free(revoke);
	json_decref(issued);
	json_decref(wraps);
	EVP_PKEY_free(key);
	return rc;
}

static int group_key_make(struct ctl *ctl, const struct ctl_cmd *cmd, char *group,
                          const struct gk_opts *o, int rotate)
{
	char token[CTL_TOKEN_MAX] = "";
	struct ctl_client client;
	struct err e = {0};
	json_t *g = NULL, *answer = NULL;
	int status = CTL_FAIL;

	if (ctl_admin_client(ctl, cmd, ctl_name_domain_of(group), token, &client, &status) < 0)
		goto out;
	if ((g = group_read(&client, group, rotate, &e)) == NULL ||
	    key_make(ctl, &client, group, o, g, &answer, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		printf("%s: key generation %lld (key id %s), wrapped to %lld member(s)\n", group,
		       (long long)json_integer_value(json_object_get(answer, "generation")),
		       ctl_out_str(answer, "key_id"),
		       (long long)json_integer_value(json_object_get(answer, "members")));
	status = CTL_OK;
out:
	explicit_bzero(token, sizeof(token));
	json_decref(g);
	json_decref(answer);
	return status;
}

/* ---- fetch ---- */

static json_t *fetch_call(const struct ctl *ctl, const struct ctl_cmd *cmd, const char *group,
                          const struct gk_opts *o, int *status, struct err *e)
{
	struct ctl_signer s = {0};
	struct ctl_client client;
	char *key = ctl_name_file(o->dir, o->as, ".key"), *jws = NULL, *path = NULL;
	char *full = NULL;
	json_t *p = NULL, *body = NULL, *answer = NULL;

	if (ctl_server(ctl, cmd, NULL, &client, status) < 0)
		goto out;
	*status = CTL_FAIL;
	if (key == NULL || ctl_signer_load(&s, key, NULL, NULL, e) < 0)
		goto out;
	p = json_pack("{s:s, s:s, s:s, s:o}", "type", "anchor-group-keys-request", "address", o->as,
	              "group", group, "issued", ctl_signing_time());
	if (p == NULL || (jws = ctl_signer_sign(&s, p, GROUP_KEYS_TYP, e)) == NULL)
		goto out;
	body = json_loads(jws, 0, NULL);
	path = ctl_api_path("domains", ctl_name_domain_of(group), NULL);
	if (body == NULL || path == NULL ||
	    asprintf(&full, "%s/groups/%s/keys/%s", path, group, o->as) < 0) {
		full = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	ctl_client_call(&client, "POST", full, body, &answer, e);
out:
	ctl_signer_clear(&s);
	json_decref(p);
	json_decref(body);
	free(key);
	free(jws);
	free(path);
	free(full);
	return answer;
}

/* One generation unwrapped and written (or found already there): 0, or -1. */
static int fetch_store(const struct gk_opts *o, const char *group, const json_t *k, EVP_PKEY *dkey,
                       X509 *dcert, struct err *e)
{
	const char *env = ctl_out_str(k, "envelope");
	long long gen = (long long)json_integer_value(json_object_get(k, "generation"));
	X509 *gc = pem_cert(ctl_out_str(k, "certificate"), e);
	EVP_PKEY *gk = NULL;
	char base[400], *kp = NULL, *cp = NULL;
	int rc = -1;

	snprintf(base, sizeof(base), "%s.g%lld.enc", group, gen);
	if (gc == NULL || env == NULL ||
	    (gk = smime_unwrap_key(env, strlen(env), dkey, dcert, e)) == NULL)
		goto out;
	if (!crypto_key_matches(gk, X509_get0_pubkey(gc))) {
		err_set(e, ERR_INPUT, "key_mismatch",
		        "generation %lld: the unwrapped key is not its certificate's", gen);
		goto out;
	}
	kp = ctl_name_file(o->dir, base, ".key");
	cp = ctl_name_file(o->dir, base, ".pem");
	if (kp == NULL || cp == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if (ctl_file_write(cp, ctl_out_str(k, "certificate"), strlen(ctl_out_str(k, "certificate")),
	                   0644, 1, e) < 0)
		goto out;
	rc = crypto_key_write_private(kp, gk, e);
	if (rc < 0 && strcmp(e->code, "exists") == 0) { /* fetched before: kept as it is */
		memset(e, 0, sizeof(*e));
		rc = 0;
	}
	if (rc == 0)
		printf("%s: generation %lld (%s): %s (mode 0600)\n", group, gen,
		       ctl_out_str(k, "status"), kp);
out:
	free(kp);
	free(cp);
	EVP_PKEY_free(gk);
	X509_free(gc);
	return rc;
}

static int group_key_fetch(struct ctl *ctl, const struct ctl_cmd *cmd, const char *group,
                           const struct gk_opts *o)
{
	char base[400], *dk = NULL;
	struct ctl_signer dev = {0};
	struct err e = {0};
	json_t *answer, *k;
	int status = CTL_FAIL;
	size_t i;

	answer = fetch_call(ctl, cmd, group, o, &status, &e);
	if (answer == NULL)
		return e.kind != ERR_NONE ? ctl_fail(&e) : status;
	snprintf(base, sizeof(base), "%s.%s.enc", o->as, o->device);
	if ((dk = ctl_name_file(o->dir, base, ".key")) == NULL ||
	    ctl_signer_load(&dev, dk, NULL, NULL, &e) < 0)
		goto fail;
	json_array_foreach(json_object_get(answer, "keys"), i, k)
	{
		if (fetch_store(o, group, k, dev.key, dev.chain[0], &e) < 0)
			goto fail;
	}
	if (json_array_size(json_object_get(answer, "keys")) == 0)
		printf("%s: no key was wrapped to %s yet\n", group, o->as);
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	ctl_signer_clear(&dev);
	free(dk);
	json_decref(answer);
	return status;
}

int ctl_cmd_group_key(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct gk_opts o = {.dir = ".", .device = "default"};
	const struct ctl_opt opts[] = {{"--dir", &o.dir, NULL}, {"--alg", &o.alg, NULL},
	                               {"--as", &o.as, NULL},   {"--device", &o.device, NULL},
	                               CTL_COMMON_OPTS(ctl),    {NULL, NULL, NULL}};
	struct ctl_args a;
	const char *what;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 2, 2, &a, &status) < 0 ||
	    ctl_arg_address(cmd, a.pos[1], &status) < 0)
		return status;
	what = a.pos[0];
	if (strcmp(what, "fetch") == 0) {
		if (o.as == NULL)
			return ctl_usage(cmd,
			                 "fetch needs --as MEMBER (whose keys sign and unwrap)");
		if (ctl_arg_address(cmd, (char *)o.as, &status) < 0)
			return status;
		return group_key_fetch(ctl, cmd, a.pos[1], &o);
	}
	if (strcmp(what, "create") != 0 && strcmp(what, "rotate") != 0)
		return ctl_usage(cmd, "say create, rotate or fetch, not '%s'", what);
	return group_key_make(ctl, cmd, a.pos[1], &o, strcmp(what, "rotate") == 0);
}
