/*
 * cmd_log.c - the relying party's checks of the transparency log that every
 * lookup makes (lib/tlog_client), the state file of remembered heads, and the
 * `feed` and `webhook` commands (PROTOCOL.md §10.4, §10.5).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_log.h"
#include "pki/name.h"
#include "names.h"
#include "output.h"

#define STATE_DEFAULT "/.anchor/heads.json"
#define FEED_INTERVAL_MAX 86400LL

/* ---- trust in a domain ---- */

int ctl_trust_load(const struct ctl_client *c, const char *domain, const char *pin,
                   struct ctl_trust *t, struct err *e)
{
	char *path = ctl_api_path("domains", domain, NULL);
	json_t *p;
	size_t i;

	memset(t, 0, sizeof(*t));
	if (path == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ctl_client_call(c, "GET", path, NULL, &t->object, e) < 0) {
		free(path);
		return -1;
	}
	free(path);
	if (pin != NULL) {
		snprintf(t->pins[t->npins++], CRYPTO_PIN_MAX, "%s", pin);
	} else {
		json_array_foreach(json_object_get(t->object, "pins"), i, p)
		{
			if (json_is_string(p) && t->npins < CTL_LOG_MAX_PINS)
				snprintf(t->pins[t->npins++], CRYPTO_PIN_MAX, "%s",
				         json_string_value(p));
		}
	}
	for (int k = 0; k < t->npins; k++)
		t->pinv[k] = t->pins[k];
	if (t->npins == 0)
		return err_set(e, ERR_INTERNAL, "bad_response",
		               "the domain object of %s lists no pin", domain);
	return 0;
}

void ctl_trust_free(struct ctl_trust *t)
{
	if (t == NULL)
		return;
	json_decref(t->object);
	t->object = NULL;
}

/* The root and issuer of the domain object; the root's pin must be one of the pins. */
static int trust_chain(const struct ctl_trust *t, X509 **issuer, X509 **root, struct err *e)
{
	const char *ipem = json_string_value(json_object_get(t->object, "issuer"));
	const char *rpem = json_string_value(json_object_get(t->object, "root"));
	char pin[CRYPTO_PIN_MAX];

	*issuer = *root = NULL;
	if (ipem == NULL || rpem == NULL)
		return err_set(e, ERR_INTERNAL, "bad_response",
		               "the domain object has no root or issuer");
	if ((*root = cert_from_pem(rpem, strlen(rpem), e)) == NULL ||
	    (*issuer = cert_from_pem(ipem, strlen(ipem), e)) == NULL ||
	    crypto_key_pin(X509_get0_pubkey(*root), pin, e) < 0)
		return -1;
	for (int i = 0; i < t->npins; i++)
		if (strcmp(pin, t->pins[i]) == 0)
			return 0;
	return err_set(e, ERR_UNPROC, "pin_mismatch",
	               "the domain's root (%s) matches none of the pins", pin);
}

/* ---- remembered heads ---- */

struct tlog_store *ctl_state_open(const char *state, struct err *e)
{
	const char *env = getenv("ANCHOR_STATE"), *home = getenv("HOME");
	char *path = NULL;
	struct tlog_store *s;

	if (state == NULL && env != NULL && *env != '\0')
		state = env;
	if (state == NULL && home != NULL && *home != '\0' &&
	    asprintf(&path, "%s%s", home, STATE_DEFAULT) < 0) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	s = tlog_store_open(state != NULL ? state : path, e);
	free(path);
	return s;
}

int ctl_log_fetch_consistency(void *ctx, const char *domain, uint64_t first, uint64_t second,
                              uint8_t (*proof)[MERKLE_HASH_LEN], int *n, struct err *e)
{
	const struct ctl_client *c = ctx;
	char rest[96], *path;
	json_t *answer = NULL;
	int rc = -1;

	snprintf(rest, sizeof(rest), "/log/consistency?first=%" PRIu64 "&second=%" PRIu64, first,
	         second);
	if ((path = ctl_api_path("domains", domain, rest)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ctl_client_call(c, "GET", path, NULL, &answer, e) < 0)
		goto out;
	if (json_integer_value(json_object_get(answer, "first")) != (json_int_t)first ||
	    json_integer_value(json_object_get(answer, "second")) != (json_int_t)second) {
		err_set(e, ERR_UNPROC, "bad_proof",
		        "the consistency proof is not between the sizes asked for");
		goto out;
	}
	rc = merkle_proof_from_json(json_object_get(answer, "proof"), proof, n, e);
out:
	json_decref(answer);
	free(path);
	return rc;
}

static int observe(const struct ctl_client *c, const char *state, const struct tlog_head *head,
                   struct err *e)
{
	struct tlog_store *s = ctl_state_open(state, e);
	int rc;

	if (s == NULL)
		return -1;
	rc = tlog_store_observe(s, head, ctl_log_fetch_consistency, (void *)c, e);
	tlog_store_free(s);
	return rc;
}

void ctl_log_print_fork(const char *state, const struct tlog_head *seen)
{
	struct err e = {0};
	struct tlog_store *s = ctl_state_open(state, &e);
	const struct tlog_head *old = s != NULL ? tlog_store_get(s, seen->domain) : NULL;
	char a[128];

	fprintf(stderr, "anchorctl: evidence of the fork of %s's log:\n", seen->domain);
	if (old != NULL) {
		tlog_head_describe(old, a, sizeof(a));
		fprintf(stderr, "  remembered head (%s, %s):\n  %s\n", a, old->timestamp,
		        old->jws != NULL ? old->jws : "(not kept)");
	}
	tlog_head_describe(seen, a, sizeof(a));
	fprintf(stderr, "  head now served (%s, %s):\n  %s\n", a, seen->timestamp,
	        seen->jws != NULL ? seen->jws : "(not kept)");
	tlog_store_free(s);
}

/* ---- checks of lookups ---- */

/* A certificate's name lies in the domain (an address of it, or a host under it). */
static int name_of_domain(const json_t *cert, const char *domain, struct err *e)
{
	const char *name = json_string_value(json_object_get(cert, "name"));
	const char *at = name != NULL ? strrchr(name, '@') : NULL;

	if (name != NULL &&
	    (at != NULL ? strcmp(at + 1, domain) == 0 : name_in_domain(name, domain)))
		return 0;
	return err_set(e, ERR_UNPROC, "log_mismatch",
	               "the certificate of %s is not of the domain %s", name ? name : "?", domain);
}

static int cert_chains(const json_t *cert, X509 *issuer, X509 *root, struct err *e)
{
	const char *pem = json_string_value(json_object_get(cert, "certificate"));
	X509 *leaf;
	int rc;

	if (pem == NULL)
		return err_set(e, ERR_INTERNAL, "bad_response",
		               "the certificate object carries no certificate");
	if ((leaf = cert_from_pem(pem, strlen(pem), e)) == NULL)
		return -1;
	rc = cert_verify_chain(leaf, issuer, root, e);
	X509_free(leaf);
	return rc;
}

int ctl_log_check_certs(const struct ctl_client *c, const char *pin, const char *state,
                        const json_t *answer, const json_t *certs, struct tlog_head *head,
                        struct err *e)
{
	const char *jws = json_string_value(json_object_get(answer, "tree_head"));
	struct ctl_trust t = {0};
	X509 *issuer = NULL, *root = NULL;
	char *domain = NULL;
	const json_t *cert;
	size_t i;
	int rc = -1;

	memset(head, 0, sizeof(*head));
	if (jws == NULL)
		return err_set(e, ERR_UNPROC, "log_missing",
		               "the answer comes without a signed tree head");
	if ((domain = tlog_head_peek_domain(jws, strlen(jws), e)) == NULL)
		return -1;
	if (ctl_trust_load(c, domain, pin, &t, e) < 0 ||
	    tlog_head_verify(jws, strlen(jws), domain, t.pinv, t.npins, head, e) < 0 ||
	    trust_chain(&t, &issuer, &root, e) < 0)
		goto out;
	json_array_foreach(certs, i, cert)
	{
		if (name_of_domain(cert, head->domain, e) < 0 ||
		    cert_chains(cert, issuer, root, e) < 0 || tlog_verify_cert(cert, head, e) < 0)
			goto out;
	}
	rc = observe(c, state, head, e);
out:
	X509_free(issuer);
	X509_free(root);
	ctl_trust_free(&t);
	free(domain);
	return rc;
}

int ctl_log_check_domain(const struct ctl_client *c, const char *pin, const char *state,
                         const char *domain, struct tlog_head *head, struct err *e)
{
	char *path = ctl_api_path("domains", domain, "/log/head");
	struct ctl_trust t = {0};
	json_t *jws = NULL;
	char *text = NULL;
	int rc = -1;

	memset(head, 0, sizeof(*head));
	if (path == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ctl_trust_load(c, domain, pin, &t, e) < 0)
		goto out;
	if (ctl_client_call(c, "GET", path, NULL, &jws, e) < 0) {
		if (strcmp(e->code, "not_found") == 0) { /* an empty log */
			snprintf(head->domain, sizeof(head->domain), "%s", domain);
			err_clear(e);
			rc = 0;
		}
		goto out;
	}
	if ((text = json_dumps(jws, JSON_COMPACT)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if (tlog_head_verify(text, strlen(text), domain, t.pinv, t.npins, head, e) < 0)
		goto out;
	rc = observe(c, state, head, e);
out:
	free(text);
	json_decref(jws);
	ctl_trust_free(&t);
	free(path);
	return rc;
}

/* ---- feed ---- */

static volatile sig_atomic_t stop_following;

static void on_signal(int sig)
{
	(void)sig;
	stop_following = 1;
}

static void print_entry(const json_t *entry)
{
	json_t *leaf = json_loads(ctl_out_str(entry, "leaf"), 0, NULL);
	const char *fields[] = {"fingerprint", "reason", "method", "route_sha256", "policy", NULL};

	printf("%6" JSON_INTEGER_FORMAT " %s %-13s",
	       json_integer_value(json_object_get(entry, "seq")), ctl_out_str(leaf, "time"),
	       ctl_out_str(entry, "type"));
	if (json_is_string(json_object_get(entry, "key_id")))
		printf(" key %s", ctl_out_str(entry, "key_id"));
	for (int i = 0; fields[i] != NULL; i++)
		if (json_is_string(json_object_get(leaf, fields[i])))
			printf(" %s %s", fields[i], ctl_out_str(leaf, fields[i]));
	putchar('\n');
	json_decref(leaf);
}

/* One call: print the entries from *since, advance *since to "next". */
static int feed_page(const struct ctl *ctl, const struct ctl_client *c, const char *domain,
                     long long *since, long long limit, struct err *e)
{
	char rest[96], *path;
	json_t *answer = NULL, *entry;
	long long next;
	size_t i;

	snprintf(rest, sizeof(rest), "/feed?since=%lld&limit=%lld", *since, limit);
	if ((path = ctl_api_path("domains", domain, rest)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ctl_client_call(c, "GET", path, NULL, &answer, e) < 0) {
		free(path);
		return -1;
	}
	free(path);
	next = json_integer_value(json_object_get(answer, "next"));
	if (next < *since) {
		json_decref(answer);
		return err_set(e, ERR_INTERNAL, "bad_response", "the feed's cursor went backwards");
	}
	if (ctl->json) {
		ctl_out_json(stdout, answer);
	} else {
		json_array_foreach(json_object_get(answer, "entries"), i, entry) print_entry(entry);
		printf("next: %lld\n", next);
	}
	fflush(stdout);
	*since = next;
	json_decref(answer);
	return 0;
}

int ctl_cmd_feed(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *since_s = NULL, *limit_s = NULL, *interval_s = NULL;
	int follow = 0;
	const struct ctl_opt opts[] = {
	    {"--since", &since_s, NULL},
	    {"--limit", &limit_s, NULL},
	    {"--interval", &interval_s, NULL},
	    {"--follow", NULL, &follow},
	    CTL_COMMON_OPTS(ctl),
	    {NULL, NULL, NULL},
	};
	long long since = 0, limit = 100, interval = 5;
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_domain(cmd, a.pos[0], &status) < 0)
		return status;
	if ((since_s != NULL && ctl_args_int(since_s, 0, INT64_MAX, &since) < 0) ||
	    (limit_s != NULL && ctl_args_int(limit_s, 1, 1000, &limit) < 0) ||
	    (interval_s != NULL && ctl_args_int(interval_s, 1, FEED_INTERVAL_MAX, &interval) < 0))
		return ctl_usage(cmd, "--since N (0 or more), --limit 1..1000, --interval SECONDS");
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		return status;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	for (;;) {
		long long before = since;
		if (feed_page(ctl, &client, a.pos[0], &since, limit, &e) < 0)
			return ctl_fail(&e);
		if (!follow || stop_following)
			break;
		if (since - before == limit)
			continue; /* a full page: more may be waiting */
		for (long long s = 0; s < interval && !stop_following; s++)
			sleep(1);
		if (stop_following)
			break;
	}
	return CTL_OK;
}

/* ---- webhooks ---- */

int ctl_cmd_webhook_add(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *secret_file = NULL;
	const struct ctl_opt opts[] = {
	    {"--secret-file", &secret_file, NULL}, CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *ids = NULL, *answer = NULL;
	const char *secret;
	char *path = NULL, *text = NULL;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 3, CTL_ARGS_MAX, &a, &status) < 0 ||
	    ctl_arg_domain(cmd, a.pos[0], &status) < 0)
		return status;
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		return status;
	ids = json_array();
	for (int i = 2; ids != NULL && i < a.npos; i++)
		json_array_append_new(ids, json_string(ctl_name_lower(a.pos[i])));
	body = json_pack("{s:s, s:o}", "url", a.pos[1], "key_ids", ids);
	path = ctl_api_path("domains", a.pos[0], "/webhooks");
	if (body == NULL || path == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if (ctl_client_call(&client, "POST", path, body, &answer, &e) < 0)
		goto fail;
	secret = json_string_value(json_object_get(answer, "secret"));
	if (secret == NULL || !json_is_integer(json_object_get(answer, "id"))) {
		err_set(&e, ERR_INTERNAL, "bad_response", "the answer has no id and secret");
		goto fail;
	}
	if (secret_file != NULL) {
		if (asprintf(&text, "%s\n", secret) < 0) {
			text = NULL;
			err_set(&e, ERR_INTERNAL, "internal", "out of memory");
			goto fail;
		}
		if (ctl_file_write(secret_file, text, strlen(text), 0600, 0, &e) < 0)
			goto fail;
	}
	printf("webhook: %" JSON_INTEGER_FORMAT "\n",
	       json_integer_value(json_object_get(answer, "id")));
	if (secret_file != NULL)
		printf("secret:  written to %s (0600); it deletes the webhook\n", secret_file);
	else
		printf("secret:  %s\n", secret);
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	if (text != NULL)
		explicit_bzero(text, strlen(text));
	free(text);
	free(path);
	json_decref(body);
	json_decref(answer);
	return status;
}

int ctl_cmd_webhook_delete(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *secret_file = NULL;
	const struct ctl_opt opts[] = {
	    {"--secret-file", &secret_file, NULL}, CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	char secret[CTL_TOKEN_MAX] = "", rest[40];
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *answer = NULL;
	long long id = 0;
	char *path = NULL;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 2, 2, &a, &status) < 0 ||
	    ctl_arg_domain(cmd, a.pos[0], &status) < 0)
		return status;
	if (ctl_args_int(a.pos[1], 1, INT64_MAX, &id) < 0)
		return ctl_usage(cmd, "'%s' is not a webhook id", a.pos[1]);
	if (secret_file == NULL && ctl->token_file == NULL)
		return ctl_usage(cmd, "the webhook's secret is needed: --secret-file FILE");
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		return status;
	if (ctl_token_read(secret_file != NULL ? secret_file : ctl->token_file, secret, &e) < 0)
		return ctl_fail(&e);
	client.token = secret;
	snprintf(rest, sizeof(rest), "/webhooks/%lld", id);
	if ((path = ctl_api_path("domains", a.pos[0], rest)) == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		status = ctl_fail(&e);
	} else if (ctl_client_call(&client, "DELETE", path, NULL, &answer, &e) < 0) {
		status = ctl_fail(&e);
	} else {
		printf("webhook %lld deleted\n", id);
		status = CTL_OK;
	}
	explicit_bzero(secret, sizeof(secret));
	json_decref(answer);
	free(path);
	return status;
}
