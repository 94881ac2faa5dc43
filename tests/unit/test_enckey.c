/* test_enckey.c - unit tests for lib/pki/enckey.c and cert_can_encrypt (cert.c): which
 * keys may hold an encryption certificate, the key usage such a certificate gets, whether
 * a sender may encrypt to a certificate, and the challenge sealed to a key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "pki/cert.h"
#include "pki/crypto.h"
#include "pki/enckey.h"

static EVP_PKEY *root_key, *issuer_key, *x_key, *p_key, *r_key, *ed_key;
static X509 *root, *issuer;

static int group_setup(void **state)
{
	struct err e = {0};

	root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	issuer_key = crypto_key_generate(KEY_P256, 0, &e);
	root = root_key ? cert_make_root(root_key, "example.com", 30, &e) : NULL;
	issuer = root ? cert_make_issuer(issuer_key, root, root_key, "example.com", 30, &e) : NULL;
	x_key = enckey_generate(ENCKEY_X25519, 0, &e);
	p_key = enckey_generate(ENCKEY_P256, 0, &e);
	r_key = enckey_generate(ENCKEY_RSA, 2048, &e);
	ed_key = crypto_key_generate(KEY_ED25519, 0, &e);
	return issuer && x_key && p_key && r_key && ed_key ? 0 : -1;
}

static int group_teardown(void **state)
{
	EVP_PKEY *k[] = {root_key, issuer_key, x_key, p_key, r_key, ed_key};

	for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
		EVP_PKEY_free(k[i]);
	X509_free(root);
	X509_free(issuer);
	return 0;
}

static X509 *issue(enum cert_purpose purpose, EVP_PKEY *key, struct err *e)
{
	char id[CRYPTO_UUID_LEN];
	struct cert_issue req = {.purpose = purpose, .name = "alice@example.com", .days = 30};

	assert_int_equal(crypto_uuid_v4(id, e), 0);
	req.key_id = id;
	return cert_issue_leaf(&req, key, issuer, issuer_key, e);
}

static void test_encryption_leaf_usage(void **state)
{
	struct err e = {0};
	X509 *x = issue(CERT_PURPOSE_ENCRYPTION, x_key, &e);
	X509 *r = issue(CERT_PURPOSE_ENCRYPTION, r_key, &e);

	assert_non_null(x);
	assert_non_null(r);
	/* Encryption only: no digitalSignature beside the encrypting usage. */
	assert_int_equal(X509_get_key_usage(x), KU_KEY_AGREEMENT);
	assert_int_equal(X509_get_key_usage(r), KU_KEY_ENCIPHERMENT);
	assert_int_equal(cert_verify_chain(x, issuer, root, &e), 0);
	assert_int_equal(cert_can_encrypt(x), 1);
	assert_int_equal(cert_can_encrypt(r), 1);
	X509_free(x);
	X509_free(r);
	/* An Ed25519 key and a short RSA key hold no encryption certificate. */
	assert_null(issue(CERT_PURPOSE_ENCRYPTION, ed_key, &e));
	assert_string_equal(e.code, "weak_key");
}

static void test_can_encrypt(void **state)
{
	struct err e = {0};
	X509 *ed = issue(CERT_PURPOSE_SMIME, ed_key, &e), *p = issue(CERT_PURPOSE_SMIME, p_key, &e);
	X509 *rs = issue(CERT_PURPOSE_SMIME, r_key, &e);
	char *pem = ed ? cert_to_pem(ed, &e) : NULL;

	assert_non_null(pem);
	/* The bug that made this: an Ed25519 smime certificate offered for encryption. */
	assert_int_equal(cert_can_encrypt(ed), 0);
	assert_int_equal(cert_pem_can_encrypt(pem), 0);
	assert_int_equal(cert_can_encrypt(p), 1);  /* digitalSignature + keyAgreement */
	assert_int_equal(cert_can_encrypt(rs), 1); /* digitalSignature + keyEncipherment */
	assert_int_equal(cert_can_encrypt(NULL), 0);
	assert_int_equal(cert_pem_can_encrypt("not a certificate"), 0);
	assert_int_equal(cert_can_encrypt(root), 0); /* keyCertSign, cRLSign */
	free(pem);
	X509_free(ed);
	X509_free(p);
	X509_free(rs);
}

static void test_challenge_round_trip(void **state)
{
	EVP_PKEY *keys[] = {x_key, p_key, r_key};
	uint8_t nonce[ENCKEY_NONCE_LEN], out[64];
	struct err e = {0};

	for (size_t i = 0; i < sizeof(nonce); i++)
		nonce[i] = (uint8_t)(i * 7);
	for (size_t k = 0; k < 3; k++) {
		char *env = enckey_challenge_seal(keys[k], nonce, sizeof(nonce), &e);
		size_t n = 0;

		assert_non_null(env);
		assert_int_equal(
		    enckey_challenge_open(keys[k], env, strlen(env), out, sizeof(out), &n, &e), 0);
		assert_int_equal(n, sizeof(nonce));
		assert_memory_equal(out, nonce, sizeof(nonce));
		/* Another key of each kind opens nothing. */
		assert_int_equal(enckey_challenge_open(keys[(k + 1) % 3], env, strlen(env), out,
		                                       sizeof(out), &n, &e),
		                 -1);
		assert_string_equal(e.code, "bad_challenge");
		free(env);
	}
	assert_int_equal(enckey_challenge_open(x_key, "{}", 2, out, sizeof(out), &(size_t){0}, &e),
	                 -1);
	assert_null(enckey_challenge_seal(ed_key, nonce, sizeof(nonce), &e));
	assert_string_equal(e.code, "weak_key");
}

static void test_allowed_keys(void **state)
{
	struct err e = {0};
	enum enckey_alg alg;
	int bits = 0;
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);

	assert_int_equal(enckey_check_allowed(x_key, &e), 0);
	assert_int_equal(enckey_check_allowed(p_key, &e), 0);
	assert_int_equal(enckey_check_allowed(r_key, &e), 0);
	assert_int_equal(enckey_check_allowed(small, &e), -1);
	assert_string_equal(e.code, "weak_key");
	assert_int_equal(enckey_check_allowed(ed_key, &e), -1);
	assert_int_equal(enckey_alg_parse("rsa", &alg, &bits, &e), 0);
	assert_int_equal(bits, 3072);
	assert_int_equal(enckey_alg_parse("ed25519", &alg, &bits, &e), -1);
	assert_string_equal(crypto_key_alg_name(x_key), "x25519");
	EVP_PKEY_free(small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encryption_leaf_usage),
	    cmocka_unit_test(test_can_encrypt),
	    cmocka_unit_test(test_challenge_round_trip),
	    cmocka_unit_test(test_allowed_keys),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
