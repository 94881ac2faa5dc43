/*
 * acme_request.c - an ACME request (RFC 8555 §6.2): a flattened JWS whose protected
 * header carries alg, nonce, url and exactly one of jwk and kid, and whose payload is a
 * JSON object or, for POST-as-GET, empty.  Parsing only: the caller checks the url, uses
 * the nonce and verifies the signature with the key it settles on.
 */
#include <stdlib.h>
#include <string.h>

#include "acme.h"
#include "pki/crypto.h"
#include "pki/jws.h"

#define ACME_JWS_MAX (64 * 1024)

static int malformed(struct err *e, const char *what)
{
	return err_set(e, ERR_INPUT, "malformed", "the request's JWS %s", what);
}

/* A string member of the header copied into out (cap bytes, non-empty). */
static int header_str(json_t *h, const char *name, char *out, size_t cap, struct err *e)
{
	const char *s = json_string_value(json_object_get(h, name));

	if (s == NULL || *s == '\0' || strlen(s) >= cap)
		return err_set(e, ERR_INPUT, "malformed",
		               "the protected header needs a string \"%s\" of at most %zu bytes",
		               name, cap - 1);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static int header_alg(json_t *h, struct acme_jws *out, struct err *e)
{
	const char *alg = json_string_value(json_object_get(h, "alg"));

	if (alg == NULL)
		return malformed(e, "has no alg");
	if (strcmp(alg, "ES256") != 0 && strcmp(alg, "RS256") != 0 && strcmp(alg, "EdDSA") != 0)
		return err_set(e, ERR_INPUT, "badSignatureAlgorithm",
		               "alg %.20s is not one of ES256, RS256, EdDSA", alg);
	memcpy(out->alg, alg, strlen(alg) + 1);
	return 0;
}

/* alg, nonce, url, and jwk xor kid (RFC 8555 §6.2); nothing critical we do not know. */
static int header_parse(const char *prot_b64, struct acme_jws *out, struct err *e)
{
	size_t len = 0;
	uint8_t *text = crypto_b64url_decode(prot_b64, &len);
	json_t *h = text ? json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	json_t *jwk, *kid;
	int rc = -1;

	free(text);
	if (!json_is_object(h)) {
		malformed(e, "protected header is not base64url JSON");
		goto out;
	}
	if (header_alg(h, out, e) < 0 ||
	    header_str(h, "nonce", out->nonce, sizeof(out->nonce), e) < 0 ||
	    header_str(h, "url", out->url, sizeof(out->url), e) < 0)
		goto out;
	if (json_object_get(h, "crit") != NULL) {
		malformed(e, "names critical extensions we do not know");
		goto out;
	}
	jwk = json_object_get(h, "jwk");
	kid = json_object_get(h, "kid");
	if ((jwk == NULL) == (kid == NULL)) {
		malformed(e, "must carry exactly one of jwk and kid");
		goto out;
	}
	if (kid != NULL && header_str(h, "kid", out->kid, sizeof(out->kid), e) < 0)
		goto out;
	if (jwk != NULL && !json_is_object(jwk)) {
		malformed(e, "jwk is not an object");
		goto out;
	}
	out->jwk = json_incref(jwk);
	rc = 0;
out:
	json_decref(h);
	return rc;
}

static int payload_parse(const char *pay_b64, struct acme_jws *out, struct err *e)
{
	size_t len = 0;
	uint8_t *text;

	if (*pay_b64 == '\0')
		return 0; /* POST-as-GET */
	if ((text = crypto_b64url_decode(pay_b64, &len)) == NULL)
		return malformed(e, "payload is not base64url");
	out->payload = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, NULL);
	free(text);
	if (!json_is_object(out->payload))
		return malformed(e, "payload is not a JSON object");
	return 0;
}

int acme_jws_parse(const char *body, size_t len, struct acme_jws *out, struct err *e)
{
	json_t *obj;
	const char *prot, *pay, *sig;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (len > ACME_JWS_MAX)
		return malformed(e, "is too large");
	obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	prot = json_string_value(json_object_get(obj, "protected"));
	pay = json_string_value(json_object_get(obj, "payload"));
	sig = json_string_value(json_object_get(obj, "signature"));
	/* RFC 8555 §6.2: flattened serialization only, one signature, no unprotected header. */
	if (prot == NULL || pay == NULL || sig == NULL || json_object_size(obj) != 3) {
		malformed(e, "must be flattened JSON with protected, payload and signature only");
		goto out;
	}
	if (header_parse(prot, out, e) < 0 || payload_parse(pay, out, e) < 0)
		goto out;
	if ((out->signature = strdup(sig)) == NULL ||
	    asprintf(&out->signing_input, "%s.%s", prot, pay) < 0) {
		out->signing_input = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_decref(obj);
	if (rc < 0)
		acme_jws_free(out);
	return rc;
}

void acme_jws_free(struct acme_jws *j)
{
	if (j == NULL)
		return;
	json_decref(j->jwk);
	json_decref(j->payload);
	free(j->signing_input);
	free(j->signature);
	memset(j, 0, sizeof(*j));
}

int acme_jws_verify(const struct acme_jws *j, EVP_PKEY *key, struct err *e)
{
	struct err why = {0};

	if (jws_verify_input(key, j->alg, j->signing_input, j->signature, &why) < 0)
		return err_set(e, ERR_INPUT, "malformed",
		               "the request's signature does not verify with the account key");
	return 0;
}

const char *acme_payload_str(const struct acme_jws *j, const char *name)
{
	return json_string_value(json_object_get(j->payload, name));
}
