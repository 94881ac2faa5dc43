/*
 * request.c - the Postfix policy delegation protocol (SMTPD_POLICY_README):
 * "name=value" lines, one request ending with an empty line.  Only the
 * attributes anchor-policyd uses are kept; the others are counted.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "pki/name.h"
#include "policyd.h"

void policy_request_reset(struct policy_request *r)
{
	memset(r, 0, sizeof(*r));
}

static void mark_bad(struct policy_request *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void mark_bad(struct policy_request *r, const char *fmt, ...)
{
	va_list ap;

	if (r->bad)
		return; /* the first fault is the one worth logging */
	r->bad = 1;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	for (char *p = r->why; *p; p++) /* it goes to the log */
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

struct attr {
	const char *name;
	size_t off, size;
	size_t cut; /* offset of the flag set when a longer value is cut; 0: refused */
};

#define F(f) offsetof(struct policy_request, f)
#define A(n, f)                                                                                    \
	{                                                                                          \
		n, F(f), sizeof(((struct policy_request *)0)->f), 0                                \
	}
#define C(n, f, flag)                                                                              \
	{                                                                                          \
		n, F(f), sizeof(((struct policy_request *)0)->f), F(flag)                          \
	}

/* The ones with a flag are the SMTP client's text (see policyd.h). */
static const struct attr kept[] = {
    A("request", request),
    A("protocol_state", protocol_state),
    A("client_address", client_address),
    C("helo_name", helo_name, helo_cut),
    C("sender", sender, sender_cut),
    C("recipient", recipient, recipient_cut),
    A("queue_id", queue_id),
    A("instance", instance),
};

/* The sender's domain is taken from the whole value, before any cut. */
static void take_sender_domain(struct policy_request *r, const char *v, size_t len)
{
	const char *at = NULL;
	size_t dlen;

	for (size_t i = len; i > 0; i--)
		if (v[i - 1] == '@') {
			at = v + i - 1;
			break;
		}
	if (at == NULL)
		return;
	dlen = len - (size_t)(at + 1 - v);
	if (dlen >= sizeof(r->sender_domain)) {
		r->sender_domain_cut = 1; /* longer than any host name: unusable, not stored */
		return;
	}
	memcpy(r->sender_domain, at + 1, dlen);
	r->sender_domain[dlen] = '\0';
}

int policy_request_line(struct policy_request *r, const char *line, size_t len, int max_attrs)
{
	const char *eq;
	size_t nlen, vlen, i;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 1;
	if (++r->nattrs > max_attrs) {
		mark_bad(r, "more than %d attributes", max_attrs);
		return 0;
	}
	if (memchr(line, '\0', len) != NULL) {
		mark_bad(r, "a line holds a NUL octet");
		return 0;
	}
	eq = memchr(line, '=', len);
	if (eq == NULL || eq == line) {
		mark_bad(r, "a line is not name=value: \"%.*s\"", (int)(len > 40 ? 40 : len), line);
		return 0;
	}
	nlen = (size_t)(eq - line);
	vlen = len - nlen - 1;
	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		char *dst = (char *)r + kept[i].off;
		int *cut = kept[i].cut ? (int *)((char *)r + kept[i].cut) : NULL;

		if (strlen(kept[i].name) != nlen || memcmp(kept[i].name, line, nlen) != 0)
			continue;
		if (dst[0] != '\0' || (cut != NULL && *cut)) {
			mark_bad(r, "attribute %s appears twice", kept[i].name);
			return 0;
		}
		if (dst == r->sender)
			take_sender_domain(r, eq + 1, vlen);
		if (vlen >= kept[i].size) {
			if (cut == NULL) {
				mark_bad(r, "attribute %s is too long", kept[i].name);
				return 0;
			}
			*cut = 1;
			vlen = kept[i].size - 1;
		}
		memcpy(dst, eq + 1, vlen);
		dst[vlen] = '\0';
		return 0;
	}
	return 0; /* an attribute we do not use */
}

int policy_request_check(const struct policy_request *r, struct err *e)
{
	unsigned char a[16];

	if (r->bad)
		return err_set(e, ERR_INPUT, "bad_request", "%s", r->why);
	if (strcmp(r->request, "smtpd_access_policy") != 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "request=%.32s is not smtpd_access_policy", r->request);
	if (r->client_address[0] == '\0')
		return err_set(e, ERR_INPUT, "bad_request", "no client_address attribute");
	if (inet_pton(AF_INET, r->client_address, a) != 1 &&
	    inet_pton(AF_INET6, r->client_address, a) != 1)
		return err_set(e, ERR_INPUT, "bad_request",
		               "client_address=%.64s is not an IP address", r->client_address);
	return 0;
}

int policy_sender_domain(const struct policy_request *r, char *out, size_t size, struct err *why)
{
	out[0] = '\0';
	if (r->sender_domain_cut)
		return err_set(why, ERR_INPUT, "bad_name",
		               "the domain name is longer than %d octets", POLICY_DOMAIN_MAX - 1);
	if (r->sender_domain[0] == '\0')
		return 0; /* the null sender, or no '@': nothing to ask about */
	return name_canon_domain(r->sender_domain, out, size, why);
}

/* The length of the UTF-8 sequence at p (at most n octets), 0 when it is not one:
 * overlong forms, surrogates and code points above U+10FFFF are not. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	unsigned long cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void policy_helo_for_query(const char *helo, char *out, size_t size)
{
	const unsigned char *p = (const unsigned char *)helo;
	size_t n = strlen(helo), o = 0;

	if (size == 0)
		return;
	while (n > 0) {
		size_t len = utf8_len(p, n);

		if (len <= 1) {
			if (o + 1 >= size)
				break;
			out[o++] = len == 1 && p[0] >= 0x20 && p[0] != 0x7f ? (char)p[0] : '?';
			len = 1;
		} else {
			if (o + len >= size)
				break;
			memcpy(out + o, p, len);
			o += len;
		}
		p += len;
		n -= len;
	}
	out[o] = '\0';
}
