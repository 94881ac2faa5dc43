/*
 * mailaddr.c - the authors of a message: its From field (RFC 5322 §3.6.2),
 * a mailbox-list (§3.4) read with the obsolete forms of §4.4 that a mail
 * reader still shows (CFWS between the atoms of an address, "Mr. Smith",
 * empty list members, a source route in the angle brackets, "From :").
 *
 * Enforcement (verify.c) is only as good as this reading: every mailbox a
 * reader could show as the author must come out here, and anything that a
 * reader might show differently from what is read here is an error, never
 * a guess.  So:
 *
 *   - the value is tokenised once (atoms, quoted strings, specials), with
 *     comments and folding skipped between tokens and nowhere else;
 *   - a group ("g: a@b;"), a domain literal, an unclosed comment or quote,
 *     a word where the grammar has none ("a@b <c@d>"), a control character
 *     or NUL, or a non-ASCII octet in an address (this relay does not offer
 *     SMTPUTF8, so a U-label domain can only be a disguise) is an error;
 *   - every domain goes through dns_name_canon (lowercase, one trailing dot
 *     removed) and name_check_domain (LDH labels, A-labels for IDNs), the
 *     same functions every other name comparison in the project uses;
 *   - every mailbox is returned; how many are acceptable is the caller's
 *     rule (verify.c refuses more than one).
 *
 * The field itself is found with lib/mail/header, the reader lib/dkim splits
 * messages with (the same line ends, the same fields), so that the field read
 * here is the field the signatures cover.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/text.h"
#include "core/utf8.h"
#include "pki/name.h"
#include "dns/dns.h"
#include "mail/header.h"
#include "relay.h"

#define LOCAL_MAX 64  /* RFC 5321 §4.5.3.1.1 */
#define MAX_WORDS 128 /* words in one phrase or local part */

_Static_assert(2 * LOCAL_MAX + 3 < RELAY_ADDR_MAX, "a quoted local part fits an address");

enum tok_kind { TOK_END = 0, TOK_ATOM, TOK_QUOTED, TOK_LITERAL, TOK_SPECIAL };

struct tok {
	enum tok_kind kind;
	char c;        /* TOK_SPECIAL: the character */
	const char *p; /* TOK_ATOM: the atom; TOK_QUOTED: the content between the quotes */
	size_t n;
	int eightbit; /* holds an octet >= 0x80 */
};

struct scan {
	const char *p, *end;
	struct tok t; /* the token at p (one-token lookahead) */
	struct err *e;
	int utf8; /* the message came with SMTPUTF8: UTF-8 addresses (RFC 6532) */
};

static int bad(struct scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct scan *s, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(s->e, ERR_INPUT, "from_unreadable", "the From field %s", msg);
}

static int is_atext(unsigned char c)
{
	/* RFC 5322 atext, plus octets >= 0x80 (RFC 6532 UTF-8; refused in addresses) */
	return text_is_atext(c) || c >= 0x80;
}

/* A printable name for an octet, for messages. */
static const char *show(char c, char buf[8])
{
	unsigned char u = (unsigned char)c;

	if (u > 0x20 && u < 0x7f)
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", u);
	return buf;
}

/*
 * The octets the value may hold at all: no NUL or other control character
 * (RFC 5322 has them only in obsolete forms no reader agrees on), and a line
 * break only as folding (followed by a blank) or at the very end.
 */
static int check_octets(struct scan *s)
{
	char cb[8];

	for (const char *q = s->p; q < s->end; q++) {
		unsigned char c = (unsigned char)*q;

		if (c == '\r' && q + 1 < s->end && q[1] == '\n')
			q++; /* CRLF: judged as the LF */
		else if (c == '\r')
			return bad(s, "holds a bare CR");
		if (*q == '\n') {
			if (q + 1 < s->end && q[1] != ' ' && q[1] != '\t')
				return bad(s, "holds a line break that is not folding");
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return bad(s, "holds the control character %s", show(*q, cb));
	}
	return 0;
}

/* Skip white space, folding and comments (nested, with quoted pairs). */
static int skip_cfws(struct scan *s)
{
	while (s->p < s->end) {
		char c = *s->p;

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
					break;
			} else if (*s->p == '(') {
				depth++;
			} else if (*s->p == ')') {
				depth--;
			}
			s->p++;
		} while (depth > 0 && s->p < s->end);
		if (depth > 0)
			return bad(s, "has a comment that is not closed");
	}
	return 0;
}

/* Read the token at s->p into s->t (after comments and folding). */
static int advance(struct scan *s)
{
	struct tok *t = &s->t;
	char cb[8];

	memset(t, 0, sizeof(*t));
	if (skip_cfws(s) < 0)
		return -1;
	if (s->p == s->end)
		return 0; /* TOK_END */
	t->p = s->p;
	if (is_atext((unsigned char)*s->p)) {
		t->kind = TOK_ATOM;
		while (s->p < s->end && is_atext((unsigned char)*s->p))
			t->eightbit |= (unsigned char)*s->p++ >= 0x80;
		t->n = (size_t)(s->p - t->p);
		return 0;
	}
	if (*s->p == '"' || *s->p == '[') {
		char close = *s->p == '"' ? '"' : ']';

		t->kind = close == '"' ? TOK_QUOTED : TOK_LITERAL;
		t->p = ++s->p;
		while (s->p < s->end && *s->p != close) {
			if (*s->p == '\\' && ++s->p == s->end)
				break;
			t->eightbit |= (unsigned char)*s->p++ >= 0x80;
		}
		if (s->p == s->end)
			return bad(s, "has a %s that is not closed",
			           close == '"' ? "quoted string" : "domain literal");
		t->n = (size_t)(s->p++ - t->p);
		return 0;
	}
	if (strchr("<>@,.:;", *s->p) == NULL)
		return bad(s, "holds %s where no address, name or separator may be",
		           show(*s->p, cb));
	t->kind = TOK_SPECIAL;
	t->c = *s->p++;
	t->n = 1;
	return 0;
}

static int at_special(const struct scan *s, char c)
{
	return s->t.kind == TOK_SPECIAL && s->t.c == c;
}

/* What the current token is, for messages. */
static const char *what(const struct scan *s, char buf[8])
{
	switch (s->t.kind) {
	case TOK_END:
		return "the end";
	case TOK_ATOM:
	case TOK_QUOTED:
		return "a word";
	case TOK_LITERAL:
		return "a domain literal";
	case TOK_SPECIAL:
		break;
	}
	return show(s->t.c, buf);
}

/* Append n octets to out (size bytes, kept NUL-terminated); -1 when they do not fit. */
static int append(char *out, size_t size, size_t *len, const char *p, size_t n)
{
	if (*len + n >= size)
		return -1;
	memcpy(out + *len, p, n);
	*len += n;
	out[*len] = '\0';
	return 0;
}

/* The content of a quoted string, quoted pairs and folding removed. */
static int unquote(const struct tok *t, char *out, size_t size, size_t *len)
{
	for (size_t i = 0; i < t->n; i++) {
		char c = t->p[i];

		if (c == '\\')
			c = t->p[++i];
		else if (c == '\r' || c == '\n')
			continue;
		if (append(out, size, len, &c, 1) < 0)
			return -1;
	}
	return 0;
}

/*
 * domain = dot-atom / obs-domain: atoms and dots, CFWS between them, one
 * trailing dot allowed (a fully qualified name); the text into text.
 */
static int domain_text(struct scan *s, char text[DNS_NAME_MAX + 1])
{
	size_t n = 0;
	char cb[8];

	text[0] = '\0';
	if (s->t.kind == TOK_LITERAL)
		return bad(s,
		           "names a domain literal ([...]); no signature can be aligned with it");
	for (;;) {
		if (s->t.kind != TOK_ATOM)
			return bad(s, "has an address whose domain is %s", what(s, cb));
		if (s->t.eightbit && !s->utf8)
			return bad(s,
			           "has a domain with non-ASCII octets; write it in its xn-- form");
		if (append(text, DNS_NAME_MAX + 1, &n, s->t.p, s->t.n) < 0)
			return bad(s, "has a domain longer than %d octets", DNS_NAME_MAX - 3);
		if (advance(s) < 0)
			return -1;
		if (!at_special(s, '.'))
			return 0;
		if (append(text, DNS_NAME_MAX + 1, &n, ".", 1) < 0)
			return bad(s, "has a domain longer than %d octets", DNS_NAME_MAX - 3);
		if (advance(s) < 0)
			return -1;
		if (at_special(s, '.'))
			return bad(s, "has a domain with an empty label");
		if (s->t.kind != TOK_ATOM)
			return 0; /* the trailing dot of a fully qualified name */
	}
}

/* An author's domain, canonical: lowercase, no trailing dot, a valid host name. */
static int domain(struct scan *s, char *out, size_t size)
{
	char text[DNS_NAME_MAX + 1];
	struct err ne = {0};

	if (domain_text(s, text) < 0)
		return -1;
	if (!name_is_ascii(text)
	        ? name_canon_idn(text, out, size, &ne) < 0
	        : dns_name_canon(text, out, size, &ne) < 0 || name_check_domain(out, &ne) < 0) {
		out[0] = '\0';
		return bad(s, "has an address whose domain %.80s is not a host name (%s)", text,
		           ne.msg);
	}
	return 0;
}

/* The words read before an '@' or a '<': a local part or a display name. */
struct words {
	size_t n;                /* all of them, dots included */
	struct tok w[MAX_WORDS]; /* the first MAX_WORDS, in order */
};

static int read_words(struct scan *s, struct words *ws)
{
	ws->n = 0;
	while (s->t.kind == TOK_ATOM || s->t.kind == TOK_QUOTED || at_special(s, '.')) {
		if (ws->n < MAX_WORDS) /* a display name may be longer: it is only skipped */
			ws->w[ws->n] = s->t;
		ws->n++;
		if (advance(s) < 0)
			return -1;
	}
	return 0;
}

static int is_dot_atom(const char *t)
{
	if (*t == '\0' || *t == '.' || t[strlen(t) - 1] == '.' || strstr(t, "..") != NULL)
		return 0;
	for (; *t; t++)
		if (*t != '.' && !is_atext((unsigned char)*t))
			return 0;
	return 1;
}

/* A word's text (a quoted string unquoted) or a dot, appended to local. */
static int local_piece(const struct tok *t, char *local, size_t size, size_t *n)
{
	if (t->kind == TOK_QUOTED)
		return unquote(t, local, size, n);
	return append(local, size, n, t->p, t->n);
}

/*
 * local-part = dot-atom / quoted-string / obs-local-part (word *("." word)),
 * lowercase into addr; written back quoted when it is not a dot-atom.
 */
static int local_part(struct scan *s, const struct words *ws, char *addr, size_t size)
{
	char local[LOCAL_MAX + 2] = "", cb[8];
	size_t n = 0, k = 0;

	if (ws->n > MAX_WORDS)
		return bad(s, "has a local part longer than %d octets", LOCAL_MAX);
	for (size_t i = 0; i < ws->n; i++) {
		const struct tok *t = &ws->w[i];

		if ((i % 2 == 0) != (t->kind != TOK_SPECIAL))
			return bad(s, "has a local part that is not words joined by dots");
		if (t->eightbit && !s->utf8)
			return bad(
			    s, "has an address with non-ASCII octets (SMTPUTF8 is not offered)");
		if (local_piece(t, local, sizeof(local), &n) < 0 || n > LOCAL_MAX)
			return bad(s, "has a local part longer than %d octets", LOCAL_MAX);
	}
	if (ws->n % 2 == 0)
		return bad(s, "has an address with %s local part",
		           ws->n ? "a dot ending its" : "no");
	for (char *c = local; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return bad(s, "has a local part holding the control character %s",
			           show(*c, cb));
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c + 32);
	}
	if (is_dot_atom(local))
		return snprintf(addr, size, "%s", local) < (int)size ? 0 : -1;
	/* quoted: written as it must be, escaping what must be (2 * 64 + 3 < size) */
	addr[k++] = '"';
	for (const char *c = local; *c; c++) {
		if (*c == '"' || *c == '\\')
			addr[k++] = '\\';
		addr[k++] = *c;
	}
	addr[k++] = '"';
	addr[k] = '\0';
	return 0;
}

/*
 * A UTF-8 address (only read under SMTPUTF8) in the one canonical form of every name
 * (pki/name: well-formed UTF-8, no control or invisible code point, lowercase, NFC),
 * so that it compares with the key server's records and the signatures' i= byte for
 * byte.  A quoted UTF-8 local part has no canonical form and is refused.
 */
static int utf8_address(struct scan *s, struct relay_author *au)
{
	char canon[RELAY_ADDR_MAX];
	struct err ne = {0};

	if (name_canon_address(au->addr, canon, sizeof(canon), &ne) < 0)
		return bad(s, "has an address that is not a valid internationalised address (%s)",
		           ne.msg);
	memcpy(au->addr, canon, strlen(canon) + 1);
	return 0;
}

/* addr-spec after its local part's words, s->t at the '@'. */
static int addr_spec(struct scan *s, const struct words *ws, struct relay_author *au)
{
	size_t n;

	if (local_part(s, ws, au->addr, sizeof(au->addr)) < 0)
		return -1;
	if (advance(s) < 0 || domain(s, au->domain, sizeof(au->domain)) < 0)
		return -1;
	n = strlen(au->addr);
	if ((size_t)snprintf(au->addr + n, sizeof(au->addr) - n, "@%s", au->domain) >=
	    sizeof(au->addr) - n)
		return bad(s, "has an address that is too long");
	return name_is_ascii(au->addr) ? 0 : utf8_address(s, au);
}

/* obs-route = obs-domain-list ":" ; the route is read and forgotten. */
static int obs_route(struct scan *s)
{
	char ignore[DNS_NAME_MAX + 1], cb[8];
	int seen = 0;

	/* obs-domain-list = *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain]) */

	for (;;) {
		while (at_special(s, ','))
			if (advance(s) < 0)
				return -1;
		if (!at_special(s, '@'))
			break;
		if (advance(s) < 0 || domain_text(s, ignore) < 0)
			return -1;
		seen = 1;
	}
	if (!seen || !at_special(s, ':'))
		return bad(s, "has a source route followed by %s, not ':'", what(s, cb));
	return advance(s);
}

/* name-addr = [display-name] angle-addr, after the display name's words. */
static int angle_addr(struct scan *s, const struct words *name, struct relay_author *au)
{
	struct words *local = NULL;
	char cb[8];
	int rc = -1;

	/* phrase / obs-phrase: word *(word / "." / CFWS), so never a leading dot */
	if (name->n > 0 && name->w[0].kind == TOK_SPECIAL)
		return bad(s, "has a display name that starts with a dot");
	if (advance(s) < 0)
		return -1;
	if ((at_special(s, '@') || at_special(s, ',')) && obs_route(s) < 0)
		return -1;
	if ((local = malloc(sizeof(*local))) == NULL)
		return err_set(s->e, ERR_INTERNAL, "internal", "out of memory");
	if (read_words(s, local) < 0)
		goto out;
	if (!at_special(s, '@')) {
		bad(s, "has an angle address without '@' (%s after the local part)", what(s, cb));
		goto out;
	}
	if (addr_spec(s, local, au) < 0)
		goto out;
	if (!at_special(s, '>')) {
		bad(s, "has %s where the '>' closing the address should be", what(s, cb));
		goto out;
	}
	rc = advance(s);
out:
	free(local);
	return rc;
}

/* mailbox = name-addr / addr-spec: the words first, then what follows them decides. */
static int mailbox(struct scan *s, struct relay_author *au)
{
	struct words *ws = malloc(sizeof(*ws));
	char cb[8];
	int rc = -1;

	if (ws == NULL)
		return err_set(s->e, ERR_INTERNAL, "internal", "out of memory");
	if (read_words(s, ws) < 0)
		goto out;
	if (at_special(s, '<'))
		rc = angle_addr(s, ws, au);
	else if (at_special(s, '@') && ws->n > 0)
		rc = addr_spec(s, ws, au);
	else if (at_special(s, ':'))
		bad(s, "is a group (\"name: ...;\"); From names mailboxes only");
	else
		bad(s, "has %s where a mailbox should be", what(s, cb));
out:
	free(ws);
	return rc;
}

int relay_authors_parse(const char *value, size_t len, struct relay_authors *out, struct err *e)
{
	return relay_authors_parse_opt(value, len, 0, out, e);
}

int relay_authors_parse_opt(const char *value, size_t len, int utf8, struct relay_authors *out,
                            struct err *e)
{
	struct scan s = {.p = value, .e = e, .utf8 = utf8};
	char cb[8];

	memset(out, 0, sizeof(*out));
	if (value == NULL)
		return bad(&s, "is missing");
	s.end = value + len;
	if (check_octets(&s) < 0 || advance(&s) < 0)
		goto fail;
	/* mailbox-list / obs-mbox-list: empty members between the commas are allowed */
	while (s.t.kind != TOK_END) {
		if (at_special(&s, ',')) {
			if (advance(&s) < 0)
				goto fail;
			continue;
		}
		if (out->n == RELAY_AUTHORS_MAX) {
			bad(&s, "names more than %d mailboxes", RELAY_AUTHORS_MAX);
			goto fail;
		}
		if (mailbox(&s, &out->a[out->n]) < 0)
			goto fail;
		out->n++;
		if (s.t.kind != TOK_END && !at_special(&s, ',')) {
			bad(&s, "has %s after an address where ',' or the end should be",
			    what(&s, cb));
			goto fail;
		}
	}
	if (out->n == 0) {
		bad(&s, "names no mailbox");
		goto fail;
	}
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

/* RFC 5322 field names are printable ASCII: a name with anything else may read as
 * "From" to one program and not to another. */
static int check_field_name(const struct mail_field *f, struct err *e)
{
	char cb[8];

	for (size_t i = 0; i < f->nlen; i++) {
		unsigned char c = (unsigned char)f->name[i];

		if (c <= 0x20 || c >= 0x7f)
			return err_set(e, ERR_INPUT, "bad_field_name",
			               "a header field name holds %s; RFC 5322 field names are "
			               "printable ASCII",
			               show(f->name[i], cb));
	}
	return 0;
}

int relay_message_authors(const char *msg, size_t len, struct relay_authors *out, struct err *e)
{
	return relay_message_authors_opt(msg, len, 0, out, e);
}

int relay_message_authors_opt(const char *msg, size_t len, int utf8, struct relay_authors *out,
                              struct err *e)
{
	struct mail_header h;
	struct mail_field f, from;
	size_t count = 0;

	memset(out, 0, sizeof(*out));
	mail_header_init(&h, msg, len);
	while (mail_header_next(&h, &f) == 1) {
		if (f.bad != NULL)
			return err_set(e, ERR_INPUT, "bad_header", "%s", f.bad);
		if (check_field_name(&f, e) < 0)
			return -1;
		/* RFC 6532 §3.2: header values are UTF-8, never some other 8-bit text */
		if (utf8 && !utf8_valid((const unsigned char *)f.value, f.vlen))
			return err_set(e, ERR_INPUT, "bad_header",
			               "the header field %.*s is not well-formed UTF-8 (RFC 6532)",
			               (int)(f.nlen > 60 ? 60 : f.nlen), f.name);
		/* the reader trims the blanks before the colon: "From :" (obs-from) is From */
		if (mail_field_is(&f, "From")) {
			from = f;
			count++;
		}
	}
	if (count == 0)
		return err_set(e, ERR_INPUT, "from_missing",
		               "the message has no From field; RFC 5322 requires exactly one");
	if (count > 1)
		return err_set(e, ERR_INPUT, "from_several",
		               "the message has %zu From fields; RFC 5322 allows exactly one",
		               count);
	return relay_authors_parse_opt(from.value, from.vlen, utf8, out, e);
}

const char *relay_addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* Read from the copy dkim_msg_parse makes (every line end CRLF), as the signer and the
 * verifier read the message: a bare CR is a line end there, not a bad octet. */
int relay_from_address(const char *msg, size_t len, int utf8, char *addr, size_t size)
{
	struct relay_authors *au = NULL;
	struct dkim_msg m;
	struct err e = {0};
	int rc = -1;

	if (size > 0)
		addr[0] = '\0';
	if (msg == NULL || size == 0 || dkim_msg_parse(msg, len, &m, &e) < 0)
		return -1;
	if ((au = malloc(sizeof(*au))) != NULL &&
	    relay_message_authors_opt(m.buf, m.len, utf8, au, &e) == 0 && au->n == 1 &&
	    strlen(au->a[0].addr) < size) {
		memcpy(addr, au->a[0].addr, strlen(au->a[0].addr) + 1);
		rc = 0;
	}
	free(au);
	dkim_msg_free(&m);
	return rc;
}
