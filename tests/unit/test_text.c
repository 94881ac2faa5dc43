/* test_text.c - RFC 5322 atext and the ASCII lower-casing copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/text.h"

static void test_atext(void **state)
{
	const char *yes = "azAZ09!#$%&'*+-/=?^_`{|}~";
	const char *no = " \"(),.:;<>@[\\]\t";

	for (const char *p = yes; *p; p++)
		assert_true(text_is_atext((unsigned char)*p));
	for (const char *p = no; *p; p++)
		assert_false(text_is_atext((unsigned char)*p));
	assert_false(text_is_atext(0));
	assert_false(text_is_atext(0x80));
	assert_false(text_is_atext(0xff));
	assert_false(text_is_atext(-1));
}

static void test_lower_copy(void **state)
{
	char out[8];

	text_lower_copy(out, sizeof(out), "AbC.D\xc3\x89");
	assert_string_equal(out, "abc.d\xc3\x89");
	text_lower_copy(out, sizeof(out), "ABCDEFGHIJ");
	assert_string_equal(out, "abcdefg"); /* truncated, terminated */
	text_lower_copy(out, sizeof(out), NULL);
	assert_string_equal(out, "");
	text_lower_copy(out, 1, "A");
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_atext),
	    cmocka_unit_test(test_lower_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
