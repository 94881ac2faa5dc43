/*
 * fuzz_csa_helo.c - csa_helo_classify, the one reading of an SMTP client's HELO
 * argument, on arbitrary octets: the three forms, their canonical texts (which
 * classify again to themselves) and the message rendering (printable ASCII only).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pki/name.h"
#include "mail/csa.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void printable_or_trap(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *helo = (const char *)data;
	char canon[DNS_NAME_MAX], again[DNS_NAME_MAX], shown[80];
	struct err why = {0}, ne = {0};
	enum csa_helo_form f = csa_helo_classify(helo, size, canon, sizeof(canon), &why);

	csa_helo_show(helo, size, shown, sizeof(shown));
	printable_or_trap(shown);
	switch (f) {
	case CSA_HELO_NAME:
		if (name_check_domain(canon, &ne) != 0 || strlen(canon) > 253)
			__builtin_trap();
		break;
	case CSA_HELO_LITERAL:
		if (canon[0] != '[' || canon[strlen(canon) - 1] != ']')
			__builtin_trap();
		break;
	case CSA_HELO_INVALID:
		if (canon[0] != '\0' || strcmp(why.code, "csa_bad_helo") != 0)
			__builtin_trap();
		printable_or_trap(why.msg);
		return 0;
	default:
		__builtin_trap();
	}
	/* the canonical form is a fixed point */
	printable_or_trap(canon);
	if (csa_helo_classify(canon, strlen(canon), again, sizeof(again), &why) != f ||
	    strcmp(canon, again) != 0)
		__builtin_trap();
	return 0;
}
