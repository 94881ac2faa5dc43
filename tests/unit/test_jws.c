/* test_jws.c - JWS signing and verification against pinned roots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "pki/cert.h"
#include "pki/crypto.h"
#include "pki/jws.h"

struct domain_set {
	EVP_PKEY *root_key, *issuer_key;
	X509 *root, *issuer;
	char pin[CRYPTO_PIN_MAX];
};

static void make_set(struct domain_set *s, enum key_alg alg, const char *domain)
{
	struct err e = {0};

	s->root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	s->issuer_key = crypto_key_generate(alg, 2048, &e);
	assert_non_null(s->root_key);
	assert_non_null(s->issuer_key);
	s->root = cert_make_root(s->root_key, domain, 30, &e);
	assert_non_null(s->root);
	s->issuer = cert_make_issuer(s->issuer_key, s->root, s->root_key, domain, 30, &e);
	assert_non_null(s->issuer);
	assert_int_equal(crypto_key_pin(s->root_key, s->pin, &e), 0);
}

static void free_set(struct domain_set *s)
{
	EVP_PKEY_free(s->root_key);
	EVP_PKEY_free(s->issuer_key);
	X509_free(s->root);
	X509_free(s->issuer);
}

static char *sign_with(struct domain_set *s, const char *payload)
{
	X509 *chain[2] = {s->issuer, s->root};
	struct err e = {0};
	char *jws = jws_sign(payload, strlen(payload), s->issuer_key, chain, 2, "test+json", &e);

	assert_non_null(jws);
	return jws;
}

static void round_trip(enum key_alg alg)
{
	struct domain_set s = {0};
	struct jws_verified v;
	struct err e = {0};
	const char *pins[1];
	char *jws;

	make_set(&s, alg, "example.com");
	pins[0] = s.pin;
	jws = sign_with(&s, "{\"hello\":\"world\"}");
	assert_int_equal(jws_verify(jws, strlen(jws), pins, 1, &v, &e), 0);
	assert_string_equal(v.payload, "{\"hello\":\"world\"}");
	assert_string_equal(v.typ, "test+json");
	assert_int_equal(X509_cmp(v.leaf, s.issuer), 0);
	jws_verified_free(&v);
	free(jws);
	free_set(&s);
}

static void test_ed25519_round_trip(void **state)
{
	round_trip(KEY_ED25519);
}

static void test_es256_round_trip(void **state)
{
	round_trip(KEY_P256);
}

static void test_rs256_round_trip(void **state)
{
	round_trip(KEY_RSA);
}

/* Replace the payload member with another value, keeping the signature. */
static char *swap_payload(const char *jws, const char *new_payload)
{
	json_t *o = json_loads(jws, 0, NULL);
	char *b64 = crypto_b64url_encode(new_payload, strlen(new_payload));
	char *out;

	json_object_set_new(o, "payload", json_string(b64));
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	free(b64);
	return out;
}

static void test_tampered_payload_fails(void **state)
{
	struct domain_set s = {0};
	struct jws_verified v;
	struct err e = {0};
	const char *pins[1];
	char *jws, *bad;

	make_set(&s, KEY_ED25519, "example.com");
	pins[0] = s.pin;
	jws = sign_with(&s, "{\"weight\":10}");
	bad = swap_payload(jws, "{\"weight\":90}");
	assert_int_equal(jws_verify(bad, strlen(bad), pins, 1, &v, &e), -1);
	assert_string_equal(e.code, "jws_signature");
	assert_null(v.payload);
	free(bad);
	free(jws);
	free_set(&s);
}

static void test_wrong_pin_fails(void **state)
{
	struct domain_set a = {0}, b = {0};
	struct jws_verified v;
	struct err e = {0};
	const char *pins[1];
	char *jws;

	make_set(&a, KEY_ED25519, "example.com");
	make_set(&b, KEY_ED25519, "example.com");
	pins[0] = b.pin;
	jws = sign_with(&a, "{}");
	assert_int_equal(jws_verify(jws, strlen(jws), pins, 1, &v, &e), -1);
	assert_string_equal(e.code, "pin_mismatch");
	free(jws);
	free_set(&a);
	free_set(&b);
}

static void test_second_pin_accepted(void **state)
{
	struct domain_set a = {0}, b = {0};
	struct jws_verified v;
	struct err e = {0};
	const char *pins[2];
	char *jws;

	make_set(&a, KEY_ED25519, "example.com");
	make_set(&b, KEY_ED25519, "example.com");
	pins[0] = b.pin; /* rollover: the old and the new root both pinned */
	pins[1] = a.pin;
	jws = sign_with(&a, "{}");
	assert_int_equal(jws_verify(jws, strlen(jws), pins, 2, &v, &e), 0);
	jws_verified_free(&v);
	free(jws);
	free_set(&a);
	free_set(&b);
}

static void test_malformed_rejected(void **state)
{
	static const char *const bad[] = {
	    "",
	    "[]",
	    "{}",
	    "{\"payload\":\"e30\",\"protected\":\"!!!\",\"signature\":\"AA\"}",
	    "{\"payload\":\"e30\",\"protected\":\"e30\",\"signature\":\"AA\"}",
	    /* {"alg":"none","x5c":[]} */
	    "{\"payload\":\"e30\",\"protected\":\"eyJhbGciOiJub25lIiwieDVjIjpbXX0\","
	    "\"signature\":\"\"}",
	    /* {"alg":"EdDSA","x5c":["AAAA"]} */
	    "{\"payload\":\"e30\",\"protected\":\"eyJhbGciOiJFZERTQSIsIng1YyI6WyJBQUFBIl19\","
	    "\"signature\":\"AA\"}",
	};
	const char *pins[1] = {"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct jws_verified v;
		struct err e = {0};

		assert_int_equal(jws_verify(bad[i], strlen(bad[i]), pins, 1, &v, &e), -1);
		assert_string_equal(e.code, "bad_jws");
	}
}

/* An alg header that does not match the key must not verify (algorithm confusion). */
/* Compact "a.b.c" becomes flattened JSON; anything else that is not JSON is bad_jws. */
static void test_flatten(void **state)
{
	static const char *const bad[] = {"",        "a",      "a.b",    "a..c",    ".b.c",  "a.b.",
	                                  "a.b.c.d", "a.b.c ", "a.b+.c", "a.b.c\"", "a.b.c}"};
	struct err e = {0};
	char *out = jws_flatten("eyJh.e30.c2ln", &e);

	(void)state;
	assert_non_null(out);
	assert_string_equal(out,
	                    "{\"protected\":\"eyJh\",\"payload\":\"e30\",\"signature\":\"c2ln\"}");
	free(out);
	out = jws_flatten("{\"protected\":\"x\"}", &e);
	assert_non_null(out);
	assert_string_equal(out, "{\"protected\":\"x\"}");
	free(out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_null(jws_flatten(bad[i], &e));
		assert_string_equal(e.code, "bad_jws");
	}
}

static void test_alg_confusion_rejected(void **state)
{
	struct domain_set s = {0};
	struct jws_verified v;
	struct err e = {0};
	const char *pins[1];
	json_t *o, *hdr;
	char *jws, *bad, *prot_json, *prot_b64;
	size_t len;
	uint8_t *raw;

	make_set(&s, KEY_ED25519, "example.com");
	pins[0] = s.pin;
	jws = sign_with(&s, "{}");
	o = json_loads(jws, 0, NULL);
	raw = crypto_b64url_decode(json_string_value(json_object_get(o, "protected")), &len);
	hdr = json_loadb((const char *)raw, len, 0, NULL);
	json_object_set_new(hdr, "alg", json_string("RS256"));
	prot_json = json_dumps(hdr, JSON_COMPACT);
	prot_b64 = crypto_b64url_encode(prot_json, strlen(prot_json));
	json_object_set_new(o, "protected", json_string(prot_b64));
	bad = json_dumps(o, JSON_COMPACT);
	assert_int_equal(jws_verify(bad, strlen(bad), pins, 1, &v, &e), -1);
	assert_string_equal(e.code, "jws_signature");
	free(raw);
	free(prot_json);
	free(prot_b64);
	free(bad);
	json_decref(hdr);
	json_decref(o);
	free(jws);
	free_set(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ed25519_round_trip),
	    cmocka_unit_test(test_es256_round_trip),
	    cmocka_unit_test(test_rs256_round_trip),
	    cmocka_unit_test(test_tampered_payload_fails),
	    cmocka_unit_test(test_wrong_pin_fails),
	    cmocka_unit_test(test_second_pin_accepted),
	    cmocka_unit_test(test_malformed_rejected),
	    cmocka_unit_test(test_alg_confusion_rejected),
	    cmocka_unit_test(test_flatten),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
