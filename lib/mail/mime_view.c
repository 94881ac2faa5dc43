/*
 * mime_view.c - reduced views of a message (mime_view.h).
 *
 * The MIME reading is the least a view needs (RFC 2045 §5.1, RFC 2046 §5.1.1): a
 * Content-Type's type/subtype and its boundary parameter, and delimiter lines.  What
 * cannot be read is no error: the view then holds less (no text part), never more, as
 * the receiver asked for less than the whole message.
 */
#include "mail/mime_view.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/header.h"

#define BOUNDARY_MAX 70 /* RFC 2046 §5.1.1 */

static const char *const view_names[] = {"", "headers", "signers", "hash", "text", "full"};

int mail_view_parse(const char *name, size_t len, enum mail_view *out)
{
	for (size_t i = 1; i < sizeof(view_names) / sizeof(view_names[0]); i++)
		if (strlen(view_names[i]) == len && strncasecmp(view_names[i], name, len) == 0) {
			*out = (enum mail_view)i;
			return 0;
		}
	return -1;
}

const char *mail_view_name(enum mail_view v)
{
	return (size_t)v < sizeof(view_names) / sizeof(view_names[0]) ? view_names[v] : "";
}

/* ---- an output buffer ---- */

struct buf {
	char *p;
	size_t n, cap;
	int nomem;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->nomem)
		return;
	if (b->p == NULL || b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;

		while (cap < b->n + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->nomem = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* ---- Content-Type ---- */

struct ctype {
	char type[80]; /* "text/plain", lowercase; "" when absent or unreadable */
	char boundary[BOUNDARY_MAX + 1];
};

static size_t skip_cfws(const char *v, size_t n, size_t i)
{
	int depth = 0;

	for (; i < n; i++) {
		if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && depth > 0)
			depth--;
		else if (depth == 0 && v[i] != ' ' && v[i] != '\t' && v[i] != '\r' && v[i] != '\n')
			break;
	}
	return i;
}

static int tchar(char c)
{
	return c > 32 && c < 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* A token or quoted-string at v[i]: copied into out (at most cap-1 octets, else -1). */
static long read_value(const char *v, size_t n, size_t i, char *out, size_t cap)
{
	size_t o = 0;

	if (i < n && v[i] == '"') {
		for (i++; i < n && v[i] != '"'; i++) {
			if (v[i] == '\\' && i + 1 < n)
				i++;
			if (o + 1 >= cap)
				return -1;
			out[o++] = v[i];
		}
		if (i >= n)
			return -1;
		i++;
	} else {
		for (; i < n && tchar(v[i]); i++) {
			if (o + 1 >= cap)
				return -1;
			out[o++] = v[i];
		}
	}
	out[o] = '\0';
	return (long)i;
}

/* One parameter "; name=value" from v[i]: the boundary kept; the next index or -1. */
static long read_param(const char *v, size_t n, size_t i, struct ctype *ct)
{
	size_t start = i;
	char val[BOUNDARY_MAX + 1];
	long next;

	while (i < n && tchar(v[i]))
		i++;
	if (i == start)
		return -1;
	int is_boundary = i - start == 8 && strncasecmp(v + start, "boundary", 8) == 0;
	i = skip_cfws(v, n, i);
	if (i >= n || v[i] != '=')
		return -1;
	i = skip_cfws(v, n, i + 1);
	if ((next = read_value(v, n, i, val, sizeof(val))) < 0)
		return is_boundary ? -1 : (long)n; /* an over-long other value: stop there */
	if (is_boundary && val[0] != '\0')
		memcpy(ct->boundary, val, sizeof(val));
	return next;
}

static void ctype_parse(const char *v, size_t n, struct ctype *ct)
{
	size_t i = skip_cfws(v, n, 0), o = 0;
	int slash = 0;

	memset(ct, 0, sizeof(*ct));
	for (; i < n && (tchar(v[i]) || v[i] == '/'); i++) {
		if (o + 1 >= sizeof(ct->type) || (v[i] == '/' && slash++))
			break;
		ct->type[o++] = (char)tolower((unsigned char)v[i]);
	}
	ct->type[o] = '\0';
	if (!slash || ct->type[o - 1] == '/') {
		ct->type[0] = '\0'; /* unreadable: as if absent */
		return;
	}
	for (;;) {
		long next;

		i = skip_cfws(v, n, i);
		if (i >= n || v[i] != ';')
			return;
		i = skip_cfws(v, n, i + 1);
		if (i >= n || (next = read_param(v, n, i, ct)) < 0)
			return;
		i = (size_t)next;
	}
}

/* The Content-Type of the header section at p (n octets); *body the body's offset. */
static void section_ctype(const char *p, size_t n, struct ctype *ct, size_t *body)
{
	struct mail_header h;
	struct mail_field f;
	int found = 0;

	memset(ct, 0, sizeof(*ct));
	mail_header_init(&h, p, n);
	while (mail_header_next(&h, &f) == 1)
		if (!found && f.bad == NULL && f.value != NULL &&
		    mail_field_is(&f, "Content-Type")) {
			ctype_parse(f.value, f.vlen, ct);
			found = 1;
		}
	*body = h.body;
}

/* ---- multipart bodies ---- */

struct delim {
	size_t start; /* the delimiter line's first octet */
	size_t after; /* just past its line end */
	int close;    /* "--boundary--" */
};

/* The next delimiter line of boundary bd at or after pos (a line start). */
static int find_delim(const char *b, size_t n, size_t pos, const char *bd, struct delim *d)
{
	size_t bl = strlen(bd);

	for (size_t i = pos; i < n;) {
		if ((i == 0 || b[i - 1] == '\n') && n - i >= bl + 2 && b[i] == '-' &&
		    b[i + 1] == '-' && memcmp(b + i + 2, bd, bl) == 0) {
			size_t j = i + 2 + bl;
			int close = n - j >= 2 && b[j] == '-' && b[j + 1] == '-';

			j += close ? 2 : 0;
			while (j < n && (b[j] == ' ' || b[j] == '\t'))
				j++;
			if (j == n || b[j] == '\r' || b[j] == '\n') {
				j += j < n && b[j] == '\r';
				j += j < n && b[j] == '\n';
				d->start = i;
				d->after = j;
				d->close = close;
				return 1;
			}
		}
		const char *lf = memchr(b + i, '\n', n - i);
		if (lf == NULL)
			break;
		i = (size_t)(lf - b) + 1;
	}
	return 0;
}

/* The first text/plain part (its headers and body) of the multipart body b, depth-first. */
static int find_text(const char *b, size_t n, const char *bd, int depth, const char **part,
                     size_t *plen)
{
	struct delim d, next;

	if (!find_delim(b, n, 0, bd, &d) || d.close)
		return 0;
	while (find_delim(b, n, d.after, bd, &next)) {
		const char *p = b + d.after;
		size_t end = next.start, body;
		struct ctype ct;

		end -= end > d.after && b[end - 1] == '\n';
		end -= end > d.after && b[end - 1] == '\r';
		section_ctype(p, end - d.after, &ct, &body);
		if (ct.type[0] == '\0' || strcmp(ct.type, "text/plain") == 0) {
			*part = p;
			*plen = end - d.after;
			return 1;
		}
		if (strncmp(ct.type, "multipart/", 10) == 0 && ct.boundary[0] != '\0' &&
		    depth + 1 < MAIL_VIEW_DEPTH &&
		    find_text(p + body, end - d.after - body, ct.boundary, depth + 1, part, plen))
			return 1;
		if (next.close)
			return 0;
		d = next;
	}
	return 0; /* no closing delimiter: the rest is not a part */
}

/* ---- the views ---- */

/* The header section (up to its empty line) and the empty line. */
static void put_header(struct buf *out, const char *msg, size_t end)
{
	put(out, msg, end);
	if (end > 0 && msg[end - 1] != '\n')
		puts_(out, "\r\n");
	puts_(out, "\r\n");
}

static int kept_by(enum mail_view v, const struct mail_field *f)
{
	static const char *const signers[] = {"DKIM-Signature", "From",       "Sender",
	                                      "Date",           "Message-ID", "Subject"};

	if (v == MAIL_VIEW_HASH)
		return mail_field_is(f, "From") || mail_field_is(f, "Message-ID");
	for (size_t i = 0; i < sizeof(signers) / sizeof(signers[0]); i++)
		if (mail_field_is(f, signers[i]))
			return 1;
	return 0;
}

static void put_fields(struct buf *out, const char *msg, size_t len, enum mail_view v)
{
	struct mail_header h;
	struct mail_field f;
	size_t start = 0;

	mail_header_init(&h, msg, len);
	while (mail_header_next(&h, &f) == 1) {
		if (kept_by(v, &f)) {
			put(out, msg + start, f.end - start);
			if (f.end > start && msg[f.end - 1] != '\n')
				puts_(out, "\r\n");
		}
		start = f.end;
	}
	puts_(out, "\r\n");
}

static void put_text(struct buf *out, const char *msg, size_t len)
{
	struct mail_header h;
	struct mail_field f;
	struct ctype ct;
	const char *part;
	size_t body, plen;

	section_ctype(msg, len, &ct, &body);
	if (ct.type[0] == '\0' || strcmp(ct.type, "text/plain") == 0) {
		put(out, msg, len);
		return;
	}
	mail_header_init(&h, msg, len);
	while (mail_header_next(&h, &f) == 1)
		;
	put_header(out, msg, h.pos);
	if (strncmp(ct.type, "multipart/", 10) != 0 || ct.boundary[0] == '\0' ||
	    !find_text(msg + body, len - body, ct.boundary, 0, &part, &plen))
		return;
	puts_(out, "--");
	puts_(out, ct.boundary);
	puts_(out, "\r\n");
	put(out, part, plen);
	puts_(out, "\r\n--");
	puts_(out, ct.boundary);
	puts_(out, "--\r\n");
}

char *mail_view_build(const char *msg, size_t len, enum mail_view v, size_t *outlen, struct err *e)
{
	struct buf out = {0};
	struct mail_header h;
	struct mail_field f;

	switch (v) {
	case MAIL_VIEW_HEADERS:
		mail_header_init(&h, msg, len);
		while (mail_header_next(&h, &f) == 1)
			;
		put_header(&out, msg, h.pos);
		break;
	case MAIL_VIEW_SIGNERS:
	case MAIL_VIEW_HASH:
		put_fields(&out, msg, len, v);
		break;
	case MAIL_VIEW_TEXT:
		put_text(&out, msg, len);
		break;
	case MAIL_VIEW_FULL:
		put(&out, msg, len);
		break;
	default:
		err_set(e, ERR_INPUT, "bad_view", "no such view");
		return NULL;
	}
	if (out.p == NULL && !out.nomem)
		put(&out, "", 0);
	if (out.nomem || out.p == NULL) {
		free(out.p);
		err_set(e, ERR_INTERNAL, "nomem", "out of memory");
		return NULL;
	}
	*outlen = out.n;
	return out.p;
}
