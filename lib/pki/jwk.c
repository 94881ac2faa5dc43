/* jwk.c - JSON Web Keys and their thumbprints; see jwk.h. */
#include "pki/jwk.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "pki/crypto.h"

#define JWK_MAX_RSA_BYTES 1024 /* 8192-bit moduli at most: a key is not a memory test */

/* Member name of jwk, base64url-decoded: between min and max bytes, else NULL. */
static uint8_t *member_bytes(const json_t *jwk, const char *name, size_t min, size_t max,
                             size_t *len)
{
	const char *s = json_string_value(json_object_get(jwk, name));
	uint8_t *b;

	if (s == NULL || strlen(s) > 4 * max / 3 + 4)
		return NULL;
	b = crypto_b64url_decode(s, len);
	if (b != NULL && (*len < min || *len > max)) {
		free(b);
		b = NULL;
	}
	return b;
}

static int member_is(const json_t *jwk, const char *name, const char *want)
{
	const char *s = json_string_value(json_object_get(jwk, name));

	return s != NULL && strcmp(s, want) == 0;
}

/* A key from OpenSSL parameters built by the caller. */
static EVP_PKEY *key_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = bld != NULL ? OSSL_PARAM_BLD_to_param(bld) : NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *key = NULL;

	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return key;
}

static EVP_PKEY *ec_key(const json_t *jwk)
{
	size_t xl = 0, yl = 0;
	uint8_t *x = member_bytes(jwk, "x", 32, 32, &xl), *y = member_bytes(jwk, "y", 32, 32, &yl);
	uint8_t point[65];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *key = NULL;

	if (x != NULL && y != NULL && bld != NULL && member_is(jwk, "crv", "P-256")) {
		point[0] = 0x04; /* uncompressed: x || y */
		memcpy(point + 1, x, 32);
		memcpy(point + 33, y, 32);
		if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) &&
		    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
		                                     sizeof(point)))
			key = key_fromdata("EC", bld);
	}
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return key;
}

static EVP_PKEY *rsa_key(const json_t *jwk)
{
	size_t nl = 0, el = 0;
	uint8_t *n = member_bytes(jwk, "n", 256, JWK_MAX_RSA_BYTES, &nl);
	uint8_t *ex = member_bytes(jwk, "e", 1, 8, &el);
	BIGNUM *bn = n ? BN_bin2bn(n, (int)nl, NULL) : NULL,
	       *be = ex ? BN_bin2bn(ex, (int)el, NULL) : NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *key = NULL;

	if (bn != NULL && be != NULL && bld != NULL &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		key = key_fromdata("RSA", bld);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(ex);
	return key;
}

static EVP_PKEY *okp_key(const json_t *jwk)
{
	size_t xl = 0;
	uint8_t *x = member_bytes(jwk, "x", 32, 32, &xl);
	EVP_PKEY *key = NULL;

	if (x != NULL && member_is(jwk, "crv", "Ed25519"))
		key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xl);
	free(x);
	return key;
}

EVP_PKEY *jwk_to_key(const json_t *jwk, struct err *e)
{
	EVP_PKEY *key = NULL;
	struct err why = {0};

	if (member_is(jwk, "kty", "EC"))
		key = ec_key(jwk);
	else if (member_is(jwk, "kty", "RSA"))
		key = rsa_key(jwk);
	else if (member_is(jwk, "kty", "OKP"))
		key = okp_key(jwk);
	if (key == NULL) {
		err_set(e, ERR_INPUT, "bad_jwk",
		        "the JWK is not an EC P-256, RSA or Ed25519 public key in RFC 7518/8037 "
		        "form");
		return NULL;
	}
	if (crypto_key_check_allowed(key, &why) < 0) {
		EVP_PKEY_free(key);
		err_set(e, ERR_INPUT, "bad_jwk", "%s", why.msg);
		return NULL;
	}
	return key;
}

int jwk_thumbprint(const json_t *jwk, char out[JWK_THUMBPRINT_LEN], struct err *e)
{
	static const char *const ec[] = {"crv", "kty", "x", "y", NULL};
	static const char *const rsa[] = {"e", "kty", "n", NULL};
	static const char *const okp[] = {"crv", "kty", "x", NULL};
	const char *const *names = member_is(jwk, "kty", "EC")    ? ec
	                           : member_is(jwk, "kty", "RSA") ? rsa
	                           : member_is(jwk, "kty", "OKP") ? okp
	                                                          : NULL;
	json_t *req = json_object();
	char *text = NULL, *b64 = NULL;
	uint8_t md[32];
	int rc = -1;

	for (int i = 0; names != NULL && req != NULL && names[i] != NULL; i++) {
		json_t *v = json_object_get(jwk, names[i]);
		if (!json_is_string(v))
			goto out;
		json_object_set(req, names[i], v);
	}
	/* RFC 7638 §3: the required members only, sorted, without whitespace. */
	if (names == NULL || req == NULL ||
	    (text = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto out;
	crypto_sha256(text, strlen(text), md);
	if ((b64 = crypto_b64url_encode(md, sizeof(md))) == NULL ||
	    strlen(b64) >= JWK_THUMBPRINT_LEN)
		goto out;
	memcpy(out, b64, strlen(b64) + 1);
	rc = 0;
out:
	if (rc < 0)
		err_set(e, ERR_INPUT, "bad_jwk", "the JWK lacks the members of its key type");
	free(text);
	free(b64);
	json_decref(req);
	return rc;
}
