/*
 * fuzz_rep_report.c - the report payload parser of anchor-reputation (and the subject
 * canonicalisation under it): any bytes in, a checked report or a precise error out,
 * never a crash.  A parsed report is parsed again from its canonical subjects, which
 * must give the same texts (canonical forms are fixed points).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The two files have no dependencies beyond libanchor; linking them directly keeps the
 * fuzzer's build rule (tests/fuzz/fuzz_<name>.c + libanchor.a) unchanged. */
#include "../../reputation/payload.c"
#include "../../reputation/subject.c"

#define NOW 1800000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct rep_params p = {.half_life = 7 * 86400.0, .min_reporters = 3};
	struct rep_report r;
	struct err e = {0};

	if (rep_report_from_json((const char *)data, size, NOW, &p, 90 * 86400, 3600, &r, &e) < 0) {
		if (e.kind == ERR_NONE || e.code[0] == '\0')
			__builtin_trap(); /* every refusal says why */
		return 0;
	}
	if (r.nsubjects < 1 || r.nsubjects > 8 || r.id[0] == '\0' || r.observed > NOW)
		__builtin_trap();
	for (int i = 0; i < r.nsubjects; i++) {
		struct rep_subject again;

		if (rep_subject_parse(r.subjects[i].text, &again, &e) < 0 ||
		    strcmp(again.text, r.subjects[i].text) != 0)
			__builtin_trap();
	}
	return 0;
}
