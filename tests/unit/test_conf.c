/* test_conf.c - the configuration table: syntax, types, bounds and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/conf.h"

struct settings {
	char *name;
	char *unset;
	long long count;
	long long offset;
	int flag;
	long long timeout;
	long long size;
};

static const struct conf_param table[] = {
    {"name", CONF_STR, "anchor", 0, 0, offsetof(struct settings, name), "a string"},
    {"unset", CONF_STR, NULL, 0, 0, offsetof(struct settings, unset), "no default"},
    {"count", CONF_INT, "10", 1, 100000, offsetof(struct settings, count), "bounded int"},
    {"offset", CONF_INT, "-3", -10, 10, offsetof(struct settings, offset), "negative ok"},
    {"flag", CONF_BOOL, "no", 0, 0, offsetof(struct settings, flag), "a bool"},
    {"timeout", CONF_DURATION, "5m", 1, 30 * 86400, offsetof(struct settings, timeout), "dur"},
    {"size", CONF_SIZE, "64k", 1, 1LL << 30, offsetof(struct settings, size), "size"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

/* One case: a file's text, and either the field values it yields or the error. */
struct conf_case {
	const char *text;
	const char *error; /* exact message, or NULL for success */
	long long count, offset, timeout, size;
	int flag;
	const char *name;
};

#define OK(t, c, o, d, s, f, n)                                                                    \
	{                                                                                          \
		t, NULL, c, o, d, s, f, n                                                          \
	}
#define BAD(t, msg)                                                                                \
	{                                                                                          \
		t, msg, 0, 0, 0, 0, 0, NULL                                                        \
	}

static const struct conf_case cases[] = {
    OK("", 10, -3, 300, 65536, 0, "anchor"),
    OK("# only a comment\n\n   \n", 10, -3, 300, 65536, 0, "anchor"),
    OK("count = 5\n", 5, -3, 300, 65536, 0, "anchor"),
    OK("count=100000", 100000, -3, 300, 65536, 0, "anchor"),
    OK("offset = -10\n", 10, -10, 300, 65536, 0, "anchor"),
    OK("count = 5\ncount = 6\n", 6, -3, 300, 65536, 0, "anchor"), /* last wins */
    OK("count = 7\r\n", 7, -3, 300, 65536, 0, "anchor"),
    OK("#count = 7\n  # indented comment\ncount = 8", 8, -3, 300, 65536, 0, "anchor"),
    OK("timeout = 30\n", 10, -3, 30, 65536, 0, "anchor"),
    OK("timeout = 30s\n", 10, -3, 30, 65536, 0, "anchor"),
    OK("timeout = 2h\n", 10, -3, 7200, 65536, 0, "anchor"),
    OK("timeout = 7d\n", 10, -3, 604800, 65536, 0, "anchor"),
    OK("timeout = 1w\n", 10, -3, 604800, 65536, 0, "anchor"),
    OK("timeout = 5M\n", 10, -3, 300, 65536, 0, "anchor"),
    OK("size = 512\n", 10, -3, 300, 512, 0, "anchor"),
    OK("size = 1m\n", 10, -3, 300, 1048576, 0, "anchor"),
    OK("size = 1g\n", 10, -3, 300, 1073741824, 0, "anchor"),
    OK("size = 64KB\n", 10, -3, 300, 65536, 0, "anchor"),
    OK("size = 2KiB\n", 10, -3, 300, 2048, 0, "anchor"),
    OK("flag = yes", 10, -3, 300, 65536, 1, "anchor"),
    OK("flag = TRUE", 10, -3, 300, 65536, 1, "anchor"),
    OK("flag = on", 10, -3, 300, 65536, 1, "anchor"),
    OK("flag = 1\nflag = off", 10, -3, 300, 65536, 0, "anchor"),
    OK("name = hello world  \n", 10, -3, 300, 65536, 0, "hello world"),
    OK("name =\n", 10, -3, 300, 65536, 0, ""),
    OK("name = a=b\n", 10, -3, 300, 65536, 0, "a=b"),
    OK("name = a # not a comment\n", 10, -3, 300, 65536, 0, "a # not a comment"),
    OK("name = first,\n    second,\n\tthird\ncount = 2", 2, -3, 300, 65536, 0,
       "first, second, third"),
    OK("name\n  = cont\n", 10, -3, 300, 65536, 0, "cont"),
    BAD("count = 0\n", "t.conf:1: count = 0: must be between 1 and 100000"),
    BAD("\n\ncount = 100001\n", "t.conf:3: count = 100001: must be between 1 and 100000"),
    BAD("count = abc", "t.conf:1: count = abc: not a number"),
    BAD("count = 5x", "t.conf:1: count = 5x: not a number"),
    BAD("count =", "t.conf:1: count = : not a number"),
    BAD("count = 99999999999999999999", "t.conf:1: count = 99999999999999999999: not a number"),
    BAD("offset = -11", "t.conf:1: offset = -11: must be between -10 and 10"),
    BAD("timeout = 5y", "t.conf:1: timeout = 5y: unknown unit (use s, m, h, d or w)"),
    BAD("timeout = -5", "t.conf:1: timeout = -5: must not be negative"),
    BAD("timeout = 31d", "t.conf:1: timeout = 31d: must be between 1 and 2592000"),
    BAD("timeout = 0", "t.conf:1: timeout = 0: must be between 1 and 2592000"),
    BAD("size = 2g", "t.conf:1: size = 2g: must be between 1 and 1073741824"),
    BAD("size = 5q", "t.conf:1: size = 5q: unknown unit (use k, m, g or t)"),
    BAD("size = 9999999999999999t", "t.conf:1: size = 9999999999999999t: too large"),
    BAD("flag = maybe", "t.conf:1: flag = maybe: must be yes or no"),
    BAD("count = 5\nbogus = 1\n", "t.conf:2: unknown parameter \"bogus\""),
    BAD("Count = 5", "t.conf:1: unknown parameter \"Count\""),
    BAD("count 5", "t.conf:1: expected \"name = value\", got \"count 5\""),
    BAD("= 5", "t.conf:1: bad parameter name \"\""),
    BAD("my count = 5", "t.conf:1: bad parameter name \"my count\""),
    BAD("  count = 5", "t.conf:1: continuation line without a parameter before it"),
    /* an error in a continued line is reported where the line began */
    BAD("name = x\ncount =\n  0\n", "t.conf:2: count = 0: must be between 1 and 100000"),
};

static void test_cases(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct conf_case *c = &cases[i];
		struct settings s;
		struct err e;
		int rc;

		memset(&s, 0, sizeof(s));
		err_clear(&e);
		rc = conf_load_buffer(table, &s, "t.conf", c->text, strlen(c->text), &e);
		if (c->error != NULL) {
			if (rc != -1 || strcmp(e.msg, c->error) != 0)
				fail_msg("case %zu \"%s\": want error \"%s\", got rc %d \"%s\"", i,
				         c->text, c->error, rc, e.msg);
			assert_int_equal(e.kind, ERR_INPUT);
			assert_string_equal(e.code, "bad_config");
		} else {
			if (rc != 0)
				fail_msg("case %zu \"%s\": unexpected error \"%s\"", i, c->text,
				         e.msg);
			assert_int_equal(s.count, c->count);
			assert_int_equal(s.offset, c->offset);
			assert_int_equal(s.timeout, c->timeout);
			assert_int_equal(s.size, c->size);
			assert_int_equal(s.flag, c->flag);
			assert_non_null(s.name);
			assert_string_equal(s.name, c->name);
			assert_null(s.unset);
		}
		conf_free(table, &s);
		assert_null(s.name);
	}
}

static void test_nul_byte(void **state)
{
	static const char text[] = "count = 5\ncou\0nt = 6\n";
	struct settings s;
	struct err e;

	memset(&s, 0, sizeof(s));
	assert_int_equal(conf_load_buffer(table, &s, "t.conf", text, sizeof(text) - 1, &e), -1);
	assert_string_equal(e.msg, "t.conf:2: NUL byte in line");
	conf_free(table, &s);
}

static void test_set_overrides(void **state)
{
	struct settings s;
	struct err e;

	memset(&s, 0, sizeof(s));
	assert_int_equal(conf_defaults(table, &s, &e), 0);
	assert_int_equal(conf_set(table, &s, "name", "override", &e), 0);
	assert_string_equal(s.name, "override");
	assert_int_equal(conf_set(table, &s, "size", "2k", &e), 0);
	assert_int_equal(s.size, 2048);
	assert_int_equal(conf_set(table, &s, "nope", "1", &e), -1);
	assert_string_equal(e.msg, "unknown parameter \"nope\"");
	assert_int_equal(conf_set(table, &s, "count", "0", &e), -1);
	assert_string_equal(e.msg, "count = 0: must be between 1 and 100000");
	assert_int_equal(s.count, 10); /* a refused value leaves the old one */
	conf_free(table, &s);
	conf_free(table, NULL);
}

/* Shared code reads a setting by name and kind (conf_get_*); a missing name or another
 * kind is an error, not a read of the wrong field. */
static void test_get_by_name(void **state)
{
	struct settings s;
	const char *str = NULL;
	long long n = 0;
	int b = -1;
	struct err e;

	memset(&s, 0, sizeof(s));
	assert_int_equal(conf_defaults(table, &s, &e), 0);
	assert_int_equal(conf_get_str(table, &s, "name", &str, &e), 0);
	assert_string_equal(str, "anchor");
	assert_int_equal(conf_get_bool(table, &s, "flag", &b, &e), 0);
	assert_int_equal(b, 0);
	assert_int_equal(conf_get_num(table, &s, "count", &n, &e), 0);
	assert_int_equal(n, 10);
	assert_int_equal(conf_get_num(table, &s, "timeout", &n, &e), 0);
	assert_int_equal(n, 300);
	assert_int_equal(conf_get_num(table, &s, "size", &n, &e), 0);
	assert_int_equal(n, 65536);
	assert_int_equal(conf_get_num(table, &s, "name", &n, &e), -1);
	assert_int_equal(e.kind, ERR_INTERNAL);
	assert_int_equal(conf_get_str(table, &s, "count", &str, &e), -1);
	assert_int_equal(conf_get_bool(table, &s, "nope", &b, &e), -1);
	conf_free(table, &s);
}

static void test_dump(void **state)
{
	struct settings s;
	struct err e;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	memset(&s, 0, sizeof(s));
	assert_int_equal(conf_load_buffer(table, &s, "t", "flag = yes\ntimeout = 1h", 23, &e), 0);
	f = open_memstream(&out, &len);
	assert_non_null(f);
	conf_dump(table, &s, f);
	fclose(f);
	assert_string_equal(out, "name = anchor\n"
	                         "unset =\n"
	                         "count = 10\n"
	                         "offset = -3\n"
	                         "flag = yes\n"
	                         "timeout = 3600\n"
	                         "size = 65536\n");
	free(out);
	conf_free(table, &s);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/test_conf_XXXXXX";
	struct settings s;
	struct err e;
	int fd = mkstemp(path);
	static const char text[] = "# sample\ncount = 42\nname = from file\n\nsize = 0\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);

	memset(&s, 0, sizeof(s));
	assert_int_equal(conf_load(table, &s, path, &e), -1);
	/* the error names the file as given and the line */
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, ":5: size = 0: must be between 1 and 1073741824"));
	assert_int_equal(s.count, 42);
	conf_free(table, &s);

	memset(&s, 0, sizeof(s));
	assert_int_equal(conf_load(table, &s, NULL, &e), 0);
	assert_int_equal(s.count, 10);
	conf_free(table, &s);

	unlink(path);
	memset(&s, 0, sizeof(s));
	assert_int_equal(conf_load(table, &s, path, &e), -1);
	assert_non_null(strstr(e.msg, "No such file"));
	conf_free(table, &s);
}

static void test_bad_default(void **state)
{
	static const struct conf_param broken[] = {
	    {"n", CONF_INT, "lots", 0, 0, 0, NULL},
	    {NULL, 0, NULL, 0, 0, 0, NULL},
	};
	long long n = 0;
	struct err e;

	assert_int_equal(conf_defaults(broken, &n, &e), -1);
	assert_int_equal(e.kind, ERR_INTERNAL);
	assert_non_null(strstr(e.msg, "n = lots: not a number"));
}

static void test_unbounded(void **state)
{
	static const struct conf_param free_table[] = {
	    {"n", CONF_INT, "0", 0, 0, 0, NULL},
	    {NULL, 0, NULL, 0, 0, 0, NULL},
	};
	long long n = 0;
	struct err e;

	assert_int_equal(conf_set(free_table, &n, "n", "-9223372036854775808", &e), 0);
	assert_true(n < 0);
	assert_int_equal(conf_set(free_table, &n, "n", "9223372036854775807", &e), 0);
	assert_int_equal(n, 9223372036854775807LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),         cmocka_unit_test(test_nul_byte),
	    cmocka_unit_test(test_set_overrides), cmocka_unit_test(test_dump),
	    cmocka_unit_test(test_load_file),     cmocka_unit_test(test_bad_default),
	    cmocka_unit_test(test_unbounded),     cmocka_unit_test(test_get_by_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
