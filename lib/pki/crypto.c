/* crypto.c - small helpers over OpenSSL: keys, hashes, encodings, tokens; see crypto.h. */
#include "pki/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define KEY_FILE_MAX (64 * 1024)
#define RSA_MAX_BITS 16384

/* ---- algorithms ---- */

int crypto_alg_parse(const char *name, enum key_alg *alg, int *rsa_bits, struct err *e)
{
	static const struct {
		const char *name;
		enum key_alg alg;
		int bits;
	} table[] = {
	    {"ed25519", KEY_ED25519, 0}, {"p256", KEY_P256, 0},      {"ecdsa-p256", KEY_P256, 0},
	    {"rsa", KEY_RSA, 2048},      {"rsa2048", KEY_RSA, 2048}, {"rsa3072", KEY_RSA, 3072},
	    {"rsa4096", KEY_RSA, 4096},
	};
	size_t i;

	for (i = 0; name != NULL && i < sizeof(table) / sizeof(table[0]); i++) {
		if (strcmp(name, table[i].name) == 0) {
			*alg = table[i].alg;
			if (rsa_bits != NULL)
				*rsa_bits = table[i].bits;
			return 0;
		}
	}
	return err_set(e, ERR_INPUT, "bad_request",
	               "unknown key algorithm \"%.40s\"; use ed25519, p256, rsa2048, rsa3072 or "
	               "rsa4096",
	               name ? name : "");
}

/* The curve of an EC key as OpenSSL names it ("prime256v1"), or "" when unknown. */
static void ec_curve_name(const EVP_PKEY *key, char *buf, size_t size)
{
	size_t len = 0;

	if (EVP_PKEY_get_group_name(key, buf, size, &len) != 1)
		buf[0] = '\0';
}

static int ec_is_p256(const EVP_PKEY *key)
{
	char curve[64];

	ec_curve_name(key, curve, sizeof(curve));
	return strcmp(curve, SN_X9_62_prime256v1) == 0 || strcmp(curve, "P-256") == 0;
}

const char *crypto_key_alg_name(const EVP_PKEY *key)
{
	if (key == NULL)
		return "none";
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_ED25519:
		return "ed25519";
	case EVP_PKEY_ED448:
		return "ed448";
	case EVP_PKEY_X25519:
		return "x25519";
	case EVP_PKEY_EC:
		return ec_is_p256(key) ? "p256" : "ec";
	case EVP_PKEY_RSA:
		return "rsa";
	case EVP_PKEY_RSA_PSS:
		return "rsa-pss";
	case EVP_PKEY_DSA:
		return "dsa";
	default:
		return "unknown";
	}
}

EVP_PKEY *crypto_key_generate(enum key_alg alg, int rsa_bits, struct err *e)
{
	EVP_PKEY *key = NULL;

	switch (alg) {
	case KEY_ED25519:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	case KEY_P256:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case KEY_RSA:
		if (rsa_bits < CRYPTO_RSA_MIN_BITS || rsa_bits > RSA_MAX_BITS) {
			err_set(e, ERR_UNPROC, "weak_key",
			        "RSA keys must have %d to %d bits, not %d", CRYPTO_RSA_MIN_BITS,
			        RSA_MAX_BITS, rsa_bits);
			return NULL;
		}
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)rsa_bits);
		break;
	default:
		err_set(e, ERR_INTERNAL, "internal", "unknown key algorithm %d", (int)alg);
		return NULL;
	}
	if (key == NULL)
		err_set_ssl(e, ERR_INTERNAL, "internal", "key generation failed");
	return key;
}

int crypto_key_check_allowed(const EVP_PKEY *key, struct err *e)
{
	char curve[64];
	int bits;

	if (key == NULL)
		return err_set(e, ERR_INPUT, "bad_request", "no public key");
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_ED25519:
		return 0;
	case EVP_PKEY_EC:
		if (ec_is_p256(key))
			return 0;
		ec_curve_name(key, curve, sizeof(curve));
		return err_set(e, ERR_UNPROC, "weak_key",
		               "ECDSA keys must use the curve P-256; this one uses %s",
		               curve[0] ? curve : "an unnamed curve");
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(key);
		if (bits >= CRYPTO_RSA_MIN_BITS)
			return 0;
		return err_set(e, ERR_UNPROC, "weak_key",
		               "RSA keys must have at least %d bits; this one has %d",
		               CRYPTO_RSA_MIN_BITS, bits);
	default:
		return err_set(e, ERR_UNPROC, "weak_key",
		               "%s keys are not accepted; use Ed25519, ECDSA P-256 or RSA of at "
		               "least %d bits",
		               crypto_key_alg_name(key), CRYPTO_RSA_MIN_BITS);
	}
}

/* ---- PEM ---- */

char *crypto_bio_string(BIO *bio)
{
	char *data = NULL;
	long len;
	char *out;

	len = BIO_get_mem_data(bio, &data);
	if (len < 0)
		return NULL;
	out = malloc((size_t)len + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	return out;
}

/* Never prompt for a pass phrase: an encrypted key is simply refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

EVP_PKEY *crypto_key_private_from_pem(const char *pem, size_t len, struct err *e)
{
	EVP_PKEY *key = NULL;
	BIO *bio;

	if (pem == NULL || len == 0 || len > KEY_FILE_MAX) {
		err_set(e, ERR_INPUT, "bad_request", "the private key is empty or too large");
		return NULL;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio != NULL)
		key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (key == NULL)
		err_set_ssl(e, ERR_INPUT, "bad_request",
		            "cannot parse the private key (expected unencrypted PEM)");
	return key;
}

char *crypto_key_private_to_pem(EVP_PKEY *key, struct err *e)
{
	BIO *bio;
	char *out = NULL;

	/* Secure-heap BIO: the key's PEM is cleansed when the BIO goes. */
	bio = BIO_new(BIO_s_secmem());
	if (bio != NULL && PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1)
		out = crypto_bio_string(bio);
	BIO_free(bio);
	if (out == NULL)
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot encode the private key");
	return out;
}

char *crypto_key_public_to_pem(EVP_PKEY *key, struct err *e)
{
	BIO *bio;
	char *out = NULL;

	bio = BIO_new(BIO_s_mem());
	if (bio != NULL && PEM_write_bio_PUBKEY(bio, key) == 1)
		out = crypto_bio_string(bio);
	BIO_free(bio);
	if (out == NULL)
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot encode the public key");
	return out;
}

/* Wipe and free a malloc'd secret. */
static void forget(char *secret, size_t len)
{
	OPENSSL_cleanse(secret, len);
	free(secret);
}

static int write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int crypto_key_write_private(const char *path, EVP_PKEY *key, struct err *e)
{
	char *pem;
	size_t len;
	int fd, saved;

	pem = crypto_key_private_to_pem(key, e);
	if (pem == NULL)
		return -1;
	len = strlen(pem);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		saved = errno;
		forget(pem, len);
		if (saved == EEXIST)
			return err_set(e, ERR_CONFLICT, "exists",
			               "%s already exists; refusing to overwrite a key", path);
		return err_set(e, ERR_INTERNAL, "io", "cannot create %s: %s", path,
		               strerror(saved));
	}
	if (write_all(fd, pem, len) < 0 || fsync(fd) < 0) {
		saved = errno;
		close(fd);
		unlink(path);
		forget(pem, len);
		return err_set(e, ERR_INTERNAL, "io", "cannot write %s: %s", path, strerror(saved));
	}
	forget(pem, len);
	if (close(fd) < 0) {
		saved = errno;
		unlink(path);
		return err_set(e, ERR_INTERNAL, "io", "cannot write %s: %s", path, strerror(saved));
	}
	return 0;
}

EVP_PKEY *crypto_key_read_private(const char *path, struct err *e)
{
	EVP_PKEY *key = NULL;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int saved = errno;

		err_set(e, saved == ENOENT ? ERR_NOTFOUND : ERR_INTERNAL,
		        saved == ENOENT ? "not_found" : "io", "cannot open %s: %s", path,
		        strerror(saved));
		return NULL;
	}
	buf = OPENSSL_secure_zalloc(KEY_FILE_MAX + 1);
	if (buf == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	for (;;) {
		n = read(fd, buf + len, KEY_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(e, ERR_INTERNAL, "io", "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > KEY_FILE_MAX) {
			err_set(e, ERR_INPUT, "bad_request", "%s is too large to be a key", path);
			goto out;
		}
	}
	key = crypto_key_private_from_pem(buf, len, e);
out:
	OPENSSL_secure_clear_free(buf, KEY_FILE_MAX + 1);
	close(fd);
	return key;
}

/* ---- pins and comparisons ---- */

int crypto_key_pin(const EVP_PKEY *key, char out[CRYPTO_PIN_MAX], struct err *e)
{
	unsigned char *der = NULL;
	uint8_t digest[32];
	int len;

	out[0] = '\0';
	len = key ? i2d_PUBKEY(key, &der) : -1;
	if (len <= 0)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "cannot encode the public key");
	crypto_sha256(der, (size_t)len, digest);
	OPENSSL_free(der);
	memcpy(out, "sha256:", 7);
	EVP_EncodeBlock((unsigned char *)out + 7, digest, sizeof(digest));
	return 0;
}

int crypto_key_matches(const EVP_PKEY *a, const EVP_PKEY *b)
{
	if (a == NULL || b == NULL)
		return 0;
	return EVP_PKEY_eq(a, b) == 1;
}

/* ---- hashes ---- */

static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_fetched;

static void sha256_fetch(void)
{
	sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *crypto_sha256_md(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_fetched != NULL ? sha256_fetched : EVP_sha256();
}

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, crypto_sha256_md(), NULL) != 1 || n != 32)
		memset(out, 0, 32);
}

void crypto_hex(const uint8_t *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_HEX256_LEN])
{
	uint8_t digest[32];

	crypto_sha256(data, len, digest);
	crypto_hex(digest, sizeof(digest), out);
}

/* ---- base64 ---- */

char *crypto_b64_encode(const void *data, size_t len)
{
	char *out;

	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

char *crypto_b64url_encode(const void *data, size_t len)
{
	char *out, *p;

	out = crypto_b64_encode(data, len);
	if (out == NULL)
		return NULL;
	for (p = out; *p != '\0'; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
		else if (*p == '=')
			*p = '\0';
	}
	return out;
}

/* Value of a standard base64 digit, or -1. */
static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Canonical padded base64 only: length a multiple of 4, alphabet digits, at most
 * two '=' and only at the end, and zero bits where padding truncates the last digit
 * (so that every byte string has exactly one accepted encoding).  Returns the
 * number of '=' or -1.
 */
static int b64_check(const char *text, size_t len)
{
	size_t pad = 0, i;
	int last;

	if (len % 4 != 0)
		return -1;
	while (pad < 2 && pad < len && text[len - 1 - pad] == '=')
		pad++;
	for (i = 0; i < len - pad; i++)
		if (b64_value(text[i]) < 0)
			return -1;
	if (pad == 0)
		return 0;
	last = b64_value(text[len - pad - 1]);
	if ((pad == 1 && (last & 0x03) != 0) || (pad == 2 && (last & 0x0f) != 0))
		return -1;
	return (int)pad;
}

uint8_t *crypto_b64_decode(const char *text, size_t *outlen)
{
	uint8_t *out;
	size_t len;
	int pad, n;

	if (text == NULL)
		return NULL;
	len = strlen(text);
	if (len > INT_MAX)
		return NULL;
	pad = b64_check(text, len);
	if (pad < 0)
		return NULL;
	out = malloc(len / 4 * 3 + 1);
	if (out == NULL)
		return NULL;
	n = len ? EVP_DecodeBlock(out, (const unsigned char *)text, (int)len) : 0;
	/* EVP_DecodeBlock counts padding as zero bytes; drop them. */
	if (n < 0 || (size_t)n != len / 4 * 3) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)n - (size_t)pad;
	return out;
}

uint8_t *crypto_b64url_decode(const char *text, size_t *outlen)
{
	uint8_t *out;
	char *std;
	size_t len, i;

	if (text == NULL)
		return NULL;
	len = strlen(text);
	if (len % 4 == 1 || len > INT_MAX - 4)
		return NULL;
	std = malloc(len + 4);
	if (std == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		char c = text[i];

		/* Only the url alphabet: '+', '/' and '=' are malformed here. */
		if (c == '+' || c == '/' || c == '=') {
			free(std);
			return NULL;
		}
		std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	while (i % 4 != 0)
		std[i++] = '=';
	std[i] = '\0';
	out = crypto_b64_decode(std, outlen);
	free(std);
	return out;
}

/* ---- randomness ---- */

int crypto_random_bytes(void *buf, size_t len, struct err *e)
{
	if (len > INT_MAX || RAND_bytes(buf, (int)len) != 1)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "no random bytes available");
	return 0;
}

int crypto_random_token(char out[CRYPTO_TOKEN_LEN], struct err *e)
{
	uint8_t raw[32];
	char *text;

	if (crypto_random_bytes(raw, sizeof(raw), e) < 0)
		return -1;
	text = crypto_b64url_encode(raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	if (text == NULL || strlen(text) != CRYPTO_TOKEN_LEN - 1) {
		free(text);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	memcpy(out, text, CRYPTO_TOKEN_LEN);
	forget(text, CRYPTO_TOKEN_LEN);
	return 0;
}

void crypto_token_hash(const char *token, char out[CRYPTO_HEX256_LEN])
{
	crypto_sha256_hex(token, strlen(token), out);
}

int crypto_uuid_v4(char out[CRYPTO_UUID_LEN], struct err *e)
{
	uint8_t b[16];

	if (crypto_random_bytes(b, sizeof(b), e) < 0)
		return -1;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, CRYPTO_UUID_LEN,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
	return 0;
}

int crypto_ct_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}
