/*
 * header.h - the one reader of a message's header section (RFC 5322 §2.2,
 * §3.2.2): its fields one by one, each as the exact bytes of the message (what
 * a DKIM signature covers) with its name and value located, found by name in
 * any case, unfolded on request.
 *
 * A line ends at CRLF, a bare LF or a lone CR, as dkim_msg_parse() normalises
 * them: whichever of the three a message uses, every reader of it (the DKIM
 * verifier, the author's From field, the fields the relay strips) sees the
 * same fields.  The section ends at the first empty line, or with the message.
 * A field is a line that does not start with a blank and the continuation
 * lines (starting with SP or HTAB) that follow it.  Nothing is copied: fields
 * point into the caller's buffer.
 */
#ifndef ANCHOR_MAIL_HEADER_H
#define ANCHOR_MAIL_HEADER_H

#include <stddef.h>

struct mail_field {
	const char *raw; /* name through the last character of the last line, no line end */
	size_t rawlen;
	const char *name; /* = raw; without the blanks before the colon (obs-fields) */
	size_t nlen;
	const char *value; /* just after the colon, still folded; NULL when there is none */
	size_t vlen;
	size_t end; /* offset just past the field's last line end: where the next one starts */
	/* NULL for a well-formed field, else why not ("a header line has no colon", ...);
	 * the field is still delimited, so a lenient caller may go on */
	const char *bad;
};

struct mail_header {
	const char *msg;
	size_t len;
	size_t pos;  /* where the next field starts */
	size_t body; /* at the end: the offset of the body (after the empty line), or len */
};

void mail_header_init(struct mail_header *h, const char *msg, size_t len);
/* 1 and *f: the next field; 0 at the end of the section (h->pos is then the offset of
 * the empty line, or len, and h->body that of the body). */
int mail_header_next(struct mail_header *h, struct mail_field *f);
/* 1 when the field is called name (ASCII case-insensitive). */
int mail_field_is(const struct mail_field *f, const char *name);
/* The first well-formed field called name: 1 and *f, or 0. */
int mail_header_find(const char *msg, size_t len, const char *name, struct mail_field *f);
/* The value unfolded (RFC 5322 §2.2.3: each line end before a blank removed), NUL-terminated
 * and malloc'd (*outlen its length); NULL when out of memory or the field has no value. */
char *mail_field_unfold(const struct mail_field *f, size_t *outlen);

#endif
