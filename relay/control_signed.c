/*
 * control_signed.c - requests to the control API that a recipient signs with its own
 * S/MIME key (control_signed.h, PROTOCOL.md §12.6): the JWS read, its payload bound to the
 * method, the path, the body and the time, and the signer checked through lib/certauth
 * (pin, chain, name, the key server's status of the certificate).  The replay window
 * per key is control.c's, which holds the state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "control_signed.h"
#include "core/hash.h"
#include "core/text.h"
#include "dns/certauth.h"
#include "pki/cert.h"
#include "pki/jws.h"
#include "pki/name.h"

void relay_control_signed_clear(struct relay_control_signed *r)
{
	if (r == NULL)
		return;
	json_decref(r->body);
	memset(r, 0, sizeof(*r));
}

static json_t *jws_payload_unverified(json_t *jws, struct err *e)
{
	const char *b64 = json_string_value(json_object_get(jws, "payload"));
	size_t len = 0;
	uint8_t *raw;
	json_t *p;

	if (!json_is_object(jws) || b64 == NULL ||
	    !json_is_string(json_object_get(jws, "signature")) ||
	    (raw = crypto_b64url_decode(b64, &len)) == NULL) {
		err_set(e, ERR_INPUT, "bad_jws", "the body is not a flattened JWS");
		return NULL;
	}
	p = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	if (!json_is_object(p)) {
		json_decref(p);
		err_set(e, ERR_INPUT, "bad_jws", "the JWS payload is not a JSON object");
		return NULL;
	}
	return p;
}

int relay_control_peek_address(json_t *jws, char out[RELAY_ADDR_MAX], struct err *e)
{
	json_t *p = jws_payload_unverified(jws, e);
	const char *addr = p != NULL ? json_string_value(json_object_get(p, "address")) : NULL;
	int rc = 0;

	if (p == NULL)
		return -1;
	if (addr == NULL || strlen(addr) >= RELAY_ADDR_MAX)
		rc = err_set(e, ERR_INPUT, "bad_request",
		             "the signed payload needs the recipient's \"address\"");
	else
		snprintf(out, RELAY_ADDR_MAX, "%s", addr);
	if (rc == 0)
		text_lower_copy(out, RELAY_ADDR_MAX, out);
	json_decref(p);
	return rc;
}

/* "2026-11-23T15:43:05Z" as Unix seconds. */
static int parse_rfc3339(const char *text, long long *out)
{
	struct tm tm = {0};
	const char *end;

	if (text == NULL || strlen(text) != 20)
		return -1;
	end = strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	*out = (long long)timegm(&tm);
	return 0;
}

static int payload_check(json_t *p, const char *method, const char *path, time_t now,
                         struct relay_control_signed *out, struct err *e)
{
	const char *type = json_string_value(json_object_get(p, "type"));
	const char *addr = json_string_value(json_object_get(p, "address"));
	const char *m = json_string_value(json_object_get(p, "method"));
	const char *pa = json_string_value(json_object_get(p, "path"));
	json_t *body = json_object_get(p, "body");

	if (type == NULL || strcmp(type, "anchor-relay-request") != 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "the signed payload must have type anchor-relay-request");
	if (addr == NULL || strlen(addr) >= RELAY_ADDR_MAX || m == NULL || pa == NULL)
		return err_set(e, ERR_INPUT, "bad_request",
		               "the signed payload needs address, method, path and issued");
	if (strcmp(m, method) != 0 || strcmp(pa, path) != 0)
		return err_set(e, ERR_INPUT, "request_mismatch",
		               "the request was signed for %.16s %.200s, not this one", m, pa);
	if (parse_rfc3339(json_string_value(json_object_get(p, "issued")), &out->issued) < 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "the signed payload needs \"issued\" as an RFC 3339 UTC time");
	if (out->issued < (long long)now - RELAY_CONTROL_WINDOW ||
	    out->issued > (long long)now + RELAY_CONTROL_WINDOW)
		return err_set(e, ERR_INPUT, "stale_request",
		               "the request was signed more than %d seconds from now; "
		               "check the clock and sign it again",
		               RELAY_CONTROL_WINDOW);
	if (body != NULL && !json_is_null(body) && !json_is_object(body))
		return err_set(e, ERR_INPUT, "bad_request",
		               "the signed payload's body must be an object or null");
	text_lower_copy(out->address, sizeof(out->address), addr);
	out->body = json_is_object(body) ? json_incref(body) : NULL;
	return 0;
}

int relay_control_verify_request(struct certauth *auth, const char *text, size_t len,
                                 const char *method, const char *path, time_t now,
                                 struct relay_control_signed *out, struct err *e)
{
	struct certauth_want want = {.rule = CERTAUTH_ADDRESS};
	struct jws_verified v = {0};
	char addr[RELAY_ADDR_MAX], signer[CERTAUTH_NAME_MAX];
	json_t *jws, *p = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	jws = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	rc = relay_control_peek_address(jws, addr, e);
	json_decref(jws);
	if (rc < 0)
		return -1;
	rc = -1;
	want.name = addr;
	if (certauth_verify_jws(auth, text, len, &want, &v, signer, e) < 0)
		return -1;
	p = json_loadb(v.payload, v.payload_len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(p)) {
		err_set(e, ERR_INPUT, "bad_request", "the signed payload is not a JSON object");
		goto out;
	}
	if (payload_check(p, method, path, now, out, e) < 0)
		goto out;
	if (strcmp(out->address, addr) != 0) { /* the payload peeked is the payload verified */
		err_set(e, ERR_INTERNAL, "internal", "the signed address changed under us");
		goto out;
	}
	if (crypto_key_pin(X509_get0_pubkey(v.leaf), out->key_pin, e) < 0)
		goto out;
	crypto_sha256(text, len, out->digest);
	rc = 0;
out:
	if (rc < 0)
		relay_control_signed_clear(out);
	json_decref(p);
	jws_verified_free(&v);
	return rc;
}
