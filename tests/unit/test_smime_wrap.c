/*
 * test_smime_wrap.c - lib/mail/smime_wrap: a group key wrapped to a member's
 * certificates and unwrapped by each of them (RSA and P-256), the shape check the key
 * server makes, and every refusal with its code: not for this certificate, a wrong
 * key, a garbled or truncated wrap, a clear key or another CMS type uploaded as a wrap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "mail/smime_wrap.h"
#include "pki/crypto.h"
#include "smime_test_ca.h"

static struct who user(int rsa, const char *email)
{
	static int serial = 10;
	struct who w;

	w.key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	assert_non_null(w.key);
	w.cert = make_cert(w.key, email, rsa ? "keyEncipherment" : "keyAgreement", serial++);
	return w;
}

static char *wrap_to(EVP_PKEY *group, X509 *a, X509 *b)
{
	STACK_OF(X509) *s = sk_X509_new_null();
	struct err e = {0};
	char *w;

	sk_X509_push(s, a);
	if (b != NULL)
		sk_X509_push(s, b);
	w = smime_wrap_key(group, s, &e);
	assert_non_null(w);
	sk_X509_free(s);
	return w;
}

/* Both devices of a member open it and get the group's key back. */
static void test_round_trip(void **state)
{
	struct who laptop = user(0, "m@example.com"), phone = user(1, "m@example.com");
	EVP_PKEY *group = EVP_EC_gen("P-256");
	struct who *devs[2] = {&laptop, &phone};
	char *w = wrap_to(group, laptop.cert, phone.cert);
	struct err e = {0};

	(void)state;
	assert_int_equal(smime_wrap_check(w, strlen(w), &e), 0);
	for (int i = 0; i < 2; i++) {
		EVP_PKEY *k = smime_unwrap_key(w, strlen(w), devs[i]->key, devs[i]->cert, &e);
		assert_non_null(k);
		assert_int_equal(EVP_PKEY_eq(k, group), 1);
		EVP_PKEY_free(k);
	}
	free(w);
	EVP_PKEY_free(group);
	who_free(&laptop);
	who_free(&phone);
}

/* Another member's certificate cannot open it; a key not the certificate's is refused. */
static void test_not_for_you(void **state)
{
	struct who a = user(0, "a@example.com"), b = user(0, "b@example.com");
	EVP_PKEY *group = EVP_RSA_gen(2048);
	char *w = wrap_to(group, a.cert, NULL);
	struct err e = {0};

	(void)state;
	assert_null(smime_unwrap_key(w, strlen(w), b.key, b.cert, &e));
	assert_string_equal(e.code, "not_for_you");
	memset(&e, 0, sizeof(e));
	assert_null(smime_unwrap_key(w, strlen(w), b.key, a.cert, &e));
	assert_string_equal(e.code, "key_mismatch");
	free(w);
	EVP_PKEY_free(group);
	who_free(&a);
	who_free(&b);
}

static void refused(const char *text, size_t len, const char *code)
{
	struct who a = user(0, "a@example.com");
	struct err e = {0};

	assert_int_equal(smime_wrap_check(text, len, &e), -1);
	assert_string_equal(e.code, code);
	memset(&e, 0, sizeof(e));
	assert_null(smime_unwrap_key(text, len, a.key, a.cert, &e));
	assert_string_equal(e.code, code);
	who_free(&a);
}

/* Garbled, truncated, trailing bytes, a clear PKCS#8 key, signed-data: bad_wrap. */
static void test_bad_wraps(void **state)
{
	struct who a = user(0, "a@example.com");
	EVP_PKEY *group = EVP_EC_gen("P-256");
	char *w = wrap_to(group, a.cert, NULL), *p8_b64, *trail;
	unsigned char *p8 = NULL, *der, *longer;
	size_t dlen;
	int n;

	(void)state;
	refused("", 0, "bad_wrap");
	refused("not base64 at all!", 18, "bad_wrap");
	refused(w, strlen(w) / 2, "bad_wrap");
	/* the DER with a byte after it */
	der = crypto_b64_decode(w, &dlen);
	assert_non_null(der);
	longer = calloc(1, dlen + 1);
	assert_non_null(longer);
	memcpy(longer, der, dlen);
	trail = crypto_b64_encode(longer, dlen + 1);
	free(longer);
	refused(trail, strlen(trail), "bad_wrap");
	/* a clear key (what must never be uploaded) is no wrap */
	n = i2d_PrivateKey(group, &p8);
	assert_true(n > 0);
	p8_b64 = crypto_b64_encode(p8, (size_t)n);
	refused(p8_b64, strlen(p8_b64), "bad_wrap");
	{
		char big[SMIME_WRAP_MAX + 8];
		memset(big, 'A', sizeof(big));
		refused(big, sizeof(big), "bad_wrap");
	}
	OPENSSL_free(p8);
	free(p8_b64);
	free(trail);
	free(der);
	free(w);
	EVP_PKEY_free(group);
	who_free(&a);
}

/* A ciphertext changed inside: decryption fails, nothing comes out. */
static void test_tampered(void **state)
{
	struct who a = user(1, "a@example.com");
	EVP_PKEY *group = EVP_EC_gen("P-256");
	char *w = wrap_to(group, a.cert, NULL), *w2;
	unsigned char *der;
	size_t dlen;
	struct err e = {0};

	(void)state;
	der = crypto_b64_decode(w, &dlen);
	assert_non_null(der);
	der[dlen - 5] ^= 0x40; /* inside the encrypted content at the end */
	w2 = crypto_b64_encode(der, dlen);
	assert_null(smime_unwrap_key(w2, strlen(w2), a.key, a.cert, &e));
	assert_true(strcmp(e.code, "decrypt_failed") == 0 || strcmp(e.code, "bad_key") == 0);
	free(w2);
	free(der);
	free(w);
	EVP_PKEY_free(group);
	who_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_not_for_you),
	    cmocka_unit_test(test_bad_wraps),
	    cmocka_unit_test(test_tampered),
	};

	return cmocka_run_group_tests(tests, ca_setup, ca_teardown);
}
