/*
 * test_relay_auth.c - the submission_users table and the password check of
 * relay/auth.c (SMTP AUTH on the submission side).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <crypt.h>

#include "relayd.h"

struct fixture {
	char dir[64];
	char path[96];
	char y[256];   /* yescrypt of "pw-alice" */
	char six[256]; /* sha512-crypt of "pw-carol" */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct crypt_data cd;
	const char *salt;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/anchor-tauth-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/users", f->dir);
	memset(&cd, 0, sizeof(cd));
	salt = crypt_gensalt("$y$", 0, NULL, 0);
	assert_non_null(salt);
	snprintf(f->y, sizeof(f->y), "%s", crypt_r("pw-alice", salt, &cd));
	snprintf(f->six, sizeof(f->six), "%s", crypt_r("pw-carol", "$6$abcdefghijklmnop$", &cd));
	assert_true(strncmp(f->y, "$y$", 3) == 0 && strncmp(f->six, "$6$", 3) == 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_file(const struct fixture *f, const char *text, mode_t mode)
{
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(f->path, mode), 0);
}

/* Load text as the users file; NULL with e->msg holding the reason. */
static struct relayd_users *load(const struct fixture *f, const char *text, mode_t mode,
                                 struct err *e)
{
	write_file(f, text, mode);
	err_clear(e);
	return relayd_users_load(f->path, e);
}

static void test_load_and_verify(void **state)
{
	struct fixture *f = *state;
	struct relayd_users *u;
	struct err e;
	char text[1024];

	snprintf(text, sizeof(text),
	         "# users\n\n  alice@x.test:%s\r\nCarol@x.test:%s  \nlocked@x.test:!%s\n", f->y,
	         f->six, f->six);
	u = load(f, text, 0600, &e);
	if (u == NULL)
		fail_msg("%s", e.msg);
	assert_int_equal(relayd_users_count(u), 3);
	relayd_users_free(u);
	relayd_users_free(NULL);

	assert_int_equal(relayd_auth_verify(f->y, "pw-alice"), 1);
	assert_int_equal(relayd_auth_verify(f->y, "pw-alicE"), 0);
	assert_int_equal(relayd_auth_verify(f->y, ""), 0);
	assert_int_equal(relayd_auth_verify(f->six, "pw-carol"), 1);
	assert_int_equal(relayd_auth_verify(f->six, "pw-alice"), 0);
	/* a locked hash or a failure token never matches */
	snprintf(text, sizeof(text), "!%s", f->six);
	assert_int_equal(relayd_auth_verify(text, "pw-carol"), 0);
	assert_int_equal(relayd_auth_verify("*", "*"), 0);
	assert_int_equal(relayd_auth_verify("*0", "x"), 0);
}

static void test_refused_files(void **state)
{
	struct fixture *f = *state;
	struct relayd_users *u;
	struct err e;
	char text[1024];

	snprintf(text, sizeof(text), "alice@x.test:%s\n", f->y);
	/* group or others may read (or write) it: like ssh, no */
	assert_null(load(f, text, 0644, &e));
	assert_non_null(strstr(e.msg, "mode 0644): chmod 600 it"));
	assert_null(load(f, text, 0620, &e));
	assert_null(load(f, text, 0604, &e));
	u = load(f, text, 0400, &e);
	assert_non_null(u);
	relayd_users_free(u);
	/* malformed lines name their line */
	snprintf(text, sizeof(text), "alice@x.test:%s\nbob@x.test\n", f->y);
	assert_null(load(f, text, 0600, &e));
	assert_non_null(strstr(e.msg, "line 2"));
	snprintf(text, sizeof(text), "alice@x.test:%s\nnot an address:%s\n", f->y, f->y);
	assert_null(load(f, text, 0600, &e));
	assert_non_null(strstr(e.msg, "not an address"));
	snprintf(text, sizeof(text), "alice@x.test:%s\nALICE@x.test:%s\n", f->y, f->six);
	assert_null(load(f, text, 0600, &e));
	assert_non_null(strstr(e.msg, "twice"));
	/* weak or unknown hashes: DES, md5-crypt, sha256-crypt, plain text */
	assert_null(load(f, "alice@x.test:abJnggxhB/yWI\n", 0600, &e));
	assert_non_null(strstr(e.msg, "not one libcrypt accepts"));
	assert_null(load(f, "alice@x.test:$1$abc$def\n", 0600, &e));
	assert_null(load(f, "alice@x.test:$5$abc$def\n", 0600, &e));
	assert_null(load(f, "alice@x.test:secret\n", 0600, &e));
	assert_null(load(f, "alice@x.test:\n", 0600, &e));
	/* missing file */
	unlink(f->path);
	err_clear(&e);
	assert_null(relayd_users_load(f->path, &e));
	assert_non_null(strstr(e.msg, "cannot open"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_load_and_verify, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
