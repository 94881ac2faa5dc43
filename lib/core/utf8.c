/*
 * utf8.c - the one UTF-8 validator (RFC 3629), used by the HTTP request gate,
 * the log's escaping and every check that text is text.  Hand-written because
 * neither OpenSSL nor jansson exports a validator that also reports where a
 * sequence ends, which the escaping needs.
 */
#include "core/utf8.h"

#include <string.h>

int utf8_step(struct utf8_state *u, unsigned char c)
{
	if (u->need > 0) {
		if (c < u->lo || c > u->hi)
			return 0;
		u->need--;
		u->lo = 0x80;
		u->hi = 0xbf;
		return 1;
	}
	u->lo = 0x80;
	u->hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		u->need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		u->need = 2;
		if (c == 0xe0)
			u->lo = 0xa0;
		else if (c == 0xed)
			u->hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		u->need = 3;
		if (c == 0xf0)
			u->lo = 0x90;
		else if (c == 0xf4)
			u->hi = 0x8f;
	} else {
		return 0; /* 80..C1, F5..FF never start a sequence */
	}
	return 1;
}

int utf8_valid(const unsigned char *s, size_t len)
{
	struct utf8_state u = UTF8_STATE_INIT;

	for (size_t i = 0; i < len; i++)
		if (!utf8_step(&u, s[i]))
			return 0;
	return u.need == 0;
}

size_t utf8_seq(const unsigned char *s, size_t len)
{
	struct utf8_state u = UTF8_STATE_INIT;
	size_t i = 0;

	do {
		if (i >= len || !utf8_step(&u, s[i]))
			return 0;
		i++;
	} while (u.need > 0);
	return i;
}

void utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t left = strlen(s);

	while (left > 0) {
		size_t n = utf8_seq(p, left);

		if (n == 0) {
			*p++ = '?';
			left--;
			continue;
		}
		p += n;
		left -= n;
	}
}
