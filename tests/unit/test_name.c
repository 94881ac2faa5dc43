/* test_name.c - canonical names: UTF-8 local parts, U-labels and A-labels as one domain
 * (docs/PROTOCOL.md "Names"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pki/name.h"

/* Every spelling of one name comes out as the same canonical name. */
static void test_canon_address_one_name(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"alice@example.com", "alice@example.com"},
	    {"Alice@EXAMPLE.com", "alice@example.com"},
	    {"alice@example.com.", "alice@example.com"},
	    /* U-label and A-label of one domain, in any case, mixed per label */
	    {"j\xc3\xb6rg@b\xc3\xbc"
	     "cher.example",
	     "j\xc3\xb6rg@xn--bcher-kva.example"},
	    {"J\xc3\x96RG@B\xc3\x9c"
	     "CHER.EXAMPLE.",
	     "j\xc3\xb6rg@xn--bcher-kva.example"},
	    {"j\xc3\xb6rg@XN--BCHER-KVA.example", "j\xc3\xb6rg@xn--bcher-kva.example"},
	    {"j\xc3\xb6rg@b\xc3\xbc"
	     "cher.xn--p1ai",
	     "j\xc3\xb6rg@xn--bcher-kva.xn--p1ai"},
	    /* decomposed o + U+0308 is NFC-composed to U+00F6, in both parts */
	    {"jo\xcc\x88rg@bu\xcc\x88"
	     "cher.example",
	     "j\xc3\xb6rg@xn--bcher-kva.example"},
	    /* Cyrillic, Greek, CJK local parts */
	    {"\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd@example.com",
	     "\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd@example.com"},
	    {"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example",
	     "\xe7\x94\xa8\xe6\x88\xb7@xn--fsqu00a.example"},
	};
	char out[256];
	struct err e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err_clear(&e);
		if (name_canon_address(cases[i].in, out, sizeof(out), &e) != 0)
			fail_msg("%s refused: %s", cases[i].in, e.msg);
		assert_string_equal(out, cases[i].want);
		assert_int_equal(name_check_address(out, &e), 0);
	}
}

static void test_canon_address_refused(void **state)
{
	static const char *const bad[] = {
	    "j\xc3@example.com",               /* truncated sequence */
	    "j\xc0\xafrg@example.com",         /* overlong '/' */
	    "j\xe0\x80\xafrg@example.com",     /* overlong, 3 octets */
	    "j\xed\xa0\x80rg@example.com",     /* surrogate U+D800 */
	    "j\xf4\x90\x80\x80rg@example.com", /* past U+10FFFF */
	    "j\xc2\x85rg@example.com",         /* C1 control U+0085 */
	    "j\x01rg@example.com",             /* C0 control */
	    "j\x7frg@example.com",             /* DEL */
	    "j\xe2\x80\xaerg@example.com",     /* U+202E right-to-left override */
	    "j\xe2\x80\x8brg@example.com",     /* U+200B zero-width space */
	    "j\xc2\xa0rg@example.com",         /* U+00A0 no-break space */
	    "j\xee\x80\x80rg@example.com",     /* U+E000 private use */
	    "j\xcd\xb8rg@example.com",         /* U+0378 unassigned */
	    "j\xc3\xb6rg@b\xc3"
	    "cher.example",                         /* invalid UTF-8 in the domain */
	    "j\xc3\xb6rg@xn--zz.example",           /* an xn-- label that is no A-label */
	    "j\xc3\xb6rg@xn--bcher-kvb.example",    /* an A-label of a disallowed U-label */
	    "j\xc3\xb6rg@\xf0\x9f\x92\xa9.example", /* an emoji label (IDNA2008 disallows) */
	    "\"j\xc3\xb6rg\"@example.com",          /* quoted */
	    "j\xc3\xb6rg",                          /* no '@' */
	    "",
	};
	char out[256];
	struct err e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (name_canon_address(bad[i], out, sizeof(out), &e) != -1)
			fail_msg("case %zu accepted as %s", i, out);
		assert_string_equal(out, "");
		assert_string_equal(e.code, "bad_name");
	}
}

/* Canonical means canonical: the checker refuses what the normaliser would change. */
static void test_check_address_canonical_only(void **state)
{
	static const char *const bad[] = {
	    "J\xc3\xb6rg@example.com",  /* uppercase ASCII */
	    "j\xc3\x96rg@example.com",  /* uppercase O-umlaut */
	    "jo\xcc\x88rg@example.com", /* not NFC */
	    "j\xc3\xb6rg@b\xc3\xbc"
	    "cher.example",                      /* U-label domain */
	    "j\xc3\xb6rg@XN--BCHER-KVA.example", /* uppercase A-label */
	};
	struct err e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (name_check_address(bad[i], &e) != -1)
			fail_msg("case %zu accepted", i);
	}
	assert_int_equal(name_check_address("j\xc3\xb6rg@xn--bcher-kva.example", &e), 0);
	assert_true(name_is_ascii("alice@xn--bcher-kva.example"));
	assert_false(name_is_ascii("j\xc3\xb6rg@example.com"));
}

/* A local part is limited in octets, not characters (RFC 6531 §3.3). */
static void test_canon_address_lengths(void **state)
{
	char in[300], out[256];
	struct err e;
	size_t i;

	for (i = 0; i < 32; i++)
		memcpy(in + 2 * i, "\xc3\xb6", 2); /* 64 octets */
	memcpy(in + 64, "@example.com", 13);
	assert_int_equal(name_canon_address(in, out, sizeof(out), &e), 0);
	memmove(in + 1, in, strlen(in) + 1);
	in[0] = 'a'; /* 65 octets */
	assert_int_equal(name_canon_address(in, out, sizeof(out), &e), -1);
	assert_string_equal(e.code, "bad_name");
}

static void test_canon_domain(void **state)
{
	char out[256];
	struct err e;

	assert_int_equal(name_canon_idn("B\xc3\xbc"
	                                "cher.Example.",
	                                out, sizeof(out), &e),
	                 0);
	assert_string_equal(out, "xn--bcher-kva.example");
	assert_int_equal(name_canon_idn("stra\xc3\x9f"
	                                "e.example",
	                                out, sizeof(out), &e),
	                 0);
	assert_string_equal(out, "xn--strae-oqa.example"); /* non-transitional: ß stays */
	assert_int_equal(name_canon_idn("xn--zz.example", out, sizeof(out), &e), -1);
	assert_int_equal(name_canon_idn("b\xc3.example", out, sizeof(out), &e), -1);
	assert_int_equal(name_check_domain("xn--zz.example", &e), -1);
	/* the legacy entry points (HELO, policy requests) take no U-label */
	assert_int_equal(name_canon_domain("b\xc3\xbc"
	                                   "cher.example",
	                                   out, sizeof(out), &e),
	                 -1);
	assert_int_equal(name_canon_domain("XN--BCHER-KVA.example.", out, sizeof(out), &e), 0);
	assert_string_equal(out, "xn--bcher-kva.example");
	assert_int_equal(name_check_domain("xn--bcher-kva.example", &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_canon_address_one_name),
	    cmocka_unit_test(test_canon_address_refused),
	    cmocka_unit_test(test_check_address_canonical_only),
	    cmocka_unit_test(test_canon_address_lengths),
	    cmocka_unit_test(test_canon_domain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
