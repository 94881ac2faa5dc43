/*
 * authres.c - the Authentication-Results header field (RFC 8601).
 *
 *   Authentication-Results: mx.example.net;
 *   	dkim=pass (anchored key) header.d=example.com header.i=@example.com
 *   	 header.s=s2026 header.a=ed25519-sha256 header.b=Jq2b7hUuXwZs;
 *   	dkim=fail reason="body hash did not verify" header.d=...;
 *   	dkim=neutral reason="body hash not checked: partial view" header.d=...;
 *   	csa=pass smtp.helo=mx.example.com (192.0.2.1)
 *
 * One result per signature, top to bottom ("dkim=none" without any), and the
 * CSA result of the connection when there is one.  What comes from the
 * message (domains, selectors, identities, reasons) is written as a token
 * when it is one and as a quoted string otherwise: quotes and backslashes
 * escaped, control characters dropped, non-ASCII octets replaced by '?', so
 * that nothing a sender wrote can end the field or add a result of its own.
 * Lines are folded at blanks to stay under 78 characters (inside a quoted
 * string the fold keeps the blank, so unfolding gives the same text back).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

#define LINE_MAX_CHARS 76 /* physical line, without CRLF: under RFC 5322's 78 */

struct buf {
	char *p;
	size_t n, cap;
	int oom;
};

static void put_mem(struct buf *b, const char *s, size_t len)
{
	if (b->oom)
		return;
	if (b->n + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + len + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
}

static void put_str(struct buf *b, const char *s)
{
	put_mem(b, s, strlen(s));
}

static void put_ch(struct buf *b, char c)
{
	put_mem(b, &c, 1);
}

/* RFC 2045 token: printable ASCII but for blanks and tspecials. */
static int is_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?=", *s) != NULL)
			return 0;
	return 1;
}

/* A domain name as RFC 8601's pvalue takes it bare: LDH labels and dots. */
static int is_domain_name(const char *s)
{
	if (*s == '\0' || *s == '.')
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
		      (*p == '.' && p[1] != '.')))
			return 0;
	return 1;
}

/* A local part bare: a dot-atom of atext (RFC 5322 §3.2.3), or empty. */
static int is_local_part(const char *s, size_t len)
{
	for (size_t k = 0; k < len; k++) {
		unsigned char c = (unsigned char)s[k];
		if (c == '.' ? (k == 0 || k + 1 == len || s[k + 1] == '.')
		             : !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		                 (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c)))
			return 0;
	}
	return 1;
}

/* A quoted string of s: quotes and backslashes escaped, line breaks and tabs made
 * blanks, other controls dropped, non-ASCII octets replaced. */
static void put_quoted(struct buf *b, const char *s)
{
	put_ch(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			put_ch(b, '\\');
			put_ch(b, (char)c);
		} else if (c == '\t' || c == '\r' || c == '\n') {
			put_ch(b, ' ');
		} else if (c < 0x20 || c == 0x7f) {
			continue;
		} else {
			put_ch(b, c >= 0x80 ? '?' : (char)c);
		}
	}
	put_ch(b, '"');
}

static void put_value(struct buf *b, const char *s)
{
	if (is_token(s))
		put_str(b, s);
	else
		put_quoted(b, s);
}

/* " ptype.prop=value" with a domain name written bare when it is one. */
static void put_prop(struct buf *b, const char *name, const char *v, int domain)
{
	put_ch(b, ' ');
	put_str(b, name);
	put_ch(b, '=');
	if (domain && is_domain_name(v))
		put_str(b, v);
	else
		put_value(b, v);
}

/* header.i: [local-part] "@" domain written bare when both parts allow it. */
static void put_identity(struct buf *b, const char *i)
{
	const char *at = strrchr(i, '@');

	put_str(b, " header.i=");
	if (at != NULL && is_local_part(i, (size_t)(at - i)) && is_domain_name(at + 1))
		put_str(b, i);
	else
		put_quoted(b, i);
}

static const char *source_comment(const struct relay_sig *s)
{
	switch (s->source) {
	case RELAY_KEY_ANCHOR:
		return " (anchored key)";
	case RELAY_KEY_USER:
		return " (user key)";
	case RELAY_KEY_DNS:
	case RELAY_KEY_NONE:
		break;
	}
	return "";
}

/* The reason of a signature whose body hash was not checked (a partial view, PROTOCOL.md
 * §12.12): RFC 8601 §2.7.1's neutral, "not otherwise able to be processed", not pass. */
#define AUTHRES_VIEW_REASON "body hash not checked: partial view"

/* One resinfo (unfolded) for a signature's verdict; headers_only: the body hash unchecked. */
static void put_sig(struct buf *b, const struct relay_sig *s, int headers_only)
{
	const struct dkim_result *r = &s->r;

	put_str(b, "dkim=");
	if (r->status == DKIM_PASS && headers_only) {
		put_str(b, dkim_status_name(DKIM_NEUTRAL));
		put_str(b, " reason=");
		put_quoted(b, AUTHRES_VIEW_REASON);
	} else if (r->status == DKIM_PASS) {
		put_str(b, dkim_status_name(r->status));
		put_str(b, source_comment(s));
		if (r->testing)
			put_str(b, " (key in testing mode)");
	} else {
		put_str(b, dkim_status_name(r->status));
	}
	if (r->status != DKIM_PASS && r->reason[0] != '\0') {
		put_str(b, " reason=");
		put_quoted(b, r->reason);
	}
	if (r->d[0] != '\0')
		put_prop(b, "header.d", r->d, 1);
	if (r->i[0] != '\0')
		put_identity(b, r->i);
	if (r->s[0] != '\0')
		put_prop(b, "header.s", r->s, 1);
	if (r->a[0] != '\0')
		put_prop(b, "header.a", r->a, 0);
	if (r->b[0] != '\0')
		put_prop(b, "header.b", r->b, 0);
}

/* An address literal: hex digits, dots and colons only (else it is left out). */
static int is_ip_text(const char *ip)
{
	if (*ip == '\0' || strlen(ip) > 45)
		return 0;
	for (; *ip; ip++)
		if (!((*ip >= '0' && *ip <= '9') || (*ip >= 'a' && *ip <= 'f') ||
		      (*ip >= 'A' && *ip <= 'F') || *ip == '.' || *ip == ':'))
			return 0;
	return 1;
}

static int is_keyword(const char *s)
{
	if (*s == '\0' || strlen(s) > 15)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '-'))
			return 0;
	return 1;
}

/*
 * Fold one logical line into out: break before a blank when the physical line
 * would pass LINE_MAX_CHARS.  Outside quoted strings and comments the blank
 * becomes the continuation's tab; inside, it stays (CRLF then the blank), so
 * that unfolding (removing the CRLF) restores the text exactly.  A blank
 * escaped by a backslash is never a break.  A word longer than a line stays
 * whole (the line is then longer, as RFC 5322 allows up to 998).
 */
static void fold_line(struct buf *out, const char *line)
{
	size_t len = strlen(line), start = 0, col = 0, last = 0;
	int inq = 0, depth = 0, esc = 0, last_plain = 0, have = 0;

	for (size_t k = 0; k < len; k++) {
		char c = line[k];

		if (esc) {
			esc = 0;
		} else if (c == '\\' && (inq || depth > 0)) {
			esc = 1;
		} else if (c == '"' && depth == 0) {
			inq = !inq;
		} else if (c == '(' && !inq) {
			depth++;
		} else if (c == ')' && !inq && depth > 0) {
			depth--;
		} else if (c == ' ' && k > 0) {
			if (have && col > LINE_MAX_CHARS && last > start) {
				/* flush up to the last break, break there */
				put_mem(out, line + start, last - start);
				put_str(out, last_plain ? "\r\n\t" : "\r\n ");
				start = last + 1;
				col = 1 + (k - start);
			}
			last = k;
			last_plain = !inq && depth == 0;
			have = 1;
		}
		col++;
	}
	if (have && col > LINE_MAX_CHARS && last > start) {
		put_mem(out, line + start, last - start);
		put_str(out, last_plain ? "\r\n\t" : "\r\n ");
		start = last + 1;
	}
	put_mem(out, line + start, len - start);
}

/* The resinfo of index k (k == number of signatures: the CSA one), unfolded. */
static void put_resinfo(struct buf *b, const struct relay_auth *a, size_t k, const char *ip,
                        const char *helo, const char *csa)
{
	if (a != NULL && k < a->nsigs) {
		put_sig(b, &a->sigs[k], a->headers_only);
		return;
	}
	if (k == 0 && (a == NULL || a->nsigs == 0)) {
		put_str(b, "dkim=none");
		return;
	}
	put_str(b, "csa=");
	put_str(b, csa);
	if (helo != NULL && *helo)
		put_prop(b, "smtp.helo", helo, 1);
	if (ip != NULL && is_ip_text(ip)) {
		put_str(b, " (");
		put_str(b, ip);
		put_ch(b, ')');
	}
}

char *relay_authres_field(const char *authserv_id, const struct relay_auth *a, const char *ip,
                          const char *helo, const char *csa, struct err *e)
{
	struct buf out = {0}, line = {0};
	size_t ndkim = a != NULL && a->nsigs > 0 ? a->nsigs : 1;
	size_t nres = ndkim + (csa != NULL && is_keyword(csa) ? 1 : 0);

	put_str(&line, "Authentication-Results: ");
	put_value(&line, authserv_id != NULL && *authserv_id ? authserv_id : "localhost");
	put_ch(&line, ';');
	fold_line(&out, line.p != NULL ? line.p : "");
	for (size_t k = 0; k < nres; k++) {
		line.n = 0;
		put_ch(&line, '\t');
		put_resinfo(&line, a, k, ip, helo, csa);
		if (k + 1 < nres)
			put_ch(&line, ';');
		put_str(&out, "\r\n");
		fold_line(&out, line.p != NULL ? line.p : "");
	}
	free(line.p);
	if (out.oom || line.oom) {
		free(out.p);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	return out.p;
}
