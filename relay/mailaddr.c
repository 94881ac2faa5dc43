/*
 * mailaddr.c - the address of a From: header field (RFC 5322 §3.4, §3.6.2).
 *
 * From: is a mailbox-list: display names (atoms, quoted strings, encoded
 * words), comments anywhere (nested, with quoted pairs), the address bare
 * or in angle brackets, with folding white space between the tokens.  The
 * relay needs the one address it names, lowercase, to align signatures
 * with: a list of several, a group, or anything it cannot read is "" (no
 * address), never a guess.  Domain literals ([192.0.2.1]) are refused too:
 * no signature can align with them.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "relay.h"

#define MAX_FROM_FIELD 8192 /* a From: field longer than this is not read */

struct scan {
	const char *p, *end;
};

static int is_atext(unsigned char c)
{
	/* RFC 5322 atext, plus octets >= 0x80 (RFC 6532 UTF-8) */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL || c >= 0x80;
}

/* Skip white space, line breaks and comments; -1 on an unclosed comment. */
static int skip_cfws(struct scan *s)
{
	while (s->p < s->end) {
		unsigned char c = (unsigned char)*s->p;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			s->p++;
			continue;
		}
		if (c != '(')
			return 0;
		int depth = 0;
		do {
			if (*s->p == '\\') {
				if (++s->p == s->end)
					return -1;
			} else if (*s->p == '(') {
				depth++;
			} else if (*s->p == ')') {
				depth--;
			}
			s->p++;
		} while (depth > 0 && s->p < s->end);
		if (depth > 0)
			return -1;
	}
	return 0;
}

/* Append c to out[*n] (room size, keeping a NUL); -1 when full.  out NULL: skip only. */
static int put(char *out, size_t size, size_t *n, char c)
{
	if (out == NULL || n == NULL)
		return 0;
	if (*n + 1 >= size)
		return -1;
	out[(*n)++] = c;
	out[*n] = '\0';
	return 0;
}

/* A quoted string at s->p (the opening quote), its content unescaped into out. */
static int quoted(struct scan *s, char *out, size_t size, size_t *n)
{
	s->p++;
	while (s->p < s->end && *s->p != '"') {
		char c = *s->p++;

		if (c == '\\') {
			if (s->p == s->end)
				return -1;
			c = *s->p++;
		} else if (c == '\r' || c == '\n') {
			continue; /* folding inside the string */
		}
		if (put(out, size, n, c) < 0)
			return -1;
	}
	if (s->p == s->end)
		return -1;
	s->p++;
	return 0;
}

/* One dot-atom-ish run of atext and dots into out (lowercased). */
static int atom(struct scan *s, char *out, size_t size, size_t *n)
{
	const char *start = s->p;

	while (s->p < s->end && (is_atext((unsigned char)*s->p) || *s->p == '.')) {
		char c = *s->p++;

		if (put(out, size, n, (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c) < 0)
			return -1;
	}
	return s->p > start ? 0 : -1;
}

/* A local part that needs no quotes: dot-atom (no leading, trailing or double dot). */
static int is_dot_atom(const char *t)
{
	if (*t == '\0' || *t == '.' || t[strlen(t) - 1] == '.' || strstr(t, "..") != NULL)
		return 0;
	for (; *t; t++)
		if (*t != '.' && !is_atext((unsigned char)*t))
			return 0;
	return 1;
}

static int is_domain(const char *d)
{
	if (!is_dot_atom(d))
		return 0;
	for (; *d; d++)
		if (!((*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') || *d == '-' ||
		      *d == '.' || *d == '_' || (unsigned char)*d >= 0x80))
			return 0;
	return 1;
}

/*
 * addr-spec at s->p: local-part "@" domain, with CFWS between the tokens
 * (obs-local-part); lowercase into addr.  A local part that is not a dot-atom
 * is kept quoted, as it must be written.
 */
static int addr_spec(struct scan *s, char *addr, size_t size)
{
	char local[RELAY_ADDR_MAX] = "", domain[256] = "";
	size_t ln = 0, dn = 0;

	for (;;) {
		if (skip_cfws(s) < 0 || s->p == s->end)
			return -1;
		if (*s->p == '"') {
			if (quoted(s, local, sizeof(local), &ln) < 0)
				return -1;
		} else if (atom(s, local, sizeof(local), &ln) < 0) {
			return -1;
		}
		if (skip_cfws(s) < 0 || s->p == s->end)
			return -1;
		if (*s->p == '@')
			break;
		if (*s->p != '.' || put(local, sizeof(local), &ln, '.') < 0)
			return -1;
		s->p++;
	}
	s->p++;
	if (skip_cfws(s) < 0 || s->p == s->end || *s->p == '[')
		return -1;
	if (atom(s, domain, sizeof(domain), &dn) < 0 || !is_domain(domain) || ln == 0)
		return -1;
	for (char *c = local; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c + 32);
	if (is_dot_atom(local)) {
		if ((size_t)snprintf(addr, size, "%s@%s", local, domain) >= size)
			return -1;
		return 0;
	}
	/* Quoted local part: write it back quoted, escaping what must be. */
	size_t n = 0;
	if (put(addr, size, &n, '"') < 0)
		return -1;
	for (char *c = local; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return -1;
		if ((*c == '"' || *c == '\\') && put(addr, size, &n, '\\') < 0)
			return -1;
		if (put(addr, size, &n, *c) < 0)
			return -1;
	}
	if (put(addr, size, &n, '"') < 0 || put(addr, size, &n, '@') < 0)
		return -1;
	for (char *c = domain; *c; c++)
		if (put(addr, size, &n, *c) < 0)
			return -1;
	return 0;
}

/* Skip a display name (words: atoms, quoted strings, dots for obs-phrase). */
static int phrase(struct scan *s)
{
	for (;;) {
		if (skip_cfws(s) < 0)
			return -1;
		if (s->p == s->end)
			return 0;
		if (*s->p == '"') {
			if (quoted(s, NULL, 0, NULL) < 0)
				return -1;
		} else if (is_atext((unsigned char)*s->p) || *s->p == '.') {
			if (atom(s, NULL, 0, NULL) < 0)
				return -1;
		} else {
			return 0;
		}
	}
}

/* One mailbox: name-addr or addr-spec; s->p stops at the ',' after it or the end. */
static int mailbox(struct scan *s, char *addr, size_t size)
{
	struct scan save = *s;

	/* name-addr: an optional phrase, then "<" addr-spec ">". */
	if (phrase(s) == 0 && s->p < s->end && *s->p == '<') {
		s->p++;
		if (skip_cfws(s) < 0)
			return -1;
		if (s->p < s->end && *s->p == '@') { /* obs-route: @a,@b:addr-spec */
			while (s->p < s->end && *s->p != ':')
				s->p++;
			if (s->p == s->end)
				return -1;
			s->p++;
		}
		if (addr_spec(s, addr, size) < 0 || skip_cfws(s) < 0 || s->p == s->end ||
		    *s->p != '>')
			return -1;
		s->p++;
		return skip_cfws(s);
	}
	*s = save;
	if (addr_spec(s, addr, size) < 0)
		return -1;
	return skip_cfws(s);
}

int relay_mailbox_parse(const char *value, size_t len, char *addr, size_t size)
{
	struct scan s;
	char one[RELAY_ADDR_MAX];
	int found = 0;

	if (size == 0)
		return -1;
	addr[0] = '\0';
	if (value == NULL || len > MAX_FROM_FIELD)
		return -1;
	s.p = value;
	s.end = value + len;
	for (;;) {
		if (skip_cfws(&s) < 0)
			return -1;
		if (s.p == s.end)
			break;
		if (*s.p == ',') { /* obs-mbox-list: empty members */
			s.p++;
			continue;
		}
		if (mailbox(&s, one, sizeof(one)) < 0 || found++ > 0)
			return -1;
		if (s.p < s.end && *s.p != ',')
			return -1;
	}
	if (found != 1 || strlen(one) >= size)
		return -1;
	snprintf(addr, size, "%s", one);
	return 0;
}

const char *relay_addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* The From: fields of the header of msg: exactly one, its value in [*v, *v + *vlen). */
static int find_from(const char *msg, size_t len, const char **v, size_t *vlen)
{
	const char *p = msg, *end = msg + len, *found = NULL, *fend = NULL;
	int count = 0;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol != NULL ? eol + 1 : end;
		size_t linelen = (size_t)((eol != NULL ? eol : end) - p);

		if (linelen == 0 || (linelen == 1 && *p == '\r'))
			break; /* the blank line: the header ends */
		if (*p == ' ' || *p == '\t') {
			if (found != NULL && fend == p)
				fend = next; /* a continuation of the From: field */
		} else if (linelen >= 5 && strncasecmp(p, "from", 4) == 0) {
			const char *c = p + 4;
			while (c < p + linelen && (*c == ' ' || *c == '\t'))
				c++; /* obs-from: blanks before the colon */
			if (c < p + linelen && *c == ':') {
				count++;
				found = c + 1;
				fend = next;
			}
		}
		p = next;
	}
	if (count != 1)
		return -1;
	*v = found;
	*vlen = (size_t)(fend - found);
	return 0;
}

int relay_from_address(const char *msg, size_t len, char *addr, size_t size)
{
	const char *v;
	size_t vlen;

	if (size > 0)
		addr[0] = '\0';
	if (msg == NULL || find_from(msg, len, &v, &vlen) < 0)
		return -1;
	return relay_mailbox_parse(v, vlen, addr, size);
}
