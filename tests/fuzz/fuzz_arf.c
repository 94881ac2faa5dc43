/*
 * fuzz_arf.c - the ARF (RFC 5965) parser and its conversion into a report on
 * arbitrary messages.  The fuzz build links libanchor.a only, so the two
 * reputation files the path needs are compiled in here.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../reputation/arf.c"
#include "../../reputation/subject.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rep_report r;
	struct err e;
	int i;

	if (arf_parse((const char *)data, size, &r, &e) == 0) {
		/* What the scoring relies on. */
		if (r.nsubjects < 1 || r.nsubjects > 8 || r.id[0] == '\0' ||
		    memchr(r.evidence, '\0', sizeof(r.evidence)) == NULL)
			__builtin_trap();
		for (i = 0; i < r.nsubjects; i++)
			if (strchr(r.subjects[i].text, ':') == NULL)
				__builtin_trap();
	} else if (e.code[0] == '\0' || e.kind == ERR_NONE) {
		__builtin_trap();
	}
	return 0;
}
