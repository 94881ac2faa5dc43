/* test_crypto.c - unit tests for lib/pki/crypto.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "pki/crypto.h"

static void test_alg_parse(void **state)
{
	static const struct {
		const char *name;
		enum key_alg alg;
		int bits;
	} good[] = {
	    {"ed25519", KEY_ED25519, 0}, {"p256", KEY_P256, 0},      {"ecdsa-p256", KEY_P256, 0},
	    {"rsa", KEY_RSA, 2048},      {"rsa2048", KEY_RSA, 2048}, {"rsa3072", KEY_RSA, 3072},
	    {"rsa4096", KEY_RSA, 4096},
	};
	static const char *const bad[] = {"", "ED25519", "rsa1024", "p384", "dsa", "rsa 2048"};
	struct err e;
	enum key_alg alg;
	int bits;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		bits = -1;
		assert_int_equal(crypto_alg_parse(good[i].name, &alg, &bits, &e), 0);
		assert_int_equal(alg, good[i].alg);
		assert_int_equal(bits, good[i].bits);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		assert_int_equal(crypto_alg_parse(bad[i], &alg, &bits, &e), -1);
		assert_int_equal(e.kind, ERR_INPUT);
	}
}

static void check_generated(enum key_alg alg, int bits, const char *name)
{
	struct err e;
	EVP_PKEY *key;

	err_clear(&e);
	key = crypto_key_generate(alg, bits, &e);
	assert_non_null(key);
	assert_string_equal(crypto_key_alg_name(key), name);
	assert_int_equal(crypto_key_check_allowed(key, &e), 0);
	if (alg == KEY_RSA)
		assert_int_equal(EVP_PKEY_get_bits(key), bits);
	EVP_PKEY_free(key);
}

static void test_keygen(void **state)
{
	check_generated(KEY_ED25519, 0, "ed25519");
	check_generated(KEY_P256, 0, "p256");
	check_generated(KEY_RSA, 2048, "rsa");
}

static void test_weak_keys_refused(void **state)
{
	struct err e;
	EVP_PKEY *key;

	err_clear(&e);
	assert_null(crypto_key_generate(KEY_RSA, 1024, &e));
	assert_string_equal(e.code, "weak_key");

	key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	assert_non_null(key);
	err_clear(&e);
	assert_int_equal(crypto_key_check_allowed(key, &e), -1);
	assert_int_equal(e.kind, ERR_UNPROC);
	assert_string_equal(e.code, "weak_key");
	assert_non_null(strstr(e.msg, "at least 2048 bits; this one has 1024"));
	EVP_PKEY_free(key);

	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	assert_non_null(key);
	err_clear(&e);
	assert_int_equal(crypto_key_check_allowed(key, &e), -1);
	assert_string_equal(e.code, "weak_key");
	assert_non_null(strstr(e.msg, "P-256"));
	assert_string_equal(crypto_key_alg_name(key), "ec");
	EVP_PKEY_free(key);

	key = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
	assert_non_null(key);
	err_clear(&e);
	assert_int_equal(crypto_key_check_allowed(key, &e), -1);
	assert_string_equal(e.code, "weak_key");
	EVP_PKEY_free(key);
}

/* The pin computed the long way, independently of crypto_key_pin. */
static void pin_by_hand(EVP_PKEY *key, char out[CRYPTO_PIN_MAX])
{
	unsigned char *der = NULL, digest[SHA256_DIGEST_LENGTH];
	int len = i2d_PUBKEY(key, &der);

	assert_true(len > 0);
	SHA256(der, (size_t)len, digest);
	OPENSSL_free(der);
	strcpy(out, "sha256:");
	EVP_EncodeBlock((unsigned char *)out + 7, digest, sizeof(digest));
}

static void test_pin(void **state)
{
	char pin[CRYPTO_PIN_MAX], again[CRYPTO_PIN_MAX], ref[CRYPTO_PIN_MAX];
	EVP_PKEY *key, *other, *pub;
	struct err e;
	char *pem;
	BIO *bio;

	key = crypto_key_generate(KEY_ED25519, 0, &e);
	other = crypto_key_generate(KEY_P256, 0, &e);
	assert_non_null(key);
	assert_non_null(other);

	assert_int_equal(crypto_key_pin(key, pin, &e), 0);
	assert_int_equal(strlen(pin), 7 + 44);
	assert_memory_equal(pin, "sha256:", 7);
	assert_int_equal(pin[50], '=');
	pin_by_hand(key, ref);
	assert_string_equal(pin, ref);
	assert_int_equal(crypto_key_pin(key, again, &e), 0);
	assert_string_equal(pin, again);

	/* The public half alone pins the same. */
	pem = crypto_key_public_to_pem(key, &e);
	assert_non_null(pem);
	assert_non_null(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
	bio = BIO_new_mem_buf(pem, -1);
	pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	free(pem);
	assert_non_null(pub);
	assert_int_equal(crypto_key_pin(pub, again, &e), 0);
	assert_string_equal(pin, again);
	assert_true(crypto_key_matches(key, pub));
	assert_true(crypto_key_matches(pub, key));

	assert_int_equal(crypto_key_pin(other, again, &e), 0);
	assert_string_not_equal(pin, again);
	assert_false(crypto_key_matches(key, other));
	assert_false(crypto_key_matches(key, NULL));

	EVP_PKEY_free(pub);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void test_sha256_hex(void **state)
{
	char hex[CRYPTO_HEX256_LEN];
	const uint8_t bytes[] = {0x00, 0x0f, 0xa5, 0xff};
	char small[9];

	crypto_sha256_hex("abc", 3, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	crypto_sha256_hex("", 0, hex);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	crypto_hex(bytes, sizeof(bytes), small);
	assert_string_equal(small, "000fa5ff");
	crypto_token_hash("abc", hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_b64_vectors(void **state)
{
	static const char *const vec[][2] = {
	    {"", ""},
	    {"f", "Zg=="},
	    {"fo", "Zm8="},
	    {"foo", "Zm9v"},
	    {"foob", "Zm9vYg=="},
	    {"fooba", "Zm9vYmE="},
	    {"foobar", "Zm9vYmFy"},
	};
	const uint8_t odd[] = {0xfb, 0xff};
	uint8_t *dec;
	size_t i, n;
	char *enc;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		enc = crypto_b64_encode(vec[i][0], strlen(vec[i][0]));
		assert_non_null(enc);
		assert_string_equal(enc, vec[i][1]);
		free(enc);
		n = 99;
		dec = crypto_b64_decode(vec[i][1], &n);
		assert_non_null(dec);
		assert_int_equal(n, strlen(vec[i][0]));
		assert_memory_equal(dec, vec[i][0], n);
		free(dec);
	}
	enc = crypto_b64_encode(odd, sizeof(odd));
	assert_string_equal(enc, "+/8=");
	free(enc);
	enc = crypto_b64url_encode(odd, sizeof(odd));
	assert_string_equal(enc, "-_8");
	dec = crypto_b64url_decode(enc, &n);
	assert_non_null(dec);
	assert_int_equal(n, 2);
	assert_memory_equal(dec, odd, 2);
	free(dec);
	free(enc);
}

static void test_b64_round_trip(void **state)
{
	uint8_t buf[70], *dec;
	struct err e;
	size_t len, n;
	char *enc;

	assert_int_equal(crypto_random_bytes(buf, sizeof(buf), &e), 0);
	for (len = 0; len <= sizeof(buf); len++) {
		enc = crypto_b64_encode(buf, len);
		assert_non_null(enc);
		assert_int_equal(strlen(enc), 4 * ((len + 2) / 3));
		dec = crypto_b64_decode(enc, &n);
		assert_non_null(dec);
		assert_int_equal(n, len);
		assert_memory_equal(dec, buf, len);
		free(dec);
		free(enc);

		enc = crypto_b64url_encode(buf, len);
		assert_non_null(enc);
		assert_null(strpbrk(enc, "+/="));
		assert_int_equal(strlen(enc), (len * 4 + 2) / 3);
		dec = crypto_b64url_decode(enc, &n);
		assert_non_null(dec);
		assert_int_equal(n, len);
		assert_memory_equal(dec, buf, len);
		free(dec);
		free(enc);
	}
}

static void test_b64_malformed(void **state)
{
	static const char *const bad[] = {
	    "Zg=",      /* length not a multiple of 4 */
	    "Zg=a",     /* data after padding */
	    "Z===",     /* too much padding */
	    "====",     /* only padding */
	    "Zh==",     /* non-zero bits under the padding */
	    "Zm9=",     /* same, one '=' */
	    "Zm9v!A==", /* not in the alphabet */
	    "Zm 9v",    /* whitespace */
	    "Zm9v\n",   /* newline */
	    "-_8=",     /* url alphabet in standard base64 */
	    "Zm9vY",    /* truncated */
	};
	static const char *const bad_url[] = {
	    "Zg==",               /* padding */
	    "+/8",                /* standard alphabet */
	    "Z",                  /* impossible length */
	    "Zm9vY", "a b", "Zh", /* non-zero trailing bits */
	};
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_null(crypto_b64_decode(bad[i], &n));
	for (i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++)
		assert_null(crypto_b64url_decode(bad_url[i], &n));
	assert_null(crypto_b64_decode(NULL, &n));
}

static int is_hex_lower(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void test_uuid(void **state)
{
	char a[CRYPTO_UUID_LEN], b[CRYPTO_UUID_LEN];
	struct err e;
	size_t i;

	assert_int_equal(crypto_uuid_v4(a, &e), 0);
	assert_int_equal(crypto_uuid_v4(b, &e), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(strlen(a), 36);
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(a[i], '-');
		else
			assert_true(is_hex_lower(a[i]));
	}
	assert_int_equal(a[14], '4');
	assert_non_null(strchr("89ab", a[19]));
}

static void test_token(void **state)
{
	char t1[CRYPTO_TOKEN_LEN], t2[CRYPTO_TOKEN_LEN], h[CRYPTO_HEX256_LEN],
	    h2[CRYPTO_HEX256_LEN];
	struct err e;
	uint8_t *raw;
	size_t n;

	assert_int_equal(crypto_random_token(t1, &e), 0);
	assert_int_equal(crypto_random_token(t2, &e), 0);
	assert_int_equal(strlen(t1), 43);
	assert_string_not_equal(t1, t2);
	assert_int_equal(
	    strspn(t1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
	raw = crypto_b64url_decode(t1, &n);
	assert_non_null(raw);
	assert_int_equal(n, 32);
	free(raw);

	crypto_token_hash(t1, h);
	crypto_sha256_hex(t1, strlen(t1), h2);
	assert_string_equal(h, h2);
	crypto_token_hash(t2, h2);
	assert_string_not_equal(h, h2);
}

static void test_ct_equal(void **state)
{
	assert_true(crypto_ct_equal("abcdef", "abcdef", 6));
	assert_false(crypto_ct_equal("abcdef", "abcdeg", 6));
	assert_true(crypto_ct_equal("x", "y", 0));
}

static void test_write_private(void **state)
{
	char dir[] = "/tmp/anchor-test-crypto-XXXXXX";
	char path[128], *pem;
	EVP_PKEY *key, *other, *back;
	struct stat st;
	struct err e;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/issuer.key", dir);
	key = crypto_key_generate(KEY_ED25519, 0, &e);
	other = crypto_key_generate(KEY_ED25519, 0, &e);
	assert_non_null(key);
	assert_non_null(other);

	assert_int_equal(crypto_key_write_private(path, key, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	back = crypto_key_read_private(path, &e);
	assert_non_null(back);
	assert_true(crypto_key_matches(back, key));
	EVP_PKEY_free(back);

	/* Refuses to overwrite, and leaves the existing key alone. */
	err_clear(&e);
	assert_int_equal(crypto_key_write_private(path, other, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_string_equal(e.code, "exists");
	back = crypto_key_read_private(path, &e);
	assert_non_null(back);
	assert_true(crypto_key_matches(back, key));
	EVP_PKEY_free(back);

	pem = crypto_key_private_to_pem(key, &e);
	assert_non_null(pem);
	assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
	back = crypto_key_private_from_pem(pem, strlen(pem), &e);
	assert_non_null(back);
	assert_true(crypto_key_matches(back, key));
	EVP_PKEY_free(back);
	free(pem);

	unlink(path);
	err_clear(&e);
	assert_null(crypto_key_read_private(path, &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	rmdir(dir);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void test_private_from_pem_rejects(void **state)
{
	static const char garbage[] =
	    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
	EVP_PKEY *key;
	struct err e;
	BIO *bio;
	char *data;
	long len;

	err_clear(&e);
	assert_null(crypto_key_private_from_pem(garbage, strlen(garbage), &e));
	assert_int_equal(e.kind, ERR_INPUT);
	assert_null(crypto_key_private_from_pem("", 0, &e));

	/* An encrypted key is refused, never prompted for. */
	key = crypto_key_generate(KEY_ED25519, 0, &e);
	assert_non_null(key);
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(
	    PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_128_cbc(), "secret", 6, NULL, NULL), 1);
	len = BIO_get_mem_data(bio, &data);
	err_clear(&e);
	assert_null(crypto_key_private_from_pem(data, (size_t)len, &e));
	assert_int_equal(e.kind, ERR_INPUT);
	BIO_free(bio);
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alg_parse),
	    cmocka_unit_test(test_keygen),
	    cmocka_unit_test(test_weak_keys_refused),
	    cmocka_unit_test(test_pin),
	    cmocka_unit_test(test_sha256_hex),
	    cmocka_unit_test(test_b64_vectors),
	    cmocka_unit_test(test_b64_round_trip),
	    cmocka_unit_test(test_b64_malformed),
	    cmocka_unit_test(test_uuid),
	    cmocka_unit_test(test_token),
	    cmocka_unit_test(test_ct_equal),
	    cmocka_unit_test(test_write_private),
	    cmocka_unit_test(test_private_from_pem_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
