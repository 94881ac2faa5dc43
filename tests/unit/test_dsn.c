/*
 * test_dsn.c - RFC 3461 parameters: xtext, RET, ENVID, NOTIFY, ORCPT, both through
 * lib/mail/dsn.h and through the SMTP command parser that applies them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/dsn.h"
#include "mail/queue.h"
#include "mail/queue_priv.h" /* queue_msg_set_dsn: what queue_submit_dsn checks */
#include "mail/smtp.h"

/* A record written before DSN existed: it must read back with no DSN parameter. */
static const char old_record[] = "anchor-queue 1\n"
                                 "id 00655f3a2b0a1b2c3d4e5f60718293a4\n"
                                 "arrival 1700000000\n"
                                 "size 2\n"
                                 "sender alice@example.org\n"
                                 "flags requiretls\n"
                                 "rcpt deferred 1 1700000300 bob@example.net\n"
                                 "reply 451 4.7.0 later\n"
                                 "end\n"
                                 "hi";

static const char dsn_record[] = "anchor-queue 1\n"
                                 "id 00655f3a2b0a1b2c3d4e5f60718293a5\n"
                                 "arrival 1700000000\n"
                                 "size 2\n"
                                 "sender alice@example.org\n"
                                 "dsn-ret full\n"
                                 "dsn-envid QQ+2B314159\n"
                                 "rcpt pending 0 0 bob@example.net\n"
                                 "reply \n"
                                 "notify success,delay\n"
                                 "orcpt rfc822;Bob+2Bx@example.net\n"
                                 "rcpt pending 0 0 carol@example.net\n"
                                 "reply \n"
                                 "notify never\n"
                                 "end\n"
                                 "hi";

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
	assert_int_equal(dsn_xtext_decode("a+C3b", 5, out, sizeof(out)), -1); /* 8-bit */
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

static void test_records(void **state)
{
	struct err e = {0};
	size_t off = 0, len = 0;
	struct queue_msg *m = queue_record_parse(old_record, strlen(old_record), &off, &e), *c;
	char *txt;

	(void)state;
	assert_non_null(m);
	assert_int_equal(m->flags, QUEUE_F_REQUIRETLS);
	assert_int_equal(m->dsn_ret, DSN_RET_NONE);
	assert_null(m->dsn_envid);
	assert_int_equal(m->rcpts[0].dsn_notify, 0);
	assert_null(m->rcpts[0].dsn_orcpt);
	txt = queue_record_format(m, &len, &e);
	assert_int_equal(len, off); /* written back exactly as before */
	assert_memory_equal(txt, old_record, len);
	free(txt);
	queue_msg_free(m);

	m = queue_record_parse(dsn_record, strlen(dsn_record), &off, &e);
	assert_non_null(m);
	assert_int_equal(m->dsn_ret, DSN_RET_FULL);
	assert_string_equal(m->dsn_envid, "QQ+2B314159");
	assert_int_equal(m->rcpts[0].dsn_notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY);
	assert_string_equal(m->rcpts[0].dsn_orcpt, "rfc822;Bob+2Bx@example.net");
	assert_int_equal(m->rcpts[1].dsn_notify, DSN_NOTIFY_NEVER);
	assert_null(m->rcpts[1].dsn_orcpt);
	c = queue_msg_dup(m);
	assert_non_null(c);
	txt = queue_record_format(c, &len, &e);
	assert_int_equal(len, off);
	assert_memory_equal(txt, dsn_record, len);
	free(txt);
	queue_msg_free(c);
	queue_msg_free(m);

	/* malformed DSN lines make the record corrupt */
	static const char *const bad[] = {"dsn-ret all\n", "dsn-envid a+2\n", "notify NEVER\n",
	                                  "notify never,success\n", "orcpt bob@example.net\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[1024];
		int rcpt_line = bad[i][0] == 'n' || bad[i][0] == 'o';
		const char *at = strstr(old_record, rcpt_line ? "end\n" : "rcpt ");

		snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - old_record), old_record, bad[i],
		         at);
		assert_null(queue_record_parse(buf, strlen(buf), &off, &e));
		assert_int_equal(e.kind, ERR_INPUT);
	}
}

static void test_submit_checks(void **state)
{
	struct queue_msg m = {0};
	struct queue_rcpt r = {0};
	struct err e = {0};
	unsigned bad_notify = DSN_NOTIFY_NEVER | DSN_NOTIFY_SUCCESS;
	const char *bad_orcpt[] = {"no-semicolon"};
	struct queue_dsn d1 = {.notify = &bad_notify}, d2 = {.orcpt = bad_orcpt},
	                 d3 = {.envid = "a b"};

	(void)state;
	m.rcpts = &r;
	m.nrcpt = 1;
	assert_int_equal(queue_msg_set_dsn(&m, &d1, &e), -1);
	assert_int_equal(queue_msg_set_dsn(&m, &d2, &e), -1);
	assert_int_equal(queue_msg_set_dsn(&m, &d3, &e), -1);
	assert_int_equal(e.kind, ERR_INPUT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xtext),       cmocka_unit_test(test_values),
	    cmocka_unit_test(test_smtp_params), cmocka_unit_test(test_smtp_values),
	    cmocka_unit_test(test_records),     cmocka_unit_test(test_submit_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
