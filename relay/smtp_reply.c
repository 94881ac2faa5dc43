/*
 * smtp_reply.c - SMTP/LMTP replies as the delivery client reads them
 * (RFC 5321 §4.2, RFC 3463 enhanced codes, RFC 2920 / 1870 / 6152 / 3207 /
 * 3030 / 8689 EHLO keywords).
 *
 * The peer is untrusted: a reply is taken only when every line carries the
 * same three-digit code in 200..599 followed by ' ' (last line), '-' (more
 * follow) or nothing.  Anything else is "bad_reply" and the delivery
 * defers: guessing what a broken server meant could turn a refusal into a
 * delivery.  Lines and line counts are bounded so that an endless reply
 * cannot hold a worker or memory.  The text is kept printable because it
 * ends in logs, queue records and bounces.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay.h"

void relay_smtp_reply_init(struct relay_smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

static int reply_bad(struct err *e, const char *what)
{
	return err_set(e, ERR_UNPROC, "bad_reply", "malformed reply: %s", what);
}

/* Length of an RFC 3463 code "c.ddd.ddd" at the start of s (class c), else 0. */
static size_t enhanced_len(const char *s, size_t len, char cls)
{
	size_t i = 0, digits;

	if (len < 5 || s[0] != cls || s[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		for (digits = 0; i < len && isdigit((unsigned char)s[i]) && digits < 4; i++)
			digits++;
		if (digits == 0 || digits > 3)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	return (i == len || s[i] == ' ') ? i : 0;
}

/* Append text to r->text, '\n' between lines, non-printables as '?'. */
static void text_append(struct relay_smtp_reply *r, const char *s, size_t len)
{
	size_t at = strlen(r->text);

	if (r->nlines > 1 && at + 1 < sizeof(r->text))
		r->text[at++] = '\n';
	for (size_t i = 0; i < len && at + 1 < sizeof(r->text); i++) {
		unsigned char c = (unsigned char)s[i];
		r->text[at++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	r->text[at] = '\0';
}

int relay_smtp_reply_line(struct relay_smtp_reply *r, const char *line, size_t len, struct err *e)
{
	int code;

	if (r->done)
		return reply_bad(e, "a line after the last line");
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len + 2 > RELAY_REPLY_LINE_MAX)
		return reply_bad(e, "over-long line");
	if (r->nlines >= RELAY_REPLY_LINES_MAX)
		return reply_bad(e, "too many lines");
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    !isdigit((unsigned char)line[2]))
		return reply_bad(e, "no reply code");
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return reply_bad(e, "no separator after the code");
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return reply_bad(e, "the code changes between lines");
	r->code = code;
	r->nlines++;
	if (len > 4) {
		const char *t = line + 4;
		size_t tlen = len - 4, el = enhanced_len(t, tlen, line[0]);
		if (r->nlines == 1 && el > 0 && el < sizeof(r->enhanced)) {
			memcpy(r->enhanced, t, el);
			r->enhanced[el] = '\0';
		}
		text_append(r, t, tlen);
	} else {
		text_append(r, "", 0);
	}
	r->done = !(len > 3 && line[3] == '-');
	return r->done;
}

int relay_smtp_reply_parse(const char *buf, size_t len, struct relay_smtp_reply *r, size_t *used,
                           struct err *e)
{
	size_t pos = 0;

	relay_smtp_reply_init(r);
	*used = 0;
	while (pos < len) {
		const char *lf = memchr(buf + pos, '\n', len - pos);
		int rc;
		if (lf == NULL)
			break;
		rc = relay_smtp_reply_line(r, buf + pos, (size_t)(lf - (buf + pos)), e);
		pos = (size_t)(lf - buf) + 1;
		if (rc < 0)
			return -1;
		if (rc == 1) {
			*used = pos;
			return 1;
		}
	}
	if (len - pos + 1 > RELAY_REPLY_LINE_MAX)
		return reply_bad(e, "over-long line");
	return 0;
}

void relay_smtp_reply_oneline(const struct relay_smtp_reply *r, char *out, size_t outlen)
{
	const char *p = r->text;
	size_t at = 0, el = strlen(r->enhanced);
	int first = 1;

	if (outlen == 0)
		return;
	out[0] = '\0';
	while (*p != '\0' || first) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *s = p;
		if (!first && el > 0 && n >= el && strncmp(s, r->enhanced, el) == 0 &&
		    (n == el || s[el] == ' ')) {
			s += el;
			n -= el;
			while (n > 0 && *s == ' ')
				s++, n--;
		}
		if (n > 0) {
			if (at > 0 && at + 1 < outlen)
				out[at++] = ' ';
			for (size_t i = 0; i < n && at + 1 < outlen; i++)
				out[at++] = s[i];
			out[at] = '\0';
		}
		first = 0;
		if (end == NULL)
			break;
		p = end + 1;
	}
}

/* The keyword of one EHLO line and its parameter, if any. */
static void caps_line(const char *s, size_t n, struct relay_smtp_caps *c)
{
	size_t kw = 0;

	while (kw < n && s[kw] != ' ')
		kw++;
	if (kw == 10 && strncasecmp(s, "PIPELINING", 10) == 0)
		c->pipelining = 1;
	else if (kw == 8 && strncasecmp(s, "STARTTLS", 8) == 0)
		c->starttls = 1;
	else if (kw == 8 && strncasecmp(s, "8BITMIME", 8) == 0)
		c->eightbitmime = 1;
	else if (kw == 8 && strncasecmp(s, "CHUNKING", 8) == 0)
		c->chunking = 1;
	else if (kw == 10 && strncasecmp(s, "REQUIRETLS", 10) == 0)
		c->requiretls = 1;
	else if (kw == 8 && strncasecmp(s, "SMTPUTF8", 8) == 0)
		c->smtputf8 = 1;
	else if (kw == 3 && strncasecmp(s, "DSN", 3) == 0)
		c->dsn = 1;
	else if (kw == 14 && strncasecmp(s, "ANCHOR-PARTIAL", 14) == 0)
		c->anchor_partial = 1;
	else if (kw == 19 && strncasecmp(s, "ENHANCEDSTATUSCODES", 19) == 0)
		c->enhancedstatuscodes = 1;
	else if (kw == 4 && strncasecmp(s, "SIZE", 4) == 0) {
		char num[24];
		size_t len = n > kw + 1 ? n - kw - 1 : 0;
		c->size = 1;
		c->size_max = 0;
		if (len > 0 && len < sizeof(num)) {
			char *end;
			memcpy(num, s + kw + 1, len);
			num[len] = '\0';
			if (isdigit((unsigned char)num[0])) {
				unsigned long long v = strtoull(num, &end, 10);
				if (*end == '\0')
					c->size_max = v;
			}
		}
	}
}

void relay_smtp_caps_parse(const struct relay_smtp_reply *ehlo, struct relay_smtp_caps *caps)
{
	const char *p = ehlo->text;
	int first = 1;

	memset(caps, 0, sizeof(*caps));
	if (ehlo->code / 100 != 2)
		return;
	for (;;) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		/* the first line is the greeting name, not a keyword */
		if (!first)
			caps_line(p, n, caps);
		else
			snprintf(caps->name, sizeof(caps->name), "%.*s", (int)strcspn(p, " \n"), p);
		first = 0;
		if (end == NULL)
			break;
		p = end + 1;
	}
}
