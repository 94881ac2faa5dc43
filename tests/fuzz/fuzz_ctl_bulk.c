/* fuzz_ctl_bulk.c - the lines of `anchorctl token issue --from FILE` (anchorctl/bulk.c):
 * the first line decides the format (CSV header or one address a line), every later
 * line yields its address or an error. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_bulk_fmt f = {0};
	char *text = malloc(size + 1), *line, *next;
	int header, first = 1;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (line = text; line != NULL; line = next) {
		struct err e = {0};
		char *addr;

		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (first) {
			first = 0;
			if (ctl_bulk_detect(line, &f, &header, &e) < 0)
				break;
			continue;
		}
		addr = ctl_bulk_address(line, &f, &e);
		/* The address is a NUL-terminated part of the line, in place. */
		if (addr != NULL && (addr < line || addr + strlen(addr) > text + size))
			abort();
	}
	free(text);
	return 0;
}
