/*
 * dsn.c - RFC 3461 parameter values and xtext; see dsn.h.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mail/dsn.h"

static int hex_upper(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* RFC 3461 §4: "+" is followed by two upper-case hex digits */
}

/* The next decoded octet of xtext at s[*i], or -1 when malformed. */
static int xtext_next(const char *s, size_t n, size_t *i)
{
	unsigned char c = (unsigned char)s[*i];

	if (c == '+') {
		int hi, lo;

		if (*i + 2 >= n)
			return -1;
		hi = hex_upper(s[*i + 1]);
		lo = hex_upper(s[*i + 2]);
		if (hi < 0 || lo < 0)
			return -1;
		*i += 3;
		return hi * 16 + lo;
	}
	if (c < 33 || c > 126 || c == '=')
		return -1;
	(*i)++;
	return c;
}

int dsn_xtext_valid(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n)
		if (xtext_next(s, n, &i) < 0)
			return 0;
	return 1;
}

int dsn_xtext_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t i = 0, o = 0;

	while (i < n) {
		int c = xtext_next(s, n, &i);

		/* printable US-ASCII only (RFC 3461 §4.4, §4.2): a report shows the text */
		if (c < 0x20 || c > 0x7e || o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	if (cap == 0)
		return -1;
	out[o] = '\0';
	return (int)o;
}

int dsn_ret_parse(const char *v, size_t n, enum dsn_ret *out)
{
	if (n == 4 && strncasecmp(v, "FULL", 4) == 0)
		*out = DSN_RET_FULL;
	else if (n == 4 && strncasecmp(v, "HDRS", 4) == 0)
		*out = DSN_RET_HDRS;
	else
		return -1;
	return 0;
}

const char *dsn_ret_name(enum dsn_ret r)
{
	return r == DSN_RET_FULL ? "FULL" : r == DSN_RET_HDRS ? "HDRS" : "";
}

int dsn_envid_valid(const char *v, size_t n)
{
	char tmp[DSN_ENVID_MAX + 1];

	return n > 0 && n <= DSN_ENVID_MAX && dsn_xtext_decode(v, n, tmp, sizeof(tmp)) >= 0;
}

static const struct {
	const char *name;
	unsigned bit;
} notify_words[] = {
    {"NEVER", DSN_NOTIFY_NEVER},
    {"SUCCESS", DSN_NOTIFY_SUCCESS},
    {"FAILURE", DSN_NOTIFY_FAILURE},
    {"DELAY", DSN_NOTIFY_DELAY},
};

int dsn_notify_parse(const char *v, size_t n, unsigned *out)
{
	unsigned got = 0;
	size_t i = 0;

	while (i <= n) {
		const char *comma = memchr(v + i, ',', n - i);
		size_t end = comma != NULL ? (size_t)(comma - v) : n, len = end - i, k;

		for (k = 0; k < sizeof(notify_words) / sizeof(notify_words[0]); k++)
			if (strlen(notify_words[k].name) == len &&
			    strncasecmp(v + i, notify_words[k].name, len) == 0)
				break;
		if (k == sizeof(notify_words) / sizeof(notify_words[0]) ||
		    (got & notify_words[k].bit) != 0)
			return -1;
		got |= notify_words[k].bit;
		i = end + 1;
	}
	if (!dsn_notify_valid(got))
		return -1;
	*out = got;
	return 0;
}

int dsn_notify_valid(unsigned notify)
{
	/* RFC 3461 §4.1: NEVER stands alone */
	return !(notify & DSN_NOTIFY_NEVER) || notify == DSN_NOTIFY_NEVER;
}

void dsn_notify_format(unsigned notify, char *out, size_t cap)
{
	size_t o = 0;

	if (cap == 0)
		return;
	out[0] = '\0';
	for (size_t k = 0; k < sizeof(notify_words) / sizeof(notify_words[0]); k++) {
		if ((notify & notify_words[k].bit) == 0)
			continue;
		int w = snprintf(out + o, cap - o, "%s%s", o > 0 ? "," : "", notify_words[k].name);
		if (w < 0 || (size_t)w >= cap - o)
			return;
		o += (size_t)w;
	}
}

int dsn_orcpt_valid(const char *v, size_t n)
{
	const char *semi = memchr(v, ';', n);
	size_t tlen, alen;
	char tmp[DSN_ORCPT_MAX + 1];

	if (n > DSN_ORCPT_MAX || semi == NULL)
		return 0;
	tlen = (size_t)(semi - v);
	alen = n - tlen - 1;
	if (tlen == 0 || alen == 0)
		return 0;
	/* addr-type = atom (RFC 3461 §4.2): letters, digits and "-" suffice for every
	 * registered type (rfc822, utf-8, x400, unknown) */
	for (size_t i = 0; i < tlen; i++) {
		char c = v[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return 0;
	}
	if (tlen == 6 && strncasecmp(v, "rfc822", 6) == 0)
		return dsn_xtext_decode(semi + 1, alen, tmp, sizeof(tmp)) > 0;
	return dsn_xtext_valid(semi + 1, alen);
}
