/*
 * auth.c - who is asking: the operator (a bearer token whose hash is configured) and
 * the signer of a JWS (a key anchored in a domain, checked through lib/dns/certauth).
 * Reports, delisting requests and federation feeds are all verified here; the operator
 * API (reporter registration, delisting decisions, standing passes) is guarded here.
 */
#include <stdlib.h>

#include "pki/crypto.h"
#include "handlers.h"

int rep_auth_operator(struct rep_req *r, struct err *e)
{
	return http_auth_token_hash(r->http, r->rep->cfg.operator_token_hash, e);
}

json_t *rep_jws_peek(const char *jws, size_t len, struct err *e)
{
	json_t *obj = json_loadb(jws, len, JSON_REJECT_DUPLICATES, NULL), *payload = NULL;
	const char *b64 = json_string_value(json_object_get(obj, "payload"));
	uint8_t *raw = NULL;
	size_t rawlen = 0;

	if (!json_is_object(obj) || b64 == NULL ||
	    !json_is_string(json_object_get(obj, "protected")) ||
	    !json_is_string(json_object_get(obj, "signature"))) {
		err_set(e, ERR_INPUT, "bad_jws",
		        "the body must be a JWS (flattened JSON: protected, payload, signature) "
		        "signed with a key of the reporter's anchored domain");
		goto out;
	}
	if ((raw = crypto_b64url_decode(b64, &rawlen)) == NULL ||
	    (payload = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL)) ==
	        NULL ||
	    !json_is_object(payload)) {
		json_decref(payload);
		payload = NULL;
		err_set(e, ERR_INPUT, "bad_jws", "the JWS payload is not a base64url JSON object");
	}
out:
	free(raw);
	json_decref(obj);
	return payload;
}

int rep_verify_anchored(struct rep *rep, const char *jws, size_t len, const char *claimed,
                        struct jws_verified *v, char signer[320], struct err *e)
{
	struct certauth_want want = {.name = claimed,
	                             .rule = CERTAUTH_IN_DOMAIN,
	                             .unanchored_code = "reporter_not_anchored"};

	return certauth_verify_jws(rep->auth, jws, len, &want, v, signer, e);
}
