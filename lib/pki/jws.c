/* jws.c - flattened-JSON JWS with x5c chains; see jws.h. */
#include "pki/jws.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509_vfy.h>

#include "pki/cert.h"
#include "pki/crypto.h"

#define JWS_MAX_TEXT (1024 * 1024)

static const char *jws_alg_of(const EVP_PKEY *key)
{
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_ED25519:
		return "EdDSA";
	case EVP_PKEY_EC:
		return "ES256";
	case EVP_PKEY_RSA:
		return "RS256";
	default:
		return NULL;
	}
}

/* EdDSA signs the message itself; the others hash with SHA-256 first. */
static const EVP_MD *jws_md_of(const EVP_PKEY *key)
{
	return EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
}

/* ECDSA: OpenSSL speaks DER, JOSE wants the two 32-byte integers side by side. */
static int ecdsa_der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *s;
	int ok;

	if (sig == NULL)
		return -1;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -1;
}

static unsigned char *ecdsa_raw_to_der(const unsigned char *raw, size_t len, size_t *outlen)
{
	ECDSA_SIG *sig;
	BIGNUM *r, *s;
	unsigned char *der = NULL;
	int n;

	if (len != 64) /* before reading 64 bytes of it */
		return NULL;
	sig = ECDSA_SIG_new();
	r = BN_bin2bn(raw, 32, NULL);
	s = BN_bin2bn(raw + 32, 32, NULL);
	if (sig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		return NULL;
	}
	n = i2d_ECDSA_SIG(sig, &der);
	ECDSA_SIG_free(sig);
	if (n <= 0)
		return NULL;
	*outlen = (size_t)n;
	return der;
}

static char *cert_der_b64(X509 *cert)
{
	unsigned char *der = NULL;
	int n = i2d_X509(cert, &der);
	char *b64;

	if (n <= 0)
		return NULL;
	b64 = crypto_b64_encode(der, (size_t)n);
	OPENSSL_free(der);
	return b64;
}

static char *protected_header(const char *alg, const char *typ, X509 *const *chain, int nchain)
{
	json_t *hdr = json_pack("{s:s}", "alg", alg), *x5c = json_array();
	char *text = NULL, *b64 = NULL;

	for (int i = 0; hdr != NULL && x5c != NULL && i < nchain; i++) {
		char *c = cert_der_b64(chain[i]);
		if (c == NULL)
			goto out;
		json_array_append_new(x5c, json_string(c));
		free(c);
	}
	if (hdr == NULL || x5c == NULL)
		goto out;
	json_object_set(hdr, "x5c", x5c);
	if (typ != NULL)
		json_object_set_new(hdr, "typ", json_string(typ));
	text = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
	if (text != NULL)
		b64 = crypto_b64url_encode(text, strlen(text));
out:
	free(text);
	json_decref(x5c);
	json_decref(hdr);
	return b64;
}

/* The JWS signing input: BASE64URL(protected) "." BASE64URL(payload). */
static char *signing_input(const char *prot_b64, const char *payload_b64)
{
	char *in = NULL;

	if (asprintf(&in, "%s.%s", prot_b64, payload_b64) < 0)
		return NULL;
	return in;
}

static unsigned char *sign_bytes(EVP_PKEY *key, const char *in, size_t *siglen, struct err *e)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *sig = NULL;

	if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, jws_md_of(key), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, siglen, (const unsigned char *)in, strlen(in)) != 1 ||
	    (sig = malloc(*siglen)) == NULL ||
	    EVP_DigestSign(ctx, sig, siglen, (const unsigned char *)in, strlen(in)) != 1) {
		free(sig);
		sig = NULL;
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot sign the object");
	}
	EVP_MD_CTX_free(ctx);
	if (sig != NULL && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		unsigned char raw[64];
		if (ecdsa_der_to_raw(sig, *siglen, raw) < 0) {
			free(sig);
			err_set(e, ERR_INTERNAL, "internal", "cannot encode the ECDSA signature");
			return NULL;
		}
		memcpy(sig, raw, 64); /* a DER P-256 signature is always longer than 64 */
		*siglen = 64;
	}
	return sig;
}

const char *jws_alg_name(const EVP_PKEY *key)
{
	return key != NULL ? jws_alg_of(key) : NULL;
}

char *jws_signing_input(const char *payload, size_t payload_len, const char *alg,
                        X509 *const *chain, int nchain, const char *typ, struct err *e)
{
	char *prot = NULL, *pay = NULL, *in = NULL;

	if (alg == NULL || nchain < 0) {
		err_set(e, ERR_INTERNAL, "internal", "a JWS needs an alg and a chain");
		return NULL;
	}
	if ((prot = protected_header(alg, typ, chain, nchain)) == NULL ||
	    (pay = crypto_b64url_encode(payload, payload_len)) == NULL ||
	    (in = signing_input(prot, pay)) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	free(prot);
	free(pay);
	return in;
}

unsigned char *jws_sign_input(EVP_PKEY *key, const char *input, size_t *siglen, struct err *e)
{
	if (jws_alg_name(key) == NULL || crypto_key_check_allowed(key, e) < 0) {
		err_set(e, ERR_INTERNAL, "internal", "the signing key's algorithm has no JWS name");
		return NULL;
	}
	return sign_bytes(key, input, siglen, e);
}

char *jws_assemble(const char *input, const unsigned char *sig, size_t siglen, struct err *e)
{
	const char *dot = strchr(input, '.');
	char *prot = NULL, *sig_b64 = NULL, *out = NULL;
	json_t *obj = NULL;

	if (dot == NULL || strchr(dot + 1, '.') != NULL || siglen == 0) {
		err_set(e, ERR_INPUT, "bad_jws", "not a JWS signing input and signature");
		return NULL;
	}
	prot = strndup(input, (size_t)(dot - input));
	sig_b64 = crypto_b64url_encode(sig, siglen);
	if (prot != NULL && sig_b64 != NULL)
		obj = json_pack("{s:s, s:s, s:s}", "payload", dot + 1, "protected", prot,
		                "signature", sig_b64);
	if (obj != NULL)
		out = json_dumps(obj, JSON_COMPACT);
	if (out == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	json_decref(obj);
	free(prot);
	free(sig_b64);
	return out;
}

char *jws_sign(const char *payload, size_t payload_len, EVP_PKEY *key, X509 *const *chain,
               int nchain, const char *typ, struct err *e)
{
	const char *alg = jws_alg_of(key);
	char *in = NULL, *out = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;

	if (alg == NULL || crypto_key_check_allowed(key, e) < 0) {
		err_set(e, ERR_INTERNAL, "internal", "the signing key's algorithm has no JWS name");
		return NULL;
	}
	if ((in = jws_signing_input(payload, payload_len, alg, chain, nchain, typ, e)) != NULL &&
	    (sig = sign_bytes(key, in, &siglen, e)) != NULL)
		out = jws_assemble(in, sig, siglen, e);
	free(in);
	free(sig);
	return out;
}

void jws_verified_free(struct jws_verified *v)
{
	if (v == NULL)
		return;
	free(v->payload);
	free(v->typ);
	X509_free(v->leaf);
	X509_free(v->root);
	memset(v, 0, sizeof(*v));
}

static X509 *cert_from_b64(const char *b64)
{
	size_t len = 0;
	uint8_t *der = crypto_b64_decode(b64, &len);
	const unsigned char *p = der;
	X509 *c = NULL;

	if (der != NULL) {
		c = d2i_X509(NULL, &p, (long)len);
		if (c != NULL && p != der + len) { /* trailing bytes: not one certificate */
			X509_free(c);
			c = NULL;
		}
	}
	free(der);
	return c;
}

/* The decoded protected header: alg and the chain. */
struct jws_header {
	const char *alg;
	char *typ;
	X509 *chain[JWS_MAX_CHAIN];
	int nchain;
};

static void header_free(struct jws_header *h)
{
	for (int i = 0; i < h->nchain; i++)
		X509_free(h->chain[i]);
	free(h->typ);
}

static int header_parse(const char *prot_b64, struct jws_header *h, struct err *e)
{
	size_t len = 0;
	uint8_t *text = crypto_b64url_decode(prot_b64, &len);
	json_t *hdr =
	    text ? json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	json_t *x5c, *c;
	const char *alg, *typ;
	size_t i;
	int rc = -1;

	free(text);
	if (!json_is_object(hdr)) {
		err_set(e, ERR_INPUT, "bad_jws", "the protected header is not base64url JSON");
		goto out;
	}
	alg = json_string_value(json_object_get(hdr, "alg"));
	if (alg == NULL ||
	    (strcmp(alg, "EdDSA") != 0 && strcmp(alg, "ES256") != 0 && strcmp(alg, "RS256") != 0)) {
		err_set(e, ERR_INPUT, "bad_jws", "unsupported JWS alg %.20s",
		        alg ? alg : "(missing)");
		goto out;
	}
	h->alg = strcmp(alg, "EdDSA") == 0   ? "EdDSA"
	         : strcmp(alg, "ES256") == 0 ? "ES256"
	                                     : "RS256";
	/* RFC 7515 §4.1.11: a critical extension we do not know means we must refuse. */
	if (json_object_get(hdr, "crit") != NULL) {
		err_set(e, ERR_INPUT, "bad_jws",
		        "the JWS names critical extensions we do not know");
		goto out;
	}
	if ((typ = json_string_value(json_object_get(hdr, "typ"))) != NULL)
		h->typ = strdup(typ);
	x5c = json_object_get(hdr, "x5c");
	if (!json_is_array(x5c) || json_array_size(x5c) < 1 ||
	    json_array_size(x5c) > JWS_MAX_CHAIN) {
		err_set(e, ERR_INPUT, "bad_jws", "x5c must list 1 to %d certificates",
		        JWS_MAX_CHAIN);
		goto out;
	}
	json_array_foreach(x5c, i, c)
	{
		X509 *cert = json_is_string(c) ? cert_from_b64(json_string_value(c)) : NULL;
		if (cert == NULL) {
			err_set(e, ERR_INPUT, "bad_jws", "x5c[%zu] is not a base64 DER certificate",
			        i);
			goto out;
		}
		h->chain[h->nchain++] = cert;
	}
	rc = 0;
out:
	json_decref(hdr);
	return rc;
}

/* The chain verifies leaf -> ... -> last, and the last one's pin is one we trust. */
static int chain_check(struct jws_header *h, const char *const *pins, int npins, struct err *e)
{
	X509 *root = h->chain[h->nchain - 1];
	char pin[CRYPTO_PIN_MAX];
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *untrusted = NULL;
	int matched = 0, rc = -1;

	if (crypto_key_pin(X509_get0_pubkey(root), pin, e) < 0)
		return -1;
	for (int i = 0; i < npins; i++)
		matched |= strcmp(pins[i], pin) == 0;
	if (!matched)
		return err_set(e, ERR_UNPROC, "pin_mismatch",
		               "the signer's chain ends in a root (%s) that matches no pin", pin);
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	untrusted = sk_X509_new_null();
	if (store == NULL || ctx == NULL || untrusted == NULL || !X509_STORE_add_cert(store, root))
		goto out;
	for (int i = 1; i < h->nchain - 1; i++)
		sk_X509_push(untrusted, h->chain[i]);
	if (!X509_STORE_CTX_init(ctx, store, h->chain[0], untrusted))
		goto out;
	if (X509_verify_cert(ctx) != 1) {
		err_set(e, ERR_UNPROC, "jws_signature", "the signer's certificate chain fails: %s",
		        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	rc = 0;
out:
	if (rc < 0 && e->kind == ERR_NONE)
		err_set(e, ERR_INTERNAL, "internal", "cannot set up certificate verification");
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

int jws_verify_input(EVP_PKEY *key, const char *alg, const char *in, const char *sig_b64,
                     struct err *e)
{
	size_t siglen = 0, derlen = 0;
	uint8_t *sig = crypto_b64url_decode(sig_b64, &siglen);
	unsigned char *der = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = 0;

	/* The alg in the header must be the one the key is for: no algorithm confusion. */
	if (key != NULL && sig != NULL && ctx != NULL && jws_alg_of(key) != NULL &&
	    strcmp(jws_alg_of(key), alg) == 0 && crypto_key_check_allowed(key, e) == 0) {
		const unsigned char *s = sig;
		size_t slen = siglen;
		if (strcmp(alg, "ES256") == 0) {
			der = ecdsa_raw_to_der(sig, siglen, &derlen);
			s = der;
			slen = derlen;
		}
		ok = s != NULL && EVP_DigestVerifyInit(ctx, NULL, jws_md_of(key), NULL, key) == 1 &&
		     EVP_DigestVerify(ctx, s, slen, (const unsigned char *)in, strlen(in)) == 1;
	}
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	free(sig);
	if (!ok) {
		err_clear(e);
		return err_set(e, ERR_UNPROC, "jws_signature",
		               "the signature does not verify with the signer's key");
	}
	return 0;
}

static int signature_check(const struct jws_header *h, const char *in, const char *sig_b64,
                           struct err *e)
{
	return jws_verify_input(X509_get0_pubkey(h->chain[0]), h->alg, in, sig_b64, e);
}

#define B64URL_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

char *jws_flatten(const char *text, struct err *e)
{
	size_t n1 = strspn(text, B64URL_CHARS), n2, n3;
	char *out = NULL;

	if (strlen(text) > JWS_MAX_TEXT) {
		err_set(e, ERR_INPUT, "bad_jws", "the JWS is larger than %d bytes", JWS_MAX_TEXT);
		return NULL;
	}
	if (text[0] == '{') {
		if ((out = strdup(text)) == NULL)
			err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return out;
	}
	n2 = text[n1] == '.' ? strspn(text + n1 + 1, B64URL_CHARS) : 0;
	n3 = n2 > 0 && text[n1 + 1 + n2] == '.' ? strspn(text + n1 + n2 + 2, B64URL_CHARS) : 0;
	if (n1 == 0 || n2 == 0 || n3 == 0 || text[n1 + n2 + n3 + 2] != '\0') {
		err_set(e, ERR_INPUT, "bad_jws",
		        "a JWS is flattened JSON or compact: three base64url parts joined by dots");
		return NULL;
	}
	if (asprintf(&out, "{\"protected\":\"%.*s\",\"payload\":\"%.*s\",\"signature\":\"%s\"}",
	             (int)n1, text, (int)n2, text + n1 + 1, text + n1 + n2 + 2) < 0) {
		out = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	return out;
}

int jws_verify(const char *text, size_t len, const char *const *pins, int npins,
               struct jws_verified *out, struct err *e)
{
	struct jws_header h = {0};
	json_t *obj = NULL;
	const char *prot, *pay, *sig;
	char *in = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (len > JWS_MAX_TEXT)
		return err_set(e, ERR_INPUT, "bad_jws", "the JWS is larger than %d bytes",
		               JWS_MAX_TEXT);
	obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	prot = json_string_value(json_object_get(obj, "protected"));
	pay = json_string_value(json_object_get(obj, "payload"));
	sig = json_string_value(json_object_get(obj, "signature"));
	if (prot == NULL || pay == NULL || sig == NULL) {
		err_set(e, ERR_INPUT, "bad_jws",
		        "a JWS needs string members protected, payload and signature");
		goto out;
	}
	if (header_parse(prot, &h, e) < 0 || chain_check(&h, pins, npins, e) < 0)
		goto out;
	if ((in = signing_input(prot, pay)) == NULL || signature_check(&h, in, sig, e) < 0)
		goto out;
	out->payload = (char *)crypto_b64url_decode(pay, &out->payload_len);
	if (out->payload == NULL) {
		err_set(e, ERR_INPUT, "bad_jws", "the payload is not base64url");
		goto out;
	}
	/* Callers parse the payload as text: give it a terminator. */
	char *p = realloc(out->payload, out->payload_len + 1);
	if (p == NULL)
		goto out;
	out->payload = p;
	out->payload[out->payload_len] = '\0';
	out->typ = h.typ;
	h.typ = NULL;
	out->leaf = X509_dup(h.chain[0]);
	out->root = X509_dup(h.chain[h.nchain - 1]);
	rc = 0;
out:
	if (rc < 0) {
		jws_verified_free(out);
		if (e->kind == ERR_NONE)
			err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	free(in);
	header_free(&h);
	json_decref(obj);
	return rc;
}
