/* test_jwk.c - JSON Web Keys (lib/pki/jwk.c) and signatures by a key given apart from x5c
 * (jws_verify_input), as ACME accounts use them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "pki/crypto.h"
#include "pki/jwk.h"
#include "pki/jws.h"

/* RFC 7638 §3.1: the example RSA key and its thumbprint. */
static const char rfc7638_jwk[] =
    "{\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86"
    "zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_"
    "RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91"
    "CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
    "kEgU8awapJzKnqDKgw\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}";

static void test_rfc7638_thumbprint(void **state)
{
	(void)state;
	json_t *jwk = json_loads(rfc7638_jwk, 0, NULL);
	char thumb[JWK_THUMBPRINT_LEN];
	struct err e = {0};
	EVP_PKEY *key;

	assert_non_null(jwk);
	assert_int_equal(jwk_thumbprint(jwk, thumb, &e), 0);
	assert_string_equal(thumb, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	key = jwk_to_key(jwk, &e);
	assert_non_null(key);
	assert_int_equal(EVP_PKEY_get_bits(key), 2048);
	EVP_PKEY_free(key);
	json_decref(jwk);
}

static void test_bad_jwks_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "{}", "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AAAA\",\"y\":\"AAAA\"}",
	    /* 32 zero bytes: not a point on P-256 */
	    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":"
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	    "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}",
	    "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":"
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	    "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", /* a 3-byte modulus */
	    "{\"kty\":\"oct\",\"k\":\"AAAA\"}", NULL};
	struct err e = {0};

	for (int i = 0; bad[i] != NULL; i++) {
		json_t *jwk = json_loads(bad[i], 0, NULL);
		assert_non_null(jwk);
		err_clear(&e);
		assert_null(jwk_to_key(jwk, &e));
		assert_string_equal(e.code, "bad_jwk");
		json_decref(jwk);
	}
}

/* A key's JWK, by hand from its raw public parts: what an ACME client sends. */
static json_t *ec_jwk(EVP_PKEY *key)
{
	uint8_t pub[65];
	size_t len = 0;
	char *x, *y;
	json_t *j;

	assert_int_equal(EVP_PKEY_get_octet_string_param(key, "pub", pub, sizeof(pub), &len), 1);
	assert_int_equal(len, 65);
	x = crypto_b64url_encode(pub + 1, 32);
	y = crypto_b64url_encode(pub + 33, 32);
	j = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", x, "y", y);
	free(x);
	free(y);
	return j;
}

static void test_signature_by_jwk_key(void **state)
{
	(void)state;
	struct err e = {0};
	EVP_PKEY *key = crypto_key_generate(KEY_P256, 0, &e), *pub;
	json_t *jwk = ec_jwk(key);
	const char *in = "eyJhbGciOiJFUzI1NiJ9.e30";
	size_t siglen = 0;
	unsigned char *sig = jws_sign_input(key, in, &siglen, &e);
	char *b64 = crypto_b64url_encode(sig, siglen);

	pub = jwk_to_key(jwk, &e);
	assert_non_null(pub);
	assert_int_equal(jws_verify_input(pub, "ES256", in, b64, &e), 0);
	/* Another alg than the key's, another input, a short signature: refused. */
	assert_int_equal(jws_verify_input(pub, "RS256", in, b64, &e), -1);
	assert_int_equal(jws_verify_input(pub, "ES256", "eyJhbGciOiJFUzI1NiJ9.e31", b64, &e), -1);
	b64[10] = '\0'; /* 7 bytes: the raw-to-DER conversion must not read 64 */
	assert_int_equal(jws_verify_input(pub, "ES256", in, b64, &e), -1);
	assert_string_equal(e.code, "jws_signature");
	free(b64);
	free(sig);
	json_decref(jwk);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc7638_thumbprint),
	    cmocka_unit_test(test_bad_jwks_refused),
	    cmocka_unit_test(test_signature_by_jwk_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
