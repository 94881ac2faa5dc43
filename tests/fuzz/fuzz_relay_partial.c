/* fuzz_relay_partial.c - receiver-chosen transfer's parsers: the Anchor-Partial field a
 * sender puts before a view (relay/partial_view.c) and every view lib/mail/mime_view
 * builds of an arbitrary message.  The first byte picks the view; the whole input is also
 * read as the field's value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "partial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_partial_meta m;
	struct err e = {0};
	size_t n = 0;
	char *view;

	if (relay_partial_meta_parse((const char *)data, size, &m, &e) == 0) {
		char *field = relay_partial_meta_field(&m);
		struct relay_partial_meta again;

		/* what the parser accepts, the writer writes back to the same meaning */
		if (field == NULL ||
		    relay_partial_meta_parse(field + 15, strlen(field) - 15, &again, &e) < 0 ||
		    memcmp(&again, &m, sizeof(m)) != 0)
			__builtin_trap();
		free(field);
	}
	if (size == 0)
		return 0;
	view = mail_view_build((const char *)data + 1, size - 1,
	                       (enum mail_view)(1 + data[0] % MAIL_VIEW_FULL), &n, &e);
	if (view == NULL || view[n] != '\0' || (data[0] % MAIL_VIEW_FULL != 4 && n > size + 200))
		__builtin_trap();
	free(view);
	return 0;
}
