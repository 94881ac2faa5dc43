/* test_err.c - unit tests for lib/core/err.c: errors as values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/err.h"

static void test_set_and_clear(void **state)
{
	struct err e = {0};

	assert_int_equal(err_set(&e, ERR_CONFLICT, "token_used", "token %d was used", 7), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_string_equal(e.code, "token_used");
	assert_string_equal(e.msg, "token 7 was used");
	err_clear(&e);
	assert_int_equal(e.kind, ERR_NONE);
	assert_string_equal(e.code, "");
	assert_string_equal(e.msg, "");
	err_setf(NULL, ERR_INPUT, "x", "ignored"); /* no error struct: nothing happens */
	err_clear(NULL);
}

/* Wrapping an earlier error in a new one, from the same struct, keeps the earlier text. */
static void test_wrap_own_message(void **state)
{
	struct err e = {0};

	err_set(&e, ERR_INPUT, "bad_name", "the domain name must be in lowercase");
	err_set(&e, ERR_INPUT, "bad_route", "servers[%d].host: %s", 3, e.msg);
	assert_string_equal(e.code, "bad_route");
	assert_string_equal(e.msg, "servers[3].host: the domain name must be in lowercase");

	err_set(&e, ERR_TEMP, e.code, "%s (%s)", e.msg, e.code);
	assert_int_equal(e.kind, ERR_TEMP);
	assert_string_equal(e.code, "bad_route");
	assert_string_equal(e.msg,
	                    "servers[3].host: the domain name must be in lowercase (bad_route)");
}

static void test_truncation(void **state)
{
	struct err e = {0};
	char long_msg[600], long_code[100];

	memset(long_msg, 'm', sizeof(long_msg) - 1);
	long_msg[sizeof(long_msg) - 1] = '\0';
	memset(long_code, 'c', sizeof(long_code) - 1);
	long_code[sizeof(long_code) - 1] = '\0';
	err_set(&e, ERR_INPUT, long_code, "%s", long_msg);
	assert_int_equal(strlen(e.msg), ERR_MSG_MAX - 1);
	assert_int_equal(strlen(e.code), ERR_CODE_MAX - 1);
	err_set(&e, ERR_INPUT, NULL, "x");
	assert_string_equal(e.code, "error");
}

static void test_http_status_and_temporary(void **state)
{
	static const struct {
		enum err_kind kind;
		int status, temporary;
	} map[] = {
	    {ERR_NONE, 200, 0},      {ERR_INPUT, 400, 0},    {ERR_AUTH, 401, 0},
	    {ERR_FORBIDDEN, 403, 0}, {ERR_NOTFOUND, 404, 0}, {ERR_CONFLICT, 409, 0},
	    {ERR_GONE, 410, 0},      {ERR_TOOBIG, 413, 0},   {ERR_MEDIA, 415, 0},
	    {ERR_UNPROC, 422, 0},    {ERR_RATE, 429, 1},     {ERR_TEMP, 503, 1},
	    {ERR_INTERNAL, 500, 0},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		assert_int_equal(err_http_status(map[i].kind), map[i].status);
		assert_int_equal(!!err_is_temporary(map[i].kind), map[i].temporary);
	}
	assert_int_equal(err_http_status((enum err_kind)99), 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_set_and_clear),
	    cmocka_unit_test(test_wrap_own_message),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_http_status_and_temporary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
