/*
 * header.c - the header section of a message, field by field (see header.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/header.h"

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* The line starting at p: *eol the offset of its line end (or len), the return value the
 * offset just past it.  CRLF, bare LF and lone CR all end a line. */
static size_t line_next(const char *m, size_t len, size_t p, size_t *eol)
{
	while (p < len && m[p] != '\r' && m[p] != '\n')
		p++;
	*eol = p;
	if (p < len && m[p] == '\r' && p + 1 < len && m[p + 1] == '\n')
		return p + 2;
	return p < len ? p + 1 : len;
}

void mail_header_init(struct mail_header *h, const char *msg, size_t len)
{
	h->msg = msg;
	h->len = len;
	h->pos = 0;
	h->body = len;
}

/* Where the name ends and the value starts; why the field is malformed, if it is. */
static void field_locate(struct mail_field *f, int orphan)
{
	const char *colon = memchr(f->raw, ':', f->rawlen);

	f->name = f->raw;
	f->nlen = colon != NULL ? (size_t)(colon - f->raw) : 0;
	while (f->nlen > 0 && is_wsp(f->name[f->nlen - 1]))
		f->nlen--;
	f->value = colon != NULL ? colon + 1 : NULL;
	f->vlen = colon != NULL ? f->rawlen - (size_t)(colon + 1 - f->raw) : 0;
	if (orphan)
		f->bad = "a continuation line has no header field before it";
	else if (colon == NULL)
		f->bad = "a header line has no colon";
	else if (f->nlen == 0)
		f->bad = "a header field has no name";
	else
		f->bad = NULL;
}

int mail_header_next(struct mail_header *h, struct mail_field *f)
{
	size_t start = h->pos, eol, next;

	if (start >= h->len) {
		h->body = h->len;
		return 0;
	}
	next = line_next(h->msg, h->len, start, &eol);
	if (eol == start) { /* the empty line */
		h->body = next;
		return 0;
	}
	/* continuation lines: they start with a blank (an empty line never does) */
	while (next < h->len && is_wsp(h->msg[next]))
		next = line_next(h->msg, h->len, next, &eol);
	memset(f, 0, sizeof(*f));
	f->raw = h->msg + start;
	f->rawlen = eol - start;
	f->end = next;
	field_locate(f, is_wsp(h->msg[start]));
	h->pos = next;
	return 1;
}

int mail_field_is(const struct mail_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->value != NULL && f->nlen == n && strncasecmp(f->name, name, n) == 0;
}

int mail_header_find(const char *msg, size_t len, const char *name, struct mail_field *f)
{
	struct mail_header h;

	mail_header_init(&h, msg, len);
	while (mail_header_next(&h, f) == 1)
		if (f->bad == NULL && mail_field_is(f, name))
			return 1;
	return 0;
}

char *mail_field_unfold(const struct mail_field *f, size_t *outlen)
{
	char *out;
	size_t n = 0;

	if (f->value == NULL || (out = malloc(f->vlen + 1)) == NULL)
		return NULL;
	for (size_t i = 0; i < f->vlen; i++) {
		char c = f->value[i];

		/* inside a field every line end is followed by a blank: drop the line end */
		if (c == '\r' || c == '\n')
			continue;
		out[n++] = c;
	}
	out[n] = '\0';
	if (outlen != NULL)
		*outlen = n;
	return out;
}
