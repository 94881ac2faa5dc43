/*
 * enckey.c - encryption keys and their proof-of-possession challenge (enckey.h).
 */
#include "pki/enckey.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "pki/crypto.h"

#define GCM_IV_LEN 12
#define GCM_TAG_LEN 16
#define ALG_ECDH "ECDH-ES+A256GCM"
#define ALG_RSA "RSA-OAEP-256"
#define ENCKEY_RSA_MAX_BITS 8192

int enckey_alg_parse(const char *name, enum enckey_alg *alg, int *rsa_bits, struct err *e)
{
	static const struct {
		const char *name;
		enum enckey_alg alg;
		int bits;
	} table[] = {
	    {"x25519", ENCKEY_X25519, 0},  {"p256", ENCKEY_P256, 0},
	    {"rsa", ENCKEY_RSA, 3072},     {"rsa2048", ENCKEY_RSA, 2048},
	    {"rsa3072", ENCKEY_RSA, 3072}, {"rsa4096", ENCKEY_RSA, 4096},
	};

	for (size_t i = 0; name != NULL && i < sizeof(table) / sizeof(table[0]); i++) {
		if (strcmp(name, table[i].name) == 0) {
			*alg = table[i].alg;
			*rsa_bits = table[i].bits;
			return 0;
		}
	}
	return err_set(e, ERR_INPUT, "bad_request",
	               "unknown encryption key algorithm \"%.40s\"; use x25519, p256, rsa (3072 "
	               "bits), rsa2048, rsa3072 or rsa4096",
	               name ? name : "");
}

EVP_PKEY *enckey_generate(enum enckey_alg alg, int rsa_bits, struct err *e)
{
	EVP_PKEY *key = NULL;

	if (alg == ENCKEY_X25519)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	else if (alg == ENCKEY_P256)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (rsa_bits >= CRYPTO_RSA_MIN_BITS && rsa_bits <= ENCKEY_RSA_MAX_BITS)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)rsa_bits);
	else {
		err_set(e, ERR_UNPROC, "weak_key", "RSA keys must have %d to %d bits, not %d",
		        CRYPTO_RSA_MIN_BITS, ENCKEY_RSA_MAX_BITS, rsa_bits);
		return NULL;
	}
	if (key == NULL)
		err_set_ssl(e, ERR_INTERNAL, "internal", "key generation failed");
	return key;
}

int enckey_check_allowed(const EVP_PKEY *key, struct err *e)
{
	int bits;

	if (key == NULL)
		return err_set(e, ERR_INPUT, "bad_key", "no public key");
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_X25519:
		return 0;
	case EVP_PKEY_EC:
		/* The signing-key check knows P-256 from the other curves. */
		return crypto_key_check_allowed(key, e);
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(key);
		if (bits >= CRYPTO_RSA_MIN_BITS && bits <= ENCKEY_RSA_MAX_BITS)
			return 0;
		return err_set(e, ERR_UNPROC, "weak_key",
		               "RSA encryption keys must have %d to %d bits; this one has %d",
		               CRYPTO_RSA_MIN_BITS, ENCKEY_RSA_MAX_BITS, bits);
	case EVP_PKEY_ED25519:
		return err_set(e, ERR_UNPROC, "weak_key",
		               "an Ed25519 key signs only and cannot encrypt; use X25519, P-256 "
		               "or RSA of at least %d bits",
		               CRYPTO_RSA_MIN_BITS);
	default:
		return err_set(e, ERR_UNPROC, "weak_key",
		               "%s keys are not accepted for encryption; use X25519, P-256 or RSA "
		               "of at least %d bits",
		               crypto_key_alg_name(key), CRYPTO_RSA_MIN_BITS);
	}
}

EVP_PKEY *enckey_public_from_pem(const char *pem, size_t len, struct err *e)
{
	BIO *bio = len <= INT32_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
	EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	ERR_clear_error();
	if (key == NULL)
		err_set(e, ERR_INPUT, "bad_key",
		        "public_key must be a PEM public key (-----BEGIN PUBLIC KEY-----)");
	return key;
}

/* ---- the challenge ---- */

/* The ECDH secret of priv and peer into out (cap bytes); its length, or -1. */
static int ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *out, size_t cap)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	size_t len = cap;
	int ok = c != NULL && EVP_PKEY_derive_init(c) == 1 &&
	         EVP_PKEY_derive_set_peer(c, peer) == 1 && EVP_PKEY_derive(c, out, &len) == 1;

	EVP_PKEY_CTX_free(c);
	return ok ? (int)len : -1;
}

static int hkdf(const uint8_t *ikm, size_t n, uint8_t key[32])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[4];
	int ok;

	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, n);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)ENCKEY_HKDF_INFO,
	                                         sizeof(ENCKEY_HKDF_INFO) - 1);
	p[3] = OSSL_PARAM_construct_end();
	ok = c != NULL && EVP_KDF_derive(c, key, 32, p) == 1;
	EVP_KDF_CTX_free(c);
	EVP_KDF_free(kdf);
	return ok ? 0 : -1;
}

/* AES-256-GCM one way or the other (enc 1/0); the tag out on encryption, in on decryption. */
static int gcm(int enc, const uint8_t key[32], const uint8_t iv[GCM_IV_LEN], const uint8_t *in,
               size_t n, uint8_t *out, uint8_t tag[GCM_TAG_LEN])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0, fin = 0, ok;

	ok = c != NULL && n <= ENCKEY_ENVELOPE_MAX &&
	     EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv, enc) == 1 &&
	     (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag) == 1) &&
	     EVP_CipherUpdate(c, out, &len, in, (int)n) == 1 &&
	     EVP_CipherFinal_ex(c, out + len, &fin) == 1 &&
	     (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, tag) == 1);
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

static void set_b64(json_t *o, const char *k, const void *data, size_t n)
{
	char *b = crypto_b64url_encode(data, n);

	/* A member missing for want of memory makes an envelope its holder refuses. */
	if (b != NULL)
		json_object_set_new(o, k, json_string(b));
	free(b);
}

static json_t *seal_ecdh(EVP_PKEY *pub, const uint8_t *nonce, size_t len)
{
	EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
	EVP_PKEY *eph = NULL;
	uint8_t secret[80], key[32], iv[GCM_IV_LEN], tag[GCM_TAG_LEN], ct[ENCKEY_NONCE_LEN * 2];
	unsigned char *spki = NULL;
	json_t *o = NULL;
	int n = -1, spki_len = -1;

	if (kc != NULL && EVP_PKEY_keygen_init(kc) == 1 && EVP_PKEY_keygen(kc, &eph) == 1)
		n = ecdh(eph, pub, secret, sizeof(secret));
	if (n > 0 && len <= sizeof(ct) && hkdf(secret, (size_t)n, key) == 0 &&
	    RAND_bytes(iv, sizeof(iv)) == 1 && gcm(1, key, iv, nonce, len, ct, tag) == 0 &&
	    (spki_len = i2d_PUBKEY(eph, &spki)) > 0 && (o = json_object()) != NULL) {
		json_object_set_new(o, "alg", json_string(ALG_ECDH));
		set_b64(o, "epk", spki, (size_t)spki_len);
		set_b64(o, "iv", iv, sizeof(iv));
		set_b64(o, "ct", ct, len);
		set_b64(o, "tag", tag, sizeof(tag));
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_free(spki);
	EVP_PKEY_free(eph);
	EVP_PKEY_CTX_free(kc);
	return o;
}

/* RSAES-OAEP with SHA-256 for both the label hash and MGF1. */
static EVP_PKEY_CTX *oaep_ctx(EVP_PKEY *key, int enc)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);

	if (c == NULL || (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) != 1) {
		EVP_PKEY_CTX_free(c);
		return NULL;
	}
	return c;
}

static json_t *seal_rsa(EVP_PKEY *pub, const uint8_t *nonce, size_t len)
{
	EVP_PKEY_CTX *c = oaep_ctx(pub, 1);
	uint8_t ct[ENCKEY_RSA_MAX_BITS / 8];
	size_t n = sizeof(ct);
	json_t *o = NULL;

	if (c != NULL && EVP_PKEY_encrypt(c, ct, &n, nonce, len) == 1 &&
	    (o = json_object()) != NULL) {
		json_object_set_new(o, "alg", json_string(ALG_RSA));
		set_b64(o, "ct", ct, n);
	}
	EVP_PKEY_CTX_free(c);
	return o;
}

char *enckey_challenge_seal(EVP_PKEY *pub, const uint8_t *nonce, size_t len, struct err *e)
{
	json_t *o = NULL;
	char *text = NULL;

	if (enckey_check_allowed(pub, e) < 0)
		return NULL;
	o = EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA ? seal_rsa(pub, nonce, len)
	                                              : seal_ecdh(pub, nonce, len);
	if (o != NULL)
		text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (text == NULL)
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot encrypt the challenge");
	return text;
}

/* A base64url member of o, decoded, of 1 to max bytes; NULL when absent or otherwise. */
static uint8_t *get_b64(json_t *o, const char *k, size_t max, size_t *n)
{
	const char *v = json_string_value(json_object_get(o, k));
	uint8_t *out =
	    v != NULL && strlen(v) <= ENCKEY_ENVELOPE_MAX ? crypto_b64url_decode(v, n) : NULL;

	if (out != NULL && (*n == 0 || *n > max)) {
		free(out);
		out = NULL;
	}
	return out;
}

static int open_ecdh(EVP_PKEY *priv, json_t *o, uint8_t *out, size_t cap, size_t *len)
{
	size_t n_epk = 0, n_iv = 0, n_ct = 0, n_tag = 0;
	uint8_t *epk_der = get_b64(o, "epk", 1024, &n_epk),
	        *iv = get_b64(o, "iv", GCM_IV_LEN, &n_iv);
	uint8_t *ct = get_b64(o, "ct", cap, &n_ct), *tag = get_b64(o, "tag", GCM_TAG_LEN, &n_tag);
	const unsigned char *p = epk_der;
	EVP_PKEY *epk = epk_der ? d2i_PUBKEY(NULL, &p, (long)n_epk) : NULL;
	uint8_t secret[80], key[32];
	int n = -1, rc = -1;

	/* The ephemeral key must be of the holder's own type (and curve): derive fails else. */
	if (epk != NULL && iv != NULL && ct != NULL && tag != NULL && n_iv == GCM_IV_LEN &&
	    n_tag == GCM_TAG_LEN && EVP_PKEY_get_base_id(epk) == EVP_PKEY_get_base_id(priv))
		n = ecdh(priv, epk, secret, sizeof(secret));
	if (n > 0 && hkdf(secret, (size_t)n, key) == 0 &&
	    gcm(0, key, iv, ct, n_ct, out, tag) == 0) {
		*len = n_ct;
		rc = 0;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(key, sizeof(key));
	EVP_PKEY_free(epk);
	free(epk_der);
	free(iv);
	free(ct);
	free(tag);
	return rc;
}

static int open_rsa(EVP_PKEY *priv, json_t *o, uint8_t *out, size_t cap, size_t *len)
{
	/* OpenSSL wants room for a whole modulus whatever the plaintext's length. */
	uint8_t buf[ENCKEY_RSA_MAX_BITS / 8];
	size_t n_ct = 0, n = sizeof(buf);
	uint8_t *ct = get_b64(o, "ct", ENCKEY_RSA_MAX_BITS / 8, &n_ct);
	EVP_PKEY_CTX *c = ct ? oaep_ctx(priv, 0) : NULL;
	int rc = c != NULL && EVP_PKEY_decrypt(c, buf, &n, ct, n_ct) == 1 && n <= cap ? 0 : -1;

	if (rc == 0) {
		memcpy(out, buf, n);
		*len = n;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	EVP_PKEY_CTX_free(c);
	free(ct);
	return rc;
}

int enckey_challenge_open(EVP_PKEY *priv, const char *envelope, size_t envelope_len, uint8_t *out,
                          size_t cap, size_t *len, struct err *e)
{
	json_t *o = NULL;
	const char *alg;
	int rsa = EVP_PKEY_get_base_id(priv) == EVP_PKEY_RSA, rc = -1;

	if (envelope_len <= ENCKEY_ENVELOPE_MAX)
		o = json_loadb(envelope, envelope_len, JSON_REJECT_DUPLICATES, NULL);
	alg = json_string_value(json_object_get(o, "alg"));
	if (alg == NULL)
		err_set(e, ERR_INPUT, "bad_challenge",
		        "the challenge is not an envelope of this protocol (a JSON object with "
		        "its \"alg\")");
	else if (strcmp(alg, rsa ? ALG_RSA : ALG_ECDH) != 0)
		err_set(e, ERR_INPUT, "bad_challenge",
		        "the challenge is %.40s, which a %s key does not open", alg,
		        crypto_key_alg_name(priv));
	else if ((rsa ? open_rsa(priv, o, out, cap, len) : open_ecdh(priv, o, out, cap, len)) < 0)
		err_set(e, ERR_INPUT, "bad_challenge",
		        "the challenge does not open with this key (made for another key, or "
		        "damaged)");
	else
		rc = 0;
	ERR_clear_error();
	json_decref(o);
	return rc;
}
