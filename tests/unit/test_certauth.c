/*
 * test_certauth.c - lib/certauth offline: a real certificate hierarchy made here, JWS
 * signed here, and a fake network (certauth_set_net) that plays DNS discovery and the
 * domain's key server answering GET /v1/fingerprints/{fpr} with each certificate's
 * status.  Each decision (current, superseded, revoked, unknown, wrong name, CA leaf,
 * not anchored, discovery down), the key server being away (fail closed, nothing
 * cached) and the cache's TTL and size bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "pki/cert.h"
#include "dns/certauth.h"
#include "pki/crypto.h"
#include "pki/jws.h"

#define DOMAIN "example.com"

enum { ALICE = 0, BOB_OLD, CAROL_REVOKED, DAVE_UNLOGGED, SERVER, NKEYS };
enum ks_mode { KS_OK = 0, KS_DOWN, KS_GARBAGE, KS_OTHER_CERT };

struct key {
	const char *name;
	enum cert_purpose purpose;
	const char *status; /* what the key server says; NULL: it does not know the key */
	EVP_PKEY *key;
	X509 *cert;
	char fpr[CERT_FPR_LEN];
};

static struct key keys[NKEYS] = {
    {"alice@" DOMAIN, CERT_PURPOSE_SMIME, "current", NULL, NULL, ""},
    {"bob@" DOMAIN, CERT_PURPOSE_SMIME, "superseded", NULL, NULL, ""},
    {"carol@" DOMAIN, CERT_PURPOSE_SMIME, "revoked", NULL, NULL, ""},
    {"dave@" DOMAIN, CERT_PURPOSE_SMIME, NULL, NULL, NULL, ""},
    {"reports." DOMAIN, CERT_PURPOSE_SIGNING, "current", NULL, NULL, ""},
};

static EVP_PKEY *root_key, *issuer_key;
static X509 *root, *issuer;
static char pin[CRYPTO_PIN_MAX];

static enum ks_mode ks_mode;
static int ks_calls;
static time_t clock_now = 1000;

/* ------------------------------------------------------------------ the fake network */

static int fake_discover(void *ctx, const char *domain, struct discover_result **out, struct err *e)
{
	struct discover_result *r = calloc(1, sizeof(*r));

	(void)ctx;
	assert_non_null(r);
	*out = r;
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	if (strcmp(domain, "slow.test") == 0) {
		r->status = DISCOVER_ERROR;
		return err_set(e, ERR_TEMP, "dns_timeout", "no answer in time");
	}
	if (strcmp(domain, "legacy.test") == 0) {
		r->status = DISCOVER_LEGACY;
		return 0;
	}
	/* every other domain pins our root (a lying DNS is not what is tested here) */
	r->status = DISCOVER_ANCHORED;
	r->npins = 1;
	snprintf(r->pins[0], sizeof(r->pins[0]), "%s", pin);
	return 0;
}

static int fake_keyserver_get(void *ctx, const struct discover_result *d, const char *path,
                              char **body, struct err *e)
{
	const char *prefix = "/v1/fingerprints/";
	json_t *o = NULL;

	(void)ctx;
	ks_calls++;
	*body = NULL;
	assert_true(strncmp(path, prefix, strlen(prefix)) == 0);
	if (ks_mode == KS_DOWN)
		return err_set(e, ERR_TEMP, "fetch_connect", "connection refused by %s", d->domain);
	if (ks_mode == KS_GARBAGE) {
		*body = strdup("<html>502 Bad Gateway</html>");
		return 0;
	}
	for (int i = 0; i < NKEYS; i++) {
		if (strcmp(path + strlen(prefix), keys[i].fpr) != 0 || keys[i].status == NULL)
			continue;
		o = json_pack("{s:s, s:s, s:s, s:s?, s:o}", "name", keys[i].name, "fingerprint",
		              ks_mode == KS_OTHER_CERT ? keys[(i + 1) % NKEYS].fpr : keys[i].fpr,
		              "status", keys[i].status, "superseded",
		              strcmp(keys[i].status, "superseded") == 0 ? "2026-03-01T00:00:00Z"
		                                                        : NULL,
		              "revocation",
		              strcmp(keys[i].status, "revoked") == 0
		                  ? json_pack("{s:s, s:s, s:s}", "reason", "keyCompromise",
		                              "method", "secret", "time", "2026-03-02T00:00:00Z")
		                  : json_null());
	}
	if (o == NULL)
		return err_set(e, ERR_NOTFOUND, "fetch_status", "HTTP 404 not_found");
	*body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return 0;
}

static time_t fake_now(void *ctx)
{
	(void)ctx;
	return clock_now;
}

static struct certauth *checker(long long ttl, size_t max)
{
	struct certauth_config c = {.ttl = ttl, .max_entries = max};
	struct certauth_net net = {fake_discover, fake_keyserver_get, fake_now, NULL};
	struct err e = {0};
	struct certauth *a = certauth_new(&c, NULL, &e);

	assert_non_null(a);
	certauth_set_net(a, &net);
	ks_mode = KS_OK;
	ks_calls = 0;
	return a;
}

/* ------------------------------------------------------------------ fixtures */

static char *sign_with(EVP_PKEY *key, X509 *const *chain, int n)
{
	static const char payload[] = "{\"type\":\"test\"}";
	struct err e = {0};
	char *jws = jws_sign(payload, strlen(payload), key, chain, n, "test+jws", &e);

	if (jws == NULL)
		fail_msg("sign: %s", e.msg);
	return jws;
}

static char *signed_by(int k)
{
	X509 *chain[3] = {keys[k].cert, issuer, root};

	return sign_with(keys[k].key, chain, 3);
}

static int group_setup(void **state)
{
	struct err e = {0};

	(void)state;
	root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	issuer_key = crypto_key_generate(KEY_ED25519, 0, &e);
	root = cert_make_root(root_key, DOMAIN, 30, &e);
	issuer = cert_make_issuer(issuer_key, root, root_key, DOMAIN, 30, &e);
	if (root == NULL || issuer == NULL || crypto_key_pin(root_key, pin, &e) < 0)
		return -1;
	for (int i = 0; i < NKEYS; i++) {
		struct cert_issue req = {.purpose = keys[i].purpose,
		                         .name = keys[i].name,
		                         .key_id = "7d0a0c6e-9a43-4c55-8b0e-3f4a1c2b5d6e",
		                         .days = 30};
		keys[i].key = crypto_key_generate(KEY_ED25519, 0, &e);
		if (keys[i].key == NULL ||
		    (keys[i].cert = cert_issue_leaf(&req, keys[i].key, issuer, issuer_key, &e)) ==
		        NULL ||
		    cert_fingerprint(keys[i].cert, keys[i].fpr, &e) < 0)
			return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < NKEYS; i++) {
		EVP_PKEY_free(keys[i].key);
		X509_free(keys[i].cert);
	}
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(issuer_key);
	X509_free(root);
	X509_free(issuer);
	return 0;
}

/* certauth_verify_jws of jws for want; the error code ("" when it passed). */
static const char *check(struct certauth *a, const char *jws, const char *name,
                         enum certauth_rule rule, struct err *e, char signer[CERTAUTH_NAME_MAX])
{
	struct certauth_want want = {.name = name, .rule = rule};
	struct jws_verified v;
	int rc;

	err_clear(e);
	rc = certauth_verify_jws(a, jws, strlen(jws), &want, &v, signer, e);
	if (rc == 0) {
		assert_non_null(v.leaf);
		assert_string_equal(v.payload, "{\"type\":\"test\"}");
		jws_verified_free(&v);
		return "";
	}
	assert_null(v.leaf); /* nothing is handed out on a refusal */
	assert_int_equal(rc, -1);
	return e->code;
}

/* ------------------------------------------------------------------ decisions */

static void test_decisions(void **state)
{
	struct certauth *a = checker(60, 16);
	char signer[CERTAUTH_NAME_MAX], *jws;
	struct err e;

	(void)state;
	jws = signed_by(ALICE);
	assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer), "");
	assert_string_equal(signer, "alice@" DOMAIN);
	assert_string_equal(check(a, jws, "ALICE@" DOMAIN, CERTAUTH_ADDRESS, &e, signer), "");
	/* alice's key does not speak for bob, but does for her domain */
	assert_string_equal(check(a, jws, "bob@" DOMAIN, CERTAUTH_ADDRESS, &e, signer),
	                    "wrong_signer");
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	assert_string_equal(check(a, jws, DOMAIN, CERTAUTH_IN_DOMAIN, &e, signer), "");
	assert_string_equal(check(a, jws, "other.example", CERTAUTH_IN_DOMAIN, &e, signer),
	                    "signer_outside_domain");
	assert_string_equal(check(a, jws, "legacy.test", CERTAUTH_IN_DOMAIN, &e, signer),
	                    "not_anchored");
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	assert_string_equal(check(a, jws, "slow.test", CERTAUTH_IN_DOMAIN, &e, signer),
	                    "discovery_failed");
	assert_int_equal(e.kind, ERR_TEMP);
	assert_string_equal(check(a, jws, "not-an-address", CERTAUTH_ADDRESS, &e, signer),
	                    "bad_name");
	free(jws);

	/* a superseded key, a revoked one, one the key server does not know */
	jws = signed_by(BOB_OLD);
	assert_string_equal(check(a, jws, "bob@" DOMAIN, CERTAUTH_ADDRESS, &e, signer),
	                    "key_superseded");
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	assert_non_null(strstr(e.msg, "2026-03-01T00:00:00Z"));
	assert_string_equal(check(a, jws, DOMAIN, CERTAUTH_IN_DOMAIN, &e, signer),
	                    "key_superseded");
	free(jws);
	jws = signed_by(CAROL_REVOKED);
	assert_string_equal(check(a, jws, "carol@" DOMAIN, CERTAUTH_ADDRESS, &e, signer),
	                    "key_revoked");
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	assert_non_null(strstr(e.msg, "keyCompromise"));
	free(jws);
	jws = signed_by(DAVE_UNLOGGED);
	assert_string_equal(check(a, jws, "dave@" DOMAIN, CERTAUTH_ADDRESS, &e, signer),
	                    "key_unknown");
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	free(jws);

	/* a host key, for its domain */
	jws = signed_by(SERVER);
	assert_string_equal(check(a, jws, DOMAIN, CERTAUTH_IN_DOMAIN, &e, signer), "");
	assert_string_equal(signer, "reports." DOMAIN);
	assert_string_equal(check(a, jws, "reports." DOMAIN "@x", CERTAUTH_ADDRESS, &e, signer),
	                    "wrong_signer");
	free(jws);

	/* the issuer (a CA) cannot act as anyone, though it chains */
	{
		X509 *chain[2] = {issuer, root};
		jws = sign_with(issuer_key, chain, 2);
		assert_string_equal(check(a, jws, DOMAIN, CERTAUTH_IN_DOMAIN, &e, signer),
		                    "signer_outside_domain");
		free(jws);
	}
	/* a tampered request never reaches the key server */
	jws = signed_by(ALICE);
	jws[strlen(jws) - 5] = jws[strlen(jws) - 5] == 'A' ? 'B' : 'A';
	ks_calls = 0;
	assert_string_not_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer), "");
	assert_int_equal(ks_calls, 0);
	free(jws);
	certauth_free(a);
}

/* ------------------------------------------------------------------ the key server away */

static void test_keyserver_unreachable(void **state)
{
	struct certauth *a = checker(60, 16);
	char signer[CERTAUTH_NAME_MAX], *jws = signed_by(ALICE);
	struct err e;

	(void)state;
	for (enum ks_mode m = KS_DOWN; m <= KS_OTHER_CERT; m++) {
		ks_mode = m;
		assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer),
		                    "key_status_unavailable");
		assert_int_equal(e.kind, ERR_TEMP); /* 503: refused now, retry later */
		assert_true(err_is_temporary(e.kind));
		assert_int_equal(certauth_cache_size(a), 0); /* a failure is not remembered */
	}
	/* back: the same request passes, and the answer is now cached */
	ks_mode = KS_OK;
	assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer), "");
	assert_int_equal(certauth_cache_size(a), 1);
	/* a cached answer stands while the key server is away, until its TTL ends */
	ks_mode = KS_DOWN;
	assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer), "");
	clock_now += 61;
	assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer),
	                    "key_status_unavailable");
	free(jws);
	certauth_free(a);
}

/* ------------------------------------------------------------------ the cache */

static void test_cache_ttl(void **state)
{
	struct certauth *a = checker(10, 16);
	char signer[CERTAUTH_NAME_MAX], *jws = signed_by(ALICE);
	struct err e;

	(void)state;
	assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer), "");
	assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer), "");
	assert_int_equal(ks_calls, 1);
	/* revoked at the key server: the cached answer stands for at most the TTL */
	keys[ALICE].status = "revoked";
	clock_now += 9;
	assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer), "");
	assert_int_equal(ks_calls, 1);
	clock_now += 2;
	assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer),
	                    "key_revoked");
	assert_int_equal(ks_calls, 2);
	/* refusals are cached too */
	assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer),
	                    "key_revoked");
	assert_int_equal(ks_calls, 2);
	keys[ALICE].status = "current";
	certauth_free(a);

	/* TTL 0: every request asks, nothing is kept */
	a = checker(0, 16);
	for (int i = 0; i < 3; i++)
		assert_string_equal(check(a, jws, "alice@" DOMAIN, CERTAUTH_ADDRESS, &e, signer),
		                    "");
	assert_int_equal(ks_calls, 3);
	assert_int_equal(certauth_cache_size(a), 0);
	free(jws);
	certauth_free(a);
}

static void test_cache_bound(void **state)
{
	struct certauth *a = checker(3600, 3);
	const char *who[NKEYS] = {"alice@" DOMAIN, "bob@" DOMAIN, "carol@" DOMAIN, "dave@" DOMAIN,
	                          DOMAIN};
	char signer[CERTAUTH_NAME_MAX], *jws[NKEYS];
	struct err e;

	(void)state;
	for (int i = 0; i < NKEYS; i++) {
		jws[i] = signed_by(i);
		check(a, jws[i], who[i], i == SERVER ? CERTAUTH_IN_DOMAIN : CERTAUTH_ADDRESS, &e,
		      signer);
		assert_true(certauth_cache_size(a) <= 3);
	}
	assert_int_equal(ks_calls, NKEYS);
	assert_int_equal(certauth_cache_size(a), 3);
	/* the three newest are held; the oldest (alice, bob) went */
	assert_string_equal(check(a, jws[SERVER], DOMAIN, CERTAUTH_IN_DOMAIN, &e, signer), "");
	assert_string_equal(
	    check(a, jws[CAROL_REVOKED], who[CAROL_REVOKED], CERTAUTH_ADDRESS, &e, signer),
	    "key_revoked");
	assert_int_equal(ks_calls, NKEYS);
	assert_string_equal(check(a, jws[ALICE], who[ALICE], CERTAUTH_ADDRESS, &e, signer), "");
	assert_int_equal(ks_calls, NKEYS + 1);
	assert_int_equal(certauth_cache_size(a), 3);
	certauth_flush(a);
	assert_int_equal(certauth_cache_size(a), 0);
	for (int i = 0; i < NKEYS; i++)
		free(jws[i]);
	certauth_free(a);
	certauth_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decisions),
	    cmocka_unit_test(test_keyserver_unreachable),
	    cmocka_unit_test(test_cache_ttl),
	    cmocka_unit_test(test_cache_bound),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
