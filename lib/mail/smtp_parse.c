/*
 * smtp_parse.c - SMTP command lines (RFC 5321 §4.1) and their arguments:
 * paths (§4.1.2), domains and address literals (§4.1.3), ESMTP parameters
 * (SIZE, RFC 1870; BODY, RFC 6152), AUTH (RFC 4954 §4) and the base64 of its
 * responses.  Every failure carries its reply.
 */
#include "core/text.h"
#include "core/utf8.h"
#include "mail/smtp.h"
#include "pki/name.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(struct smtp_command *out, struct err *e, int code, const char *status,
                const char *text)
{
	char slug[16];

	out->error.code = code;
	snprintf(out->error.status, sizeof(out->error.status), "%s", status);
	snprintf(out->error.text, sizeof(out->error.text), "%s", text);
	snprintf(slug, sizeof(slug), "smtp_%d", code);
	return err_set(e, ERR_INPUT, slug, "%d %s %s", code, status, text);
}

static int is_letdig(int c)
{
	return isascii(c) && isalnum(c);
}

int smtp_domain_valid(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			/* a label ends in Let-dig and is not empty */
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (is_letdig((unsigned char)s[i]) || (s[i] == '-' && label > 0)) {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

int smtp_address_literal_valid(const char *s, size_t len)
{
	char buf[64];
	unsigned char addr[16];
	size_t i, taglen;

	if (len < 3 || s[0] != '[' || s[len - 1] != ']')
		return 0;
	s++;
	len -= 2;
	if (len >= 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		if (len - 5 >= sizeof(buf))
			return 0;
		memcpy(buf, s + 5, len - 5);
		buf[len - 5] = '\0';
		return inet_pton(AF_INET6, buf, addr) == 1;
	}
	if (memchr(s, ':', len) == NULL) {
		if (len >= sizeof(buf))
			return 0;
		memcpy(buf, s, len);
		buf[len] = '\0';
		return inet_pton(AF_INET, buf, addr) == 1;
	}
	/* General-address-literal: Standardized-tag ":" 1*dcontent */
	taglen = (size_t)((const char *)memchr(s, ':', len) - s);
	if (!smtp_domain_valid(s, taglen) || memchr(s, '.', taglen) != NULL || taglen + 1 == len)
		return 0;
	for (i = taglen + 1; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 33 || c > 126 || (c >= 91 && c <= 93))
			return 0;
	}
	return 1;
}

/* Local-part = Dot-string / Quoted-string; returns its length or 0. */
static size_t local_part_len(const char *s, size_t len)
{
	size_t i = 0;

	if (len > 0 && s[0] == '"') {
		for (i = 1; i < len; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '"')
				return i + 1;
			if (c == '\\') {
				if (++i >= len || s[i] < 32 || s[i] > 126)
					return 0;
			} else if (c < 32 || c > 126) {
				return 0;
			}
		}
		return 0;
	}
	for (;;) {
		size_t start = i;

		while (i < len && text_is_atext((unsigned char)s[i]))
			i++;
		if (i == start)
			return 0;
		if (i < len && s[i] == '.')
			i++;
		else
			return i;
	}
}

int smtp_mailbox_valid(const char *s, size_t len)
{
	size_t l = local_part_len(s, len);

	if (l == 0 || l > SMTP_LOCAL_MAX || l + 1 >= len || s[l] != '@')
		return 0;
	s += l + 1;
	len -= l + 1;
	if (s[0] == '[')
		return smtp_address_literal_valid(s, len);
	return smtp_domain_valid(s, len);
}

/*
 * A mailbox with octets >= 0x80 (RFC 6531 §3.3: UTF-8 in the local part, U-labels in the
 * domain): well-formed UTF-8 and a name pki/name accepts (PROTOCOL.md "Names"), written
 * into out->path with the domain in A-labels so that routing and lookups see the one
 * spelling; the local part is kept as sent.  Whether SMTPUTF8 was given is the
 * session's check.  -1 with the reason in *why.
 */
static int utf8_mailbox(const char *mb, size_t len, struct smtp_command *out, const char **why)
{
	char in[SMTP_PATH_MAX], canon[SMTP_PATH_MAX];
	const char *at;
	struct err ne = {0};

	if (!utf8_valid((const unsigned char *)mb, len)) {
		*why = "is not well-formed UTF-8";
		return -1;
	}
	memcpy(in, mb, len);
	in[len] = '\0';
	at = strrchr(in, '@');
	if (at == NULL || name_canon_address(in, canon, sizeof(canon), &ne) < 0) {
		*why = "is not a valid internationalised address";
		return -1;
	}
	snprintf(out->path, sizeof(out->path), "%.*s%s", (int)(at - in), in, strrchr(canon, '@'));
	out->path_utf8 = 1;
	return 0;
}

/* Skip an A-d-l ("@a.example,@b.example:"); source routes are accepted and ignored. */
static int skip_source_route(const char **p, const char *end)
{
	const char *s = *p, *colon, *q;

	if (s >= end || *s != '@')
		return 0;
	colon = memchr(s, ':', (size_t)(end - s));
	if (colon == NULL)
		return -1;
	while (s < colon) {
		if (*s != '@')
			return -1;
		q = s + 1;
		while (q < colon && *q != ',')
			q++;
		if (!smtp_domain_valid(s + 1, (size_t)(q - s - 1)))
			return -1;
		s = q < colon ? q + 1 : q;
	}
	*p = colon + 1;
	return 0;
}

/*
 * Parse "<...>" at *p: fill out->path; null_ok allows "<>", postmaster
 * allows the bare "<Postmaster>" (RCPT, §4.1.1.3).  Returns 0 or -1.
 */
static int parse_path(const char **p, const char *end, struct smtp_command *out, int null_ok,
                      const char **why)
{
	const char *s = *p, *close, *mb;

	if (s >= end || *s != '<')
		return -1;
	close = memchr(s, '>', (size_t)(end - s));
	/* a quoted local part may hold '>' */
	if (close != NULL && s + 1 < end && s[1] == '"') {
		size_t l = local_part_len(s + 1, (size_t)(end - s - 1));

		if (l == 0)
			return -1;
		close = memchr(s + 1 + l, '>', (size_t)(end - s - 1 - l));
	}
	if (close == NULL || (size_t)(close - s + 1) > SMTP_PATH_MAX)
		return -1;
	mb = s + 1;
	if (mb == close) {
		if (!null_ok)
			return -1;
		out->null_path = 1;
		out->path[0] = '\0';
		*p = close + 1;
		return 0;
	}
	if (skip_source_route(&mb, close) < 0)
		return -1;
	if (!name_is_ascii_n(mb, (size_t)(close - mb))) {
		if (utf8_mailbox(mb, (size_t)(close - mb), out, why) < 0)
			return -1;
		*p = close + 1;
		return 0;
	}
	if (out->verb == SMTP_RCPT && close - mb == 10 && strncasecmp(mb, "postmaster", 10) == 0) {
		/* accepted as is */
	} else if (!smtp_mailbox_valid(mb, (size_t)(close - mb))) {
		return -1;
	}
	memcpy(out->path, mb, (size_t)(close - mb));
	out->path[close - mb] = '\0';
	*p = close + 1;
	return 0;
}

static int parse_size(const char *v, size_t vlen, struct smtp_command *out, struct err *e)
{
	uint64_t n = 0;
	size_t i;

	if (vlen == 0)
		return fail(out, e, 501, "5.5.4", "Bad SIZE parameter");
	for (i = 0; i < vlen; i++)
		if (v[i] < '0' || v[i] > '9')
			return fail(out, e, 501, "5.5.4", "Bad SIZE parameter");
	/* well-formed but beyond any limit (RFC 1870 allows 20 digits): too big */
	for (i = 0; i < vlen; i++) {
		if (n > (UINT64_MAX - (uint64_t)(v[i] - '0')) / 10)
			return fail(out, e, 552, "5.3.4", "Message size exceeds fixed limit");
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	out->has_size = 1;
	out->size = n;
	return 0;
}

/*
 * DSN parameters (RFC 3461 §4): 1 when kw is one (and it was taken), 0 when it is
 * not, -1 (501 5.5.4) when its value is malformed or it is given twice.
 */
static int parse_dsn_param(const char *kw, size_t kwlen, const char *v, size_t vlen, int has_eq,
                           struct smtp_command *out, struct err *e)
{
	int mail = out->verb == SMTP_MAIL;

	if (mail && kwlen == 3 && strncasecmp(kw, "RET", 3) == 0) {
		if (!has_eq || out->dsn_ret != DSN_RET_NONE ||
		    dsn_ret_parse(v, vlen, &out->dsn_ret) < 0)
			return fail(out, e, 501, "5.5.4",
			            "Bad RET parameter (RET=FULL or RET=HDRS)");
	} else if (mail && kwlen == 5 && strncasecmp(kw, "ENVID", 5) == 0) {
		if (!has_eq || out->dsn_envid[0] != '\0' || !dsn_envid_valid(v, vlen))
			return fail(out, e, 501, "5.5.4",
			            "Bad ENVID parameter (xtext, at most 100 characters)");
		memcpy(out->dsn_envid, v, vlen);
		out->dsn_envid[vlen] = '\0';
	} else if (!mail && kwlen == 6 && strncasecmp(kw, "NOTIFY", 6) == 0) {
		if (!has_eq || out->dsn_notify != 0 ||
		    dsn_notify_parse(v, vlen, &out->dsn_notify) < 0)
			return fail(out, e, 501, "5.5.4",
			            "Bad NOTIFY parameter (NEVER, or SUCCESS,FAILURE,DELAY)");
	} else if (!mail && kwlen == 5 && strncasecmp(kw, "ORCPT", 5) == 0) {
		if (!has_eq || out->dsn_orcpt[0] != '\0' || !dsn_orcpt_valid(v, vlen))
			return fail(out, e, 501, "5.5.4", "Bad ORCPT parameter (addr-type;xtext)");
		memcpy(out->dsn_orcpt, v, vlen);
		out->dsn_orcpt[vlen] = '\0';
	} else {
		return 0;
	}
	return 1;
}

/* Mail-parameters = esmtp-param *(SP esmtp-param) (§4.1.2). */
static int parse_params(const char *p, const char *end, struct smtp_command *out, struct err *e)
{
	while (p < end) {
		const char *kw = p, *eq = NULL, *v;
		size_t kwlen, vlen;
		int dsn;

		while (p < end && *p != ' ')
			p++;
		for (v = kw; v < p; v++) {
			if (*v == '=') {
				eq = v;
				break;
			}
		}
		kwlen = (size_t)((eq ? eq : p) - kw);
		if (kwlen == 0 || !is_letdig((unsigned char)kw[0]))
			return fail(out, e, 501, "5.5.4", "Bad parameter syntax");
		for (v = kw; v < kw + kwlen; v++)
			if (!is_letdig((unsigned char)*v) && *v != '-')
				return fail(out, e, 501, "5.5.4", "Bad parameter syntax");
		v = eq ? eq + 1 : p;
		vlen = (size_t)(p - v);
		if (eq != NULL) {
			const char *c;

			if (vlen == 0)
				return fail(out, e, 501, "5.5.4", "Bad parameter syntax");
			for (c = v; c < p; c++)
				if ((unsigned char)*c < 33 || (unsigned char)*c > 126 || *c == '=')
					return fail(out, e, 501, "5.5.4", "Bad parameter syntax");
		}
		if (out->verb == SMTP_MAIL && kwlen == 10 &&
		    strncasecmp(kw, "REQUIRETLS", 10) == 0) {
			/* RFC 8689 §3: no value; the session takes it over TLS only */
			if (out->requiretls || eq != NULL)
				return fail(out, e, 501, "5.5.4", "Bad REQUIRETLS parameter");
			out->requiretls = 1;
		} else if (out->verb == SMTP_MAIL && kwlen == 4 &&
		           strncasecmp(kw, "SIZE", 4) == 0) {
			if (out->has_size || eq == NULL)
				return fail(out, e, 501, "5.5.4", "Bad SIZE parameter");
			if (parse_size(v, vlen, out, e) < 0)
				return -1;
		} else if (out->verb == SMTP_MAIL && kwlen == 4 &&
		           strncasecmp(kw, "BODY", 4) == 0) {
			if (out->body != SMTP_BODY_NONE || eq == NULL)
				return fail(out, e, 501, "5.5.4", "Bad BODY parameter");
			if (vlen == 4 && strncasecmp(v, "7BIT", 4) == 0)
				out->body = SMTP_BODY_7BIT;
			else if (vlen == 8 && strncasecmp(v, "8BITMIME", 8) == 0)
				out->body = SMTP_BODY_8BITMIME;
			else
				return fail(out, e, 501, "5.5.4", "Unsupported BODY type");
		} else if (out->verb == SMTP_MAIL && kwlen == 8 &&
		           strncasecmp(kw, "SMTPUTF8", 8) == 0) {
			/* RFC 6531 §3.4: no value, once */
			if (out->smtputf8 || eq != NULL)
				return fail(out, e, 501, "5.5.4", "Bad SMTPUTF8 parameter");
			out->smtputf8 = 1;
		} else if ((dsn = parse_dsn_param(kw, kwlen, v, vlen, eq != NULL, out, e)) != 0) {
			if (dsn < 0)
				return -1;
		} else {
			return fail(out, e, 555, "5.5.4", "Unsupported parameter");
		}
		if (p < end) {
			p++; /* the SP */
			if (p == end)
				return fail(out, e, 501, "5.5.4", "Bad parameter syntax");
		}
	}
	return 0;
}

/* "MAIL FROM:" / "RCPT TO:" followed by a path and parameters. */
static int parse_mail_rcpt(const char *p, const char *end, struct smtp_command *out, struct err *e)
{
	const char *kw = out->verb == SMTP_MAIL ? "FROM:" : "TO:";
	size_t kwlen = strlen(kw);
	int mail = out->verb == SMTP_MAIL;
	const char *why = NULL;
	char text[sizeof(out->error.text)];

	if ((size_t)(end - p) < kwlen || strncasecmp(p, kw, kwlen) != 0)
		return fail(out, e, 501, "5.5.4",
		            mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>");
	p += kwlen;
	/* Lenient like most MTAs: "MAIL FROM: <a@b>" is common in the wild. */
	while (p < end && *p == ' ')
		p++;
	if (parse_path(&p, end, out, mail, &why) < 0) {
		snprintf(text, sizeof(text), "Bad %s address syntax%s%s",
		         mail ? "sender" : "recipient", why ? ": the address " : "",
		         why ? why : "");
		return fail(out, e, 501, mail ? "5.1.7" : "5.1.3", text);
	}
	if (p == end)
		return 0;
	if (*p != ' ' || p + 1 == end)
		return fail(out, e, 501, "5.5.4", "Bad parameter syntax");
	return parse_params(p + 1, end, out, e);
}

/* RFC 6531 §3.3: UTF-8 may appear in the paths of MAIL and RCPT, nowhere else. */
static int eightbit_ok(const char *line, size_t len)
{
	return (len >= 10 && strncasecmp(line, "MAIL FROM:", 10) == 0) ||
	       (len >= 8 && strncasecmp(line, "RCPT TO:", 8) == 0);
}

struct verb_name {
	const char *name;
	enum smtp_verb verb;
};

static const struct verb_name verbs[] = {
    {"HELO", SMTP_HELO}, {"EHLO", SMTP_EHLO},
    {"MAIL", SMTP_MAIL}, {"RCPT", SMTP_RCPT},
    {"DATA", SMTP_DATA}, {"RSET", SMTP_RSET},
    {"NOOP", SMTP_NOOP}, {"QUIT", SMTP_QUIT},
    {"VRFY", SMTP_VRFY}, {"STARTTLS", SMTP_STARTTLS},
    {"HELP", SMTP_HELP}, {"AUTH", SMTP_AUTH}, /* only with SMTP_PARSE_AUTH, else 502 below */
    {"BDAT", SMTP_BDAT},
};

/* Verbs that exist but are not offered here: RFC 5321 §4.2.4 wants 502 for them, not 500. */
static const char *const unoffered_verbs[] = {
    "EXPN", "TURN", "ETRN", "AUTH", "SEND", "SOML", "SAML", "ATRN", "XCLIENT",
};

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long smtp_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t i, n = 0;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		int v[4], pad = 0, k;
		uint32_t w;

		for (k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];

			/* '=' only at the end: "x===" is never valid, "xx==" and "xxx=" are */
			if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || in[i + 3] == '=')) {
				v[k] = 0;
				pad++;
			} else if (pad > 0 || (v[k] = b64_value(c)) < 0) {
				return -1;
			}
		}
		w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		    (uint32_t)v[3];
		/* the bits the padding leaves over must be zero (RFC 4648 §3.5, canonical) */
		if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
			return -1;
		if (n + 3 - (size_t)pad > cap)
			return -1;
		out[n++] = (unsigned char)(w >> 16);
		if (pad < 2)
			out[n++] = (unsigned char)(w >> 8);
		if (pad < 1)
			out[n++] = (unsigned char)w;
	}
	return (long)n;
}

/* "AUTH" SP sasl-mech [SP initial-response] (RFC 4954 §4; sasl-mech, RFC 4422 §3.1). */
static int parse_auth(const char *p, const char *end, struct smtp_command *out, struct err *e)
{
	unsigned char scratch[SMTP_LINE_MAX];
	const char *sp = memchr(p, ' ', (size_t)(end - p));
	const char *mend = sp ? sp : end;
	size_t i, mlen = (size_t)(mend - p);

	if (mlen == 0 || mlen > 20)
		return fail(out, e, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
	for (i = 0; i < mlen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!is_letdig(c) && c != '-' && c != '_')
			return fail(out, e, 501, "5.5.4",
			            "Syntax: AUTH mechanism [initial-response]");
		out->mech[i] = (char)toupper(c);
	}
	out->mech[mlen] = '\0';
	if (sp == NULL)
		return 0;
	p = sp + 1;
	out->has_initial = 1;
	if (end - p == 1 && *p == '=')
		return 0; /* an empty initial response */
	if (p == end || smtp_base64_decode(p, (size_t)(end - p), scratch, sizeof(scratch)) < 0)
		return fail(out, e, 501, "5.5.2", "Invalid base64 data");
	memcpy(out->arg, p, (size_t)(end - p));
	out->arg[end - p] = '\0';
	return 0;
}

/*
 * "BDAT" SP chunk-size [SP "LAST"] (RFC 3030 §2).  The size is kept whenever
 * it could be read, so that the session can skip the chunk of a refused
 * command; without it the octets that follow cannot be told from commands.
 */
static int parse_bdat(const char *p, const char *end, struct smtp_command *out, struct err *e)
{
	uint64_t n = 0;
	const char *q = p;

	for (; q < end && *q >= '0' && *q <= '9'; q++) {
		if (n > (UINT64_MAX - (uint64_t)(*q - '0')) / 10)
			return fail(out, e, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
		n = n * 10 + (uint64_t)(*q - '0');
	}
	if (q == p || q - p > 20 || (q < end && *q != ' '))
		return fail(out, e, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
	out->chunk_size = n;
	out->chunk_known = 1;
	if (q == end)
		return 0;
	if (end - q != 5 || strncasecmp(q + 1, "LAST", 4) != 0)
		return fail(out, e, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
	out->chunk_last = 1;
	return 0;
}

int smtp_parse_command(const char *line, size_t len, struct smtp_command *out, struct err *e)
{
	return smtp_parse_command_opts(line, len, 0, out, e);
}

int smtp_parse_command_opts(const char *line, size_t len, int opts, struct smtp_command *out,
                            struct err *e)
{
	const char *end = line + len, *p;
	size_t vlen, i;

	memset(out, 0, sizeof(*out));
	if (len + 2 > SMTP_LINE_MAX)
		return fail(out, e, 500, "5.5.2", "Line too long");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		/* no controls (bare CR/LF, NUL); 8-bit only in a MAIL/RCPT path (SMTPUTF8) */
		if ((c < 32 && c != '\t') || c == 127 || (c >= 128 && !eightbit_ok(line, len)))
			return fail(out, e, 500, "5.5.2", "Syntax error, invalid character");
	}
	for (p = line; p < end && *p != ' '; p++)
		;
	vlen = (size_t)(p - line);
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (vlen == strlen(verbs[i].name) && strncasecmp(line, verbs[i].name, vlen) == 0)
			out->verb = verbs[i].verb;
	if (out->verb == SMTP_AUTH && !(opts & SMTP_PARSE_AUTH))
		out->verb = SMTP_NONE;
	if (out->verb == SMTP_NONE) {
		for (i = 0; i < sizeof(unoffered_verbs) / sizeof(unoffered_verbs[0]); i++)
			if (vlen == strlen(unoffered_verbs[i]) &&
			    strncasecmp(line, unoffered_verbs[i], vlen) == 0)
				return fail(out, e, 502, "5.5.1", "Command not implemented");
		return fail(out, e, 500, "5.5.2", "Syntax error, command unrecognized");
	}
	if (p < end)
		p++; /* the SP after the verb */

	switch (out->verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		/* Domain or address-literal; HELO [literal] is common, accepted for both. */
		if (p == end || !((*p == '[' && smtp_address_literal_valid(p, (size_t)(end - p))) ||
		                  smtp_domain_valid(p, (size_t)(end - p))))
			return fail(out, e, 501, "5.5.4",
			            out->verb == SMTP_HELO ? "Syntax: HELO hostname"
			                                   : "Syntax: EHLO hostname");
		break;
	case SMTP_MAIL:
	case SMTP_RCPT:
		return parse_mail_rcpt(p, end, out, e);
	case SMTP_AUTH:
		return parse_auth(p, end, out, e);
	case SMTP_BDAT:
		return parse_bdat(p, end, out, e);
	case SMTP_VRFY:
		if (p == end)
			return fail(out, e, 501, "5.5.4", "Syntax: VRFY address");
		break;
	case SMTP_DATA:
	case SMTP_RSET:
	case SMTP_QUIT:
	case SMTP_STARTTLS:
		if (p != end)
			return fail(out, e, 501, "5.5.4", "Syntax error, no parameters allowed");
		break;
	default: /* NOOP, HELP: any argument */
		break;
	}
	memcpy(out->arg, p, (size_t)(end - p));
	out->arg[end - p] = '\0';
	return 0;
}

int smtp_verb_in(const char *line, size_t len, const char *list)
{
	size_t n = 0;

	while (n < len && line[n] != ' ')
		n++;
	while (list != NULL && *list != '\0' && n > 0) {
		size_t w = strcspn(list, " ");

		if (w == n && strncasecmp(list, line, n) == 0)
			return 1;
		list += w;
		list += *list == ' ';
	}
	return 0;
}
