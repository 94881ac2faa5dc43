/* http_gate.c - request target and framing checks; see http_gate.h. */
#include "http/http_gate.h"
#include "core/utf8.h"

#include <string.h>
#include <strings.h>

static const struct http_gate_refusal http_gate_refusals[HTTP_GATE_NVERDICTS] = {
    [HTTP_GATE_OK] = {0, NULL, NULL, 0},
    [HTTP_GATE_BAD_ESCAPE] = {400, "bad_percent_encoding",
                              "The request path or query has a '%' that does not start a %XX "
                              "escape of two hex digits.",
                              0},
    [HTTP_GATE_RAW_CONTROL] = {400, "bad_request_target",
                               "The request path or query contains a raw control character.", 0},
    [HTTP_GATE_NUL] = {400, "nul_byte",
                       "The request path or a query argument contains a NUL byte (%00 or raw).", 0},
    [HTTP_GATE_BAD_UTF8] = {400, "invalid_utf8",
                            "The request path or a query argument is not valid UTF-8 once "
                            "percent-decoded.",
                            0},
    [HTTP_GATE_CL_REPEATED] = {400, "bad_framing",
                               "The request has more than one Content-Length field.", 1},
    [HTTP_GATE_CL_INVALID] = {400, "bad_framing",
                              "The Content-Length field is not a plain decimal number.", 1},
    [HTTP_GATE_CL_AND_TE] = {400, "bad_framing",
                             "The request has both Content-Length and Transfer-Encoding.", 1},
    [HTTP_GATE_TE_REPEATED] = {400, "bad_framing",
                               "The request has more than one Transfer-Encoding field.", 1},
    [HTTP_GATE_TE_HTTP10] = {400, "bad_framing",
                             "Transfer-Encoding is not allowed in an HTTP/1.0 request.", 1},
    [HTTP_GATE_TE_UNSUPPORTED] = {501, "unsupported_transfer_coding",
                                  "The only transfer coding accepted is \"chunked\".", 1},
    [HTTP_GATE_BAD_FIELD] = {400, "bad_header",
                             "A header field name is not a token (whitespace before the "
                             "colon?) or a value contains a NUL byte.",
                             1},
};

const struct http_gate_refusal *http_gate_refusal(enum http_gate_verdict v)
{
	if (v <= HTTP_GATE_OK || v >= HTTP_GATE_NVERDICTS)
		return NULL;
	return &http_gate_refusals[v];
}

enum http_gate_verdict http_gate_refusal_verdict(const void *p)
{
	for (int v = HTTP_GATE_OK + 1; v < HTTP_GATE_NVERDICTS; v++)
		if (p == (const void *)&http_gate_refusals[v])
			return (enum http_gate_verdict)v;
	return HTTP_GATE_OK;
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* ---- the request target ---------------------------------------------------- */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The whole target is decoded in one pass: '?', '&' and '=' are ASCII and so
 * can neither hide inside a multi-byte sequence nor end one cleanly, which
 * makes one pass over path and query the same check as one per argument.
 * '+' decodes to a space in a query; both are ASCII, so it is left alone.
 */
enum http_gate_verdict http_gate_target(const char *target, size_t len)
{
	const unsigned char *t = (const unsigned char *)target;
	struct utf8_state u = UTF8_STATE_INIT;
	enum http_gate_verdict bad_utf8 = HTTP_GATE_OK;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = t[i];

		if (c == '%') {
			int hi = i + 2 < len ? hexval(t[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(t[i + 2]) : -1;

			if (lo < 0)
				return HTTP_GATE_BAD_ESCAPE;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
			if (c == 0)
				return HTTP_GATE_NUL;
		} else if (c < 0x20 || c == 0x7f) {
			return c == 0 ? HTTP_GATE_NUL : HTTP_GATE_RAW_CONTROL;
		}
		/* a NUL or a bad escape further on is still reported as such */
		if (bad_utf8 == HTTP_GATE_OK && !utf8_step(&u, c))
			bad_utf8 = HTTP_GATE_BAD_UTF8;
	}
	if (bad_utf8 == HTTP_GATE_OK && u.need > 0)
		bad_utf8 = HTTP_GATE_BAD_UTF8;
	return bad_utf8;
}

/* ---- framing ---------------------------------------------------------------- */

/* RFC 9110 §5.6.2 tchar */
static int is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* value without surrounding OWS */
static void trim_ows(const char **v, size_t *len)
{
	while (*len > 0 && is_ows(**v)) {
		(*v)++;
		(*len)--;
	}
	while (*len > 0 && is_ows((*v)[*len - 1]))
		(*len)--;
}

static int name_is(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

void http_gate_framing_init(struct http_gate_framing *st, int http10)
{
	memset(st, 0, sizeof(*st));
	st->http10 = http10;
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6); a list like "5, 5" is not accepted. */
static enum http_gate_verdict gate_length(struct http_gate_framing *st, const char *v, size_t len)
{
	uint64_t n = 0;

	trim_ows(&v, &len);
	if (len == 0)
		return HTTP_GATE_CL_INVALID;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (v[i] < '0' || v[i] > '9')
			return HTTP_GATE_CL_INVALID;
		d = (unsigned)(v[i] - '0');
		n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
	}
	st->length = n;
	return HTTP_GATE_OK;
}

static enum http_gate_verdict gate_encoding(const struct http_gate_framing *st, const char *v,
                                            size_t len)
{
	if (st->http10)
		return HTTP_GATE_TE_HTTP10;
	trim_ows(&v, &len);
	if (len == 0)
		return HTTP_GATE_TE_UNSUPPORTED;
	if (!name_is(v, len, "chunked"))
		return HTTP_GATE_TE_UNSUPPORTED;
	return HTTP_GATE_OK;
}

static enum http_gate_verdict gate_field(struct http_gate_framing *st, const char *name,
                                         size_t name_len, const char *value, size_t value_len)
{
	if (name_len == 0 || value == NULL)
		return HTTP_GATE_BAD_FIELD;
	for (size_t i = 0; i < name_len; i++)
		if (!is_tchar((unsigned char)name[i]))
			return HTTP_GATE_BAD_FIELD;
	if (memchr(value, '\0', value_len) != NULL)
		return HTTP_GATE_BAD_FIELD;
	if (name_is(name, name_len, "Content-Length")) {
		if (++st->n_length > 1)
			return HTTP_GATE_CL_REPEATED;
		return gate_length(st, value, value_len);
	}
	if (name_is(name, name_len, "Transfer-Encoding")) {
		if (++st->n_encoding > 1)
			return HTTP_GATE_TE_REPEATED;
		return gate_encoding(st, value, value_len);
	}
	return HTTP_GATE_OK;
}

enum http_gate_verdict http_gate_framing_field(struct http_gate_framing *st, const char *name,
                                               size_t name_len, const char *value, size_t value_len)
{
	if (st->verdict == HTTP_GATE_OK)
		st->verdict = gate_field(st, name, name_len, value, value_len);
	return st->verdict;
}

enum http_gate_verdict http_gate_framing_end(const struct http_gate_framing *st, int *has_body,
                                             int *chunked)
{
	*has_body = 0;
	*chunked = 0;
	if (st->verdict != HTTP_GATE_OK)
		return st->verdict;
	if (st->n_length > 0 && st->n_encoding > 0)
		return HTTP_GATE_CL_AND_TE;
	*chunked = st->n_encoding > 0;
	*has_body = *chunked || st->length > 0;
	return HTTP_GATE_OK;
}
