/*
 * test_dsn.c - RFC 3461 parameters: xtext, RET, ENVID, NOTIFY, ORCPT, both through
 * lib/mail/dsn.h and through the SMTP command parser that applies them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mail/dsn.h"
#include "mail/smtp.h"

static void test_xtext(void **state)
{
	char out[64];

	(void)state;
	assert_true(dsn_xtext_valid("abc", 3));
	assert_true(dsn_xtext_valid("a+2Bb", 5));
	assert_true(dsn_xtext_valid("", 0));
	assert_false(dsn_xtext_valid("a+2bb", 5)); /* lower-case hex */
	assert_false(dsn_xtext_valid("a+2", 3));   /* truncated */
	assert_false(dsn_xtext_valid("a+", 2));
	assert_false(dsn_xtext_valid("a=b", 3));
	assert_false(dsn_xtext_valid("a b", 3));
	assert_false(dsn_xtext_valid("a\x80", 2));
	assert_int_equal(dsn_xtext_decode("user+2Bx+3D@b.example", 21, out, sizeof(out)), 17);
	assert_string_equal(out, "user+x=@b.example");
	assert_int_equal(dsn_xtext_decode("a+0Db", 5, out, sizeof(out)), -1); /* a control */
	assert_int_equal(dsn_xtext_decode("abcdef", 6, out, 4), -1);          /* too long */
}

static void test_values(void **state)
{
	unsigned n = 0;
	enum dsn_ret r = DSN_RET_NONE;
	char buf[64];
	char longid[DSN_ENVID_MAX + 2];

	(void)state;
	assert_int_equal(dsn_ret_parse("full", 4, &r), 0);
	assert_int_equal(r, DSN_RET_FULL);
	assert_int_equal(dsn_ret_parse("HDRS", 4, &r), 0);
	assert_int_equal(r, DSN_RET_HDRS);
	assert_int_equal(dsn_ret_parse("BODY", 4, &r), -1);
	assert_int_equal(dsn_notify_parse("NEVER", 5, &n), 0);
	assert_int_equal(n, DSN_NOTIFY_NEVER);
	assert_int_equal(dsn_notify_parse("success,Delay", 13, &n), 0);
	assert_int_equal(n, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY);
	assert_int_equal(dsn_notify_parse("NEVER,SUCCESS", 13, &n), -1);
	assert_int_equal(dsn_notify_parse("SUCCESS,SUCCESS", 15, &n), -1);
	assert_int_equal(dsn_notify_parse("SUCCESS,", 8, &n), -1);
	assert_int_equal(dsn_notify_parse(",DELAY", 6, &n), -1);
	assert_int_equal(dsn_notify_parse("", 0, &n), -1);
	assert_int_equal(dsn_notify_parse("ALWAYS", 6, &n), -1);
	dsn_notify_format(DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, buf,
	                  sizeof(buf));
	assert_string_equal(buf, "SUCCESS,FAILURE,DELAY");
	dsn_notify_format(0, buf, sizeof(buf));
	assert_string_equal(buf, "");
	assert_true(dsn_envid_valid("QQ314159", 8));
	memset(longid, 'x', sizeof(longid));
	assert_true(dsn_envid_valid(longid, DSN_ENVID_MAX));
	assert_false(dsn_envid_valid(longid, DSN_ENVID_MAX + 1));
	assert_false(dsn_envid_valid("", 0));
	assert_true(dsn_orcpt_valid("rfc822;bob@d.example", 20));
	assert_true(dsn_orcpt_valid("RFC822;bob+2B1@d.example", 24));
	assert_true(dsn_orcpt_valid("utf-8;j\\x{00F6}rg@d.example", 26));
	assert_false(dsn_orcpt_valid("rfc822;", 7));
	assert_false(dsn_orcpt_valid(";bob@d.example", 14));
	assert_false(dsn_orcpt_valid("bob@d.example", 13));
	assert_false(dsn_orcpt_valid("rfc 822;bob@d.example", 21));
	assert_false(dsn_orcpt_valid("rfc822;bob+0A@d.example", 23)); /* a decoded LF */
}

struct param_case {
	const char *line;
	int code; /* 0: parses */
};

static const struct param_case param_cases[] = {
    {"MAIL FROM:<a@b.example> RET=FULL ENVID=QQ314159", 0},
    {"MAIL FROM:<> ret=hdrs", 0},
    {"MAIL FROM:<a@b.example> RET=FULL RET=HDRS", 501},
    {"MAIL FROM:<a@b.example> RET=ALL", 501},
    {"MAIL FROM:<a@b.example> RET", 501},
    {"MAIL FROM:<a@b.example> ENVID=a ENVID=b", 501},
    {"MAIL FROM:<a@b.example> ENVID=a+2", 501},
    {"MAIL FROM:<a@b.example> ENVID=a+0D", 501},
    {"MAIL FROM:<a@b.example> "
     "ENVID=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxx",
     501},
    {"MAIL FROM:<a@b.example> NOTIFY=NEVER", 555},
    {"RCPT TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d.example", 0},
    {"RCPT TO:<c@d.example> NOTIFY=NEVER", 0},
    {"RCPT TO:<c@d.example> NOTIFY=NEVER,FAILURE", 501},
    {"RCPT TO:<c@d.example> NOTIFY=DELAY NOTIFY=DELAY", 501},
    {"RCPT TO:<c@d.example> NOTIFY=", 501},
    {"RCPT TO:<c@d.example> ORCPT=c@d.example", 501},
    {"RCPT TO:<c@d.example> ORCPT=rfc822;a ORCPT=rfc822;b", 501},
    {"RCPT TO:<c@d.example> RET=FULL", 555},
};

static void test_smtp_params(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
		struct smtp_command c;
		struct err e = {0};
		int rc =
		    smtp_parse_command(param_cases[i].line, strlen(param_cases[i].line), &c, &e);

		if (param_cases[i].code == 0) {
			if (rc != 0)
				fail_msg("%s: %s", param_cases[i].line, e.msg);
		} else {
			assert_int_equal(rc, -1);
			if (c.error.code != param_cases[i].code)
				fail_msg("%s: got %d", param_cases[i].line, c.error.code);
			if (c.error.code == 501)
				assert_string_equal(c.error.status, "5.5.4");
		}
	}
}

static void test_smtp_values(void **state)
{
	struct smtp_command c;
	struct err e = {0};
	const char *mail = "MAIL FROM:<a@b.example> RET=HDRS ENVID=id+2B1";
	const char *rcpt = "RCPT TO:<c@d.example> ORCPT=rfc822;C@d.example NOTIFY=success,delay";

	(void)state;
	assert_int_equal(smtp_parse_command(mail, strlen(mail), &c, &e), 0);
	assert_int_equal(c.dsn_ret, DSN_RET_HDRS);
	assert_string_equal(c.dsn_envid, "id+2B1");
	assert_int_equal(smtp_parse_command(rcpt, strlen(rcpt), &c, &e), 0);
	assert_int_equal(c.dsn_notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY);
	assert_string_equal(c.dsn_orcpt, "rfc822;C@d.example");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xtext),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_smtp_params),
	    cmocka_unit_test(test_smtp_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
