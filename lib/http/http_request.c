/*
 * http_request.c - how a handler reads its request: query arguments, path
 * segments, the method, a bearer token, a JSON body and its string members;
 * see http.h.
 *
 * Everything here reads input a client chose, so every accessor copes with a
 * missing, repeated or oversized value and says which with a struct err.
 */
#include "http/http.h"
#include "http/http_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "pki/crypto.h"

const char *http_query_arg(const struct http_request *req, const char *name)
{
	if (req->conn == NULL)
		return NULL;
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

int http_seg_is(const struct http_request *req, int i, const char *s)
{
	return i < req->nseg && strcmp(req->seg[i], s) == 0;
}

int http_method_in(const char *method, const char *methods)
{
	size_t len = strlen(method);
	const char *p = methods;

	while ((p = strstr(p, method)) != NULL) {
		if ((p == methods || p[-1] == ' ') && (p[len] == '\0' || p[len] == ' '))
			return 1;
		p += len;
	}
	return 0;
}

const char *http_json_str(json_t *obj, const char *key, int required, struct err *e)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;

	if (v == NULL || json_is_null(v)) {
		if (required)
			err_set(e, ERR_INPUT, "bad_request", "the request needs a \"%s\" member",
			        key);
		return NULL;
	}
	if (!json_is_string(v)) {
		err_set(e, ERR_INPUT, "bad_request", "\"%s\" must be a string", key);
		return NULL;
	}
	return json_string_value(v);
}

int http_auth_token_hash(const struct http_request *req, const char *want_hash, struct err *e)
{
	const char *token = http_bearer_token(req);
	char have[CRYPTO_HEX256_LEN];

	if (want_hash == NULL)
		return err_set(
		    e, ERR_FORBIDDEN, "forbidden",
		    "the operator API is disabled here (operator_token_hash is not set)");
	if (token == NULL || *token == '\0')
		return err_set(e, ERR_AUTH, "unauthorized",
		               "this request needs the operator's Authorization: Bearer token");
	crypto_token_hash(token, have);
	if (strlen(want_hash) != CRYPTO_HEX256_LEN - 1 ||
	    !crypto_ct_equal(have, want_hash, CRYPTO_HEX256_LEN - 1))
		return err_set(e, ERR_AUTH, "unauthorized", "the operator token is not valid");
	return 0;
}

struct query_buf {
	char *buf;
	size_t len, used;
	int overflow;
};

static enum MHD_Result append_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
	struct query_buf *q = cls;
	int n = snprintf(q->buf + q->used, q->len - q->used, "%s%s=%s", q->used ? "&" : "", key,
	                 value ? value : "");

	(void)kind;
	if (n < 0 || (size_t)n >= q->len - q->used) {
		q->overflow = 1;
		return MHD_NO;
	}
	q->used += (size_t)n;
	return MHD_YES;
}

int http_query_string(const struct http_request *req, char *buf, size_t len)
{
	struct query_buf q = {buf, len, 0, 0};

	if (len == 0)
		return -1;
	buf[0] = '\0';
	if (req->conn != NULL)
		MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, append_arg, &q);
	return q.overflow ? -1 : 0;
}

const char *http_bearer_token(const struct http_request *req)
{
	const char *a = req->authorization;

	if (a == NULL)
		return NULL;
	while (*a == ' ' || *a == '\t')
		a++;
	if (strncasecmp(a, "Bearer", 6) != 0 || (a[6] != ' ' && a[6] != '\t'))
		return NULL;
	a += 6;
	while (*a == ' ' || *a == '\t')
		a++;
	return *a != '\0' ? a : NULL;
}

/* ---- body checks --------------------------------------------------------- */

/* "application/json", or "application/jose+json" (the JSON of ACME's signed requests, RFC
 * 8555 §6.2, which its handlers insist on), with optional parameters; a charset, if given,
 * must be UTF-8. */
int http_is_json_type(const char *ct)
{
	const char *p;

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, HTTP_JSON, sizeof(HTTP_JSON) - 1) == 0)
		p = ct + sizeof(HTTP_JSON) - 1;
	else if (strncasecmp(ct, HTTP_JOSE_JSON, sizeof(HTTP_JOSE_JSON) - 1) == 0)
		p = ct + sizeof(HTTP_JOSE_JSON) - 1;
	else
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return 1;
	if (*p != ';')
		return 0;
	while (*p == ';') {
		const char *name, *end;
		size_t n;

		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		name = p;
		end = p + strcspn(p, ";");
		if (strncasecmp(name, "charset=", 8) == 0) {
			const char *v = name + 8;

			n = (size_t)(end - v);
			while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
				v++;
				n -= 2;
			}
			if (!((n == 5 && strncasecmp(v, "utf-8", 5) == 0) ||
			      (n == 4 && strncasecmp(v, "utf8", 4) == 0)))
				return 0;
		}
		p = end;
	}
	return 1;
}

int http_parse_json_body(const char *content_type, const char *body, size_t len, size_t max_body,
                         json_t **out, struct err *e)
{
	json_error_t jerr;
	json_t *j;

	*out = NULL;
	if (len == 0)
		return 0;
	if (len > max_body)
		return err_set(e, ERR_TOOBIG, "body_too_large",
		               "The body exceeds the limit of %zu bytes.", max_body);
	if (!http_is_json_type(content_type))
		return err_set(e, ERR_MEDIA, "unsupported_media_type",
		               "A body must be sent as application/json (UTF-8).");
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (j == NULL) {
		if (json_error_code(&jerr) == json_error_invalid_utf8)
			return err_set(e, ERR_INPUT, "bad_json",
			               "The body is not valid UTF-8: %s at line %d, column %d.",
			               jerr.text, jerr.line, jerr.column);
		return err_set(e, ERR_INPUT, "bad_json",
		               "The body is not valid JSON: %s at line %d, column %d (byte %d).",
		               jerr.text, jerr.line, jerr.column, jerr.position);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(e, ERR_INPUT, "bad_request", "The body must be a JSON object.");
	}
	*out = j;
	return 0;
}
