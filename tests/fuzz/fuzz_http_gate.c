/*
 * fuzz_http_gate.c - the request gate every HTTPS daemon runs before any handler
 * (lib/http_gate.c) and the log escaping of what a client sent (lib/log.c).
 *
 * The first byte picks what the rest is:
 *   even: a request target (path and query as on the request line);
 *   odd:  header fields, one "name:value" per line ('\n'), bit 1 of the first
 *         byte saying HTTP/1.0.
 * Either way the bytes also go through the UTF-8 helpers and log_escape.
 * Checked against a plain reference decoder written here: an accepted target
 * decodes to valid UTF-8 without NUL; an accepted framing has at most one
 * Content-Length, a plain decimal, and at most one Transfer-Encoding, "chunked",
 * never both; the escaped log text is valid UTF-8 without control bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_gate.h"
#include "core/utf8.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hex(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The reference: decode %XX once; -1 on a malformed escape. */
static long ref_decode(const uint8_t *s, size_t n, uint8_t *out)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[j++] = s[i];
			continue;
		}
		if (i + 2 >= n || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0)
			return -1;
		out[j++] = (uint8_t)(hex(s[i + 1]) << 4 | hex(s[i + 2]));
		i += 2;
	}
	return (long)j;
}

static void check_target(const uint8_t *s, size_t n)
{
	enum http_gate_verdict v = http_gate_target((const char *)s, n);
	uint8_t *dec = malloc(n + 1);
	long len;

	if (dec == NULL)
		return;
	len = ref_decode(s, n, dec);
	if (v == HTTP_GATE_OK) {
		if (len < 0 || memchr(dec, 0, (size_t)len) != NULL || !utf8_valid(dec, (size_t)len))
			__builtin_trap(); /* accepted what a handler must never see */
		for (size_t i = 0; i < n; i++)
			if (s[i] < 0x20 || s[i] == 0x7f)
				__builtin_trap(); /* a raw control byte went through */
	} else if (http_gate_refusal(v) == NULL) {
		__builtin_trap(); /* a refusal says nothing to the client */
	}
	if (v == HTTP_GATE_BAD_UTF8 && len >= 0 && utf8_valid(dec, (size_t)len))
		__builtin_trap(); /* refused valid UTF-8 */
	free(dec);
}

static int is_name(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

static void check_framing(const uint8_t *s, size_t n, int http10)
{
	struct http_gate_framing st;
	int n_cl = 0, n_te = 0, body, chunked;
	size_t i = 0;

	http_gate_framing_init(&st, http10);
	while (i < n) {
		const char *line = (const char *)s + i;
		const char *nl = memchr(line, '\n', n - i);
		size_t llen = nl != NULL ? (size_t)(nl - line) : n - i;
		const char *colon = memchr(line, ':', llen);
		size_t nlen = colon != NULL ? (size_t)(colon - line) : llen;
		const char *val = colon != NULL ? colon + 1 : line + llen;
		size_t vlen = colon != NULL ? llen - nlen - 1 : 0;

		n_cl += is_name(line, nlen, "Content-Length");
		n_te += is_name(line, nlen, "Transfer-Encoding");
		http_gate_framing_field(&st, line, nlen, val, vlen);
		i += llen + 1;
	}
	if (http_gate_framing_end(&st, &body, &chunked) == HTTP_GATE_OK) {
		if (n_cl > 1 || n_te > 1 || (n_cl && n_te) || (n_te && http10))
			__builtin_trap(); /* accepted an ambiguous framing */
		if (chunked != (n_te == 1) || (body && !chunked && st.length == 0))
			__builtin_trap();
	}
}

static void check_text(const uint8_t *s, size_t n)
{
	char out[512];
	char *copy = malloc(n + 1);
	size_t len = log_escape(out, sizeof(out), (const char *)s, n);

	if (len >= sizeof(out) || strlen(out) != len ||
	    !utf8_valid((const unsigned char *)out, len))
		__builtin_trap();
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			__builtin_trap(); /* a control byte reached the log */
	if (copy == NULL)
		return;
	memcpy(copy, s, n);
	copy[n] = '\0';
	utf8_sanitize(copy);
	if (!utf8_valid((const unsigned char *)copy, strlen(copy)))
		__builtin_trap();
	if (memchr(s, 0, n) == NULL && utf8_valid(s, n) && memcmp(copy, s, n) != 0)
		__builtin_trap(); /* sanitize changed valid text */
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0)
		check_target(data + 1, size - 1);
	else
		check_framing(data + 1, size - 1, (data[0] & 2) != 0);
	check_text(data + 1, size - 1);
	return 0;
}
