/* test_db.c - unit tests for lib/core/db.c that need no server: what a daemon gets when the
 * database cannot be reached.  Statements, the SQLSTATE mapping, reconnects and
 * migrations run against a real cluster in tests/integration (test_keyserver_dbrestart.py
 * and every key-server test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/db.h"

static char dir[] = "/tmp/anchor-db-XXXXXX";
static char conninfo[256];

static int group_setup(void **state)
{
	if (mkdtemp(dir) == NULL)
		return -1;
	/* A socket directory with no server in it: refused at once, no network involved. */
	snprintf(conninfo, sizeof(conninfo), "host=%s port=5 dbname=anchor connect_timeout=2", dir);
	return 0;
}

static int group_teardown(void **state)
{
	return rmdir(dir);
}

static void expect_unavailable(const struct err *e)
{
	assert_int_equal(e->kind, ERR_TEMP);
	assert_string_equal(e->code, "unavailable");
	assert_int_equal(strncmp(e->msg, "cannot connect to the database: ", 32), 0);
	/* libpq's reason is kept, on one line (it ends in a newline of its own). */
	assert_true(strlen(e->msg) > 32);
	assert_null(strchr(e->msg, '\n'));
	assert_non_null(strstr(e->msg, dir));
}

static void test_connect_unreachable(void **state)
{
	struct err e = {0};

	assert_null(db_connect(conninfo, &e));
	expect_unavailable(&e);
	db_close(NULL);
}

static void test_bad_conninfo(void **state)
{
	struct err e = {0};

	/* A conninfo libpq cannot parse is reported the same way, with libpq's reason. */
	assert_null(db_connect("this is = not valid = conninfo", &e));
	assert_int_equal(e.kind, ERR_TEMP);
	assert_string_equal(e.code, "unavailable");
	assert_null(strchr(e.msg, '\n'));
}

static void test_pool_unreachable(void **state)
{
	struct err e = {0};

	/* The pool connects every member up front and gives up cleanly on the first failure. */
	assert_null(db_pool_new(conninfo, 3, &e));
	expect_unavailable(&e);
	db_pool_free(NULL);
}

/* WAL positions as PostgreSQL prints them (pg_current_wal_lsn()); 0 for anything else. */
static void test_lsn_parse(void **state)
{
	assert_true(db_lsn_parse("0/16B3748") == 0x16B3748ULL);
	assert_true(db_lsn_parse("16/B374D848") == ((0x16ULL << 32) | 0xB374D848ULL));
	assert_true(db_lsn_parse("FFFFFFFF/FFFFFFFF") == UINT64_MAX);
	assert_true(db_lsn_parse("0/16B3748") < db_lsn_parse("1/0"));
	const char *bad[] = {NULL,          "",     "/",    "0/",   "/1",    "0x1/2",
	                     "1/2 ",        " 1/2", "-1/2", "1/-2", "1/2/3", "123456789/0",
	                     "0/123456789", "g/1",  "12"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_true(db_lsn_parse(bad[i]) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_connect_unreachable),
	    cmocka_unit_test(test_lsn_parse),
	    cmocka_unit_test(test_bad_conninfo),
	    cmocka_unit_test(test_pool_unreachable),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
