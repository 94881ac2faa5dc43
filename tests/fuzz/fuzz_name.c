/*
 * fuzz_name.c - name_canon_address and name_canon_domain, the one normalisation of
 * names (docs/PROTOCOL.md "Names"), on arbitrary octets: what comes out is accepted
 * by the checkers, is well-formed UTF-8 with an all-ASCII domain, and normalises to
 * itself (a name means one name); what is refused leaves "" behind.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "pki/name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_address(const char *in)
{
	char out[256], again[256];
	struct err e = {0};

	if (name_canon_address(in, out, sizeof(out), &e) < 0) {
		if (out[0] != '\0' || e.code[0] == '\0')
			__builtin_trap();
		return;
	}
	if (name_check_address(out, &e) != 0 || strlen(out) > 254 ||
	    !utf8_valid((const unsigned char *)out, strlen(out)) ||
	    !name_is_ascii(strrchr(out, '@')))
		__builtin_trap();
	if (name_canon_address(out, again, sizeof(again), &e) != 0 || strcmp(out, again) != 0)
		__builtin_trap();
}

static void check_domain(const char *in)
{
	char out[256], again[256];
	struct err e = {0};

	if (name_canon_idn(in, out, sizeof(out), &e) < 0) {
		if (out[0] != '\0')
			__builtin_trap();
		return;
	}
	if (name_check_domain(out, &e) != 0 || !name_is_ascii(out))
		__builtin_trap();
	if (name_canon_idn(out, again, sizeof(again), &e) != 0 || strcmp(out, again) != 0 ||
	    name_canon_domain(out, again, sizeof(again), &e) != 0 || strcmp(out, again) != 0)
		__builtin_trap();
	/* the legacy reading takes no U-label at all */
	if (name_canon_domain(in, again, sizeof(again), &e) == 0 && !name_is_ascii(in))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size > 600)
		return 0;
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0'; /* a NUL inside ends the C string: the name is what comes before it */
	check_address(s);
	check_domain(s);
	free(s);
	return 0;
}
