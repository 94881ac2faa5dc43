/* test_resolve.c - checking signed route answers (resolve_check_answer, PROTOCOL.md §6.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "pki/cert.h"
#include "pki/crypto.h"
#include "pki/jws.h"
#include "dns/resolve.h"

struct dom {
	EVP_PKEY *root_key, *issuer_key, *user_key;
	X509 *root, *issuer, *user;
	char pins[1][CRYPTO_PIN_MAX];
};

static void dom_make(struct dom *d, const char *domain)
{
	struct cert_issue req = {CERT_PURPOSE_SMIME, NULL, "0b6f5c0e-4d3a-4c8e-9a57-6a1f1d0e8a11",
	                         30};
	char user[64];
	struct err e = {0};

	snprintf(user, sizeof(user), "mallory@%s", domain);
	req.name = user;
	d->root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	d->issuer_key = crypto_key_generate(KEY_P256, 0, &e);
	d->user_key = crypto_key_generate(KEY_ED25519, 0, &e);
	assert_non_null(d->user_key);
	d->root = cert_make_root(d->root_key, domain, 30, &e);
	d->issuer = cert_make_issuer(d->issuer_key, d->root, d->root_key, domain, 30, &e);
	d->user = cert_issue_leaf(&req, d->user_key, d->issuer, d->issuer_key, &e);
	assert_non_null(d->user);
	assert_int_equal(crypto_key_pin(d->root_key, d->pins[0], &e), 0);
}

static void dom_free(struct dom *d)
{
	EVP_PKEY_free(d->root_key);
	EVP_PKEY_free(d->issuer_key);
	EVP_PKEY_free(d->user_key);
	X509_free(d->root);
	X509_free(d->issuer);
	X509_free(d->user);
}

/* A route answer for name, expiring at expires, signed by the issuer (or the user). */
static char *answer(struct dom *d, const char *name, time_t expires, int by_user)
{
	char exp[32], *text, *jws;
	struct tm tm;
	struct err e = {0};
	json_t *p;

	gmtime_r(&expires, &tm);
	strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "type", "anchor-route", "name", name,
	              "domain", "example.com", "scope", "address", "alias", "bob@example.org",
	              "ttl", 60, "expires", exp);
	text = json_dumps(p, JSON_COMPACT);
	if (by_user) {
		X509 *chain[3] = {d->user, d->issuer, d->root};
		jws = jws_sign(text, strlen(text), d->user_key, chain, 3, "anchor-route+jws", &e);
	} else {
		X509 *chain[2] = {d->issuer, d->root};
		jws = jws_sign(text, strlen(text), d->issuer_key, chain, 2, "anchor-route+jws", &e);
	}
	assert_non_null(jws);
	free(text);
	json_decref(p);
	return jws;
}

static int check(struct dom *d, const char *jws, const char *name, time_t now, struct err *e)
{
	json_t *payload = NULL;
	int rc = resolve_check_answer(jws, strlen(jws), name,
	                              (const char(*)[CRYPTO_PIN_MAX])d->pins, 1, now, &payload, e);

	if (rc == 0) {
		assert_string_equal(json_string_value(json_object_get(payload, "alias")),
		                    "bob@example.org");
		json_decref(payload);
	}
	return rc;
}

static void test_valid_answer(void **state)
{
	struct dom d = {0};
	struct err e = {0};
	time_t now = time(NULL);
	char *jws;

	dom_make(&d, "example.com");
	jws = answer(&d, "alice@example.com", now + 600, 0);
	assert_int_equal(check(&d, jws, "alice@example.com", now, &e), 0);
	free(jws);
	dom_free(&d);
}

static void test_expired_mismatch_and_user_signed(void **state)
{
	struct dom d = {0}, other = {0};
	struct err e = {0};
	time_t now = time(NULL);
	char *jws;

	dom_make(&d, "example.com");
	dom_make(&other, "example.com");
	jws = answer(&d, "alice@example.com", now - 1, 0);
	assert_int_equal(check(&d, jws, "alice@example.com", now, &e), -1);
	assert_string_equal(e.code, "route_expired");
	/* The same answer is fine a little earlier: only the expiry refused it. */
	assert_int_equal(check(&d, jws, "alice@example.com", now - 60, &e), 0);
	free(jws);

	jws = answer(&d, "alice@example.com", now + 600, 0);
	assert_int_equal(check(&d, jws, "carol@example.com", now, &e), -1);
	assert_string_equal(e.code, "route_mismatch");
	/* Another root (same domain name) is not the pinned one. */
	assert_int_equal(check(&other, jws, "alice@example.com", now, &e), -1);
	assert_string_equal(e.code, "route_unverified");
	free(jws);

	/* A user's certificate chains to the pinned root too, but does not speak for routes. */
	jws = answer(&d, "alice@example.com", now + 600, 1);
	assert_int_equal(check(&d, jws, "alice@example.com", now, &e), -1);
	assert_string_equal(e.code, "route_unverified");
	free(jws);
	dom_free(&d);
	dom_free(&other);
}

static void test_tampered_payload(void **state)
{
	struct dom d = {0};
	struct err e = {0};
	time_t now = time(NULL);
	const char *forged = "{\"type\":\"anchor-route\",\"name\":\"alice@example.com\","
	                     "\"alias\":\"eve@example.net\",\"expires\":\"2099-01-01T00:00:00Z\"}";
	char *jws = NULL, *evil = NULL, *enc;
	json_t *doc;

	dom_make(&d, "example.com");
	jws = answer(&d, "alice@example.com", now + 600, 0);
	doc = json_loads(jws, 0, NULL);
	enc = crypto_b64url_encode(forged, strlen(forged));
	json_object_set_new(doc, "payload", json_string(enc));
	evil = json_dumps(doc, JSON_COMPACT);
	assert_int_equal(check(&d, evil, "alice@example.com", now, &e), -1);
	assert_string_equal(e.code, "route_unverified");
	free(enc);
	free(evil);
	json_decref(doc);
	free(jws);
	dom_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_answer),
	    cmocka_unit_test(test_expired_mismatch_and_user_signed),
	    cmocka_unit_test(test_tampered_payload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
