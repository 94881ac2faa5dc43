/*
 * test_log.c - core/log: log_repeat() writes a repeated error once, then its count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "core/log.h"

/* Run fn with stderr going to a temporary file; returns what it wrote (free it). */
static char *capture(void (*fn)(void *), void *arg)
{
	char path[] = "/tmp/anchor-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	char *out = calloc(1, 65536);
	FILE *f;

	assert_true(fd >= 0 && saved >= 0 && out != NULL);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	fn(arg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	f = fopen(path, "r");
	assert_non_null(f);
	fread(out, 1, 65535, f);
	fclose(f);
	unlink(path);
	return out;
}

static size_t count(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void five_then_window_over(void *arg)
{
	struct log_repeat *r = arg;

	for (int i = 0; i < 5; i++)
		log_repeat(r, "id1", "disk full for <a%d@x.example>", i);
	log_repeat_flush(r); /* the window is not over: nothing */
	r->since -= 61;      /* as if a minute had passed */
	log_repeat_flush(r);
	log_repeat_flush(r); /* counted once */
	log_repeat(r, "id2", "disk full for <b@x.example>");
}

static void test_repeat_counts(void **state)
{
	static struct log_repeat r = LOG_REPEAT_INIT(LOG_LVL_ERR, "disk full", 60);
	char *out;

	(void)state;
	log_init("test", LOG_LVL_INFO, 0);
	out = capture(five_then_window_over, &r);
	assert_int_equal(count(out, "\n"), 3);
	assert_int_equal(count(out, "req=id1 disk full for <a0@x.example>"), 1);
	assert_int_equal(count(out, "<a1@"), 0);
	assert_int_equal(count(out, "disk full: repeated 4 times in the last 6"), 1);
	assert_int_equal(count(out, "req=id2 disk full for <b@x.example>"), 1);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_repeat_counts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
