/*
 * fuzz_mail_header.c - lib/mail/header: every field lies inside the input,
 * fields are contiguous and in order, the body starts after them; unfolding
 * leaves no line end; a raw read and dkim_msg_parse (which normalises line
 * ends first) see the same field names.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dkim.h"
#include "mail/header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_field(const char *text, size_t size, size_t start, const struct mail_field *f)
{
	size_t n;
	char *v;

	if (f->raw != text + start || f->raw + f->rawlen > text + size || f->end > size ||
	    f->end < start + f->rawlen || f->nlen > f->rawlen)
		__builtin_trap();
	if (f->value != NULL && (f->value < f->raw || f->value + f->vlen != f->raw + f->rawlen))
		__builtin_trap();
	if ((v = mail_field_unfold(f, &n)) != NULL) {
		if (n != strlen(v) && memchr(f->value, '\0', f->vlen) == NULL)
			__builtin_trap();
		if (memchr(v, '\r', n) != NULL || memchr(v, '\n', n) != NULL)
			__builtin_trap();
		free(v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct mail_header h;
	struct mail_field f, fields[64];
	struct dkim_msg m;
	struct err e = {0};
	size_t start = 0, nf = 0, bad = 0;

	mail_header_init(&h, text, size);
	while (mail_header_next(&h, &f) == 1) {
		check_field(text, size, start, &f);
		bad += f.bad != NULL;
		if (nf < 64)
			fields[nf] = f;
		nf++;
		start = f.end;
	}
	if (h.pos != start || h.body < h.pos || h.body > size)
		__builtin_trap();
	if (dkim_msg_parse(text, size, &m, &e) < 0) {
		if (bad == 0 && strcmp(e.code, "internal") != 0)
			__builtin_trap();
		return 0;
	}
	if (bad != 0 || m.nhdrs != nf)
		__builtin_trap();
	/* a name that runs over a line end (the colon on a continuation line) holds that
	 * line end as written, which the normalised copy spells CRLF */
	for (size_t j = 0; j < nf && j < 64; j++)
		if (memchr(fields[j].name, '\r', fields[j].nlen) == NULL &&
		    memchr(fields[j].name, '\n', fields[j].nlen) == NULL &&
		    (m.hdrs[j].nlen != fields[j].nlen ||
		     memcmp(m.hdrs[j].name, fields[j].name, fields[j].nlen) != 0))
			__builtin_trap();
	dkim_msg_free(&m);
	return 0;
}
