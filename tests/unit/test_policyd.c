/*
 * Tests of anchor-policyd's pure parts: the policy protocol reader, the
 * verdict -> action mapping (fail-open and fail-closed), the service's JSON,
 * the cache and the settings checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "policyd.h"

static int feed(struct policy_request *r, const char *text)
{
	const char *p = text;
	int done = 0;

	while (*p && !done) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		done = policy_request_line(r, p, len, 20);
		p += len + (nl ? 1 : 0);
	}
	return done;
}

static void test_request_good(void **state)
{
	struct policy_request r;
	struct err e;
	char d[256];

	policy_request_reset(&r);
	assert_int_equal(feed(&r, "request=smtpd_access_policy\nprotocol_state=RCPT\n"
	                          "client_address=192.0.2.66\nhelo_name=mx.example.com\n"
	                          "sender=Alice@Example.COM\nrecipient=bob@example.net\n"
	                          "ccert_subject=\nsize=1234\n\n"),
	                 1);
	assert_int_equal(policy_request_check(&r, &e), 0);
	assert_string_equal(r.client_address, "192.0.2.66");
	assert_string_equal(r.helo_name, "mx.example.com");
	assert_string_equal(r.protocol_state, "RCPT");
	assert_int_equal(r.nattrs, 8);
	assert_int_equal(policy_sender_domain(&r, d, sizeof(d), &e), 0);
	assert_string_equal(d, "example.com");
	/* CRLF tolerated; the null sender has no domain */
	policy_request_reset(&r);
	assert_int_equal(feed(&r, "request=smtpd_access_policy\r\nclient_address=2001:db8::1\r\n"
	                          "sender=\r\n\r\n"),
	                 1);
	assert_int_equal(policy_request_check(&r, &e), 0);
	assert_int_equal(policy_sender_domain(&r, d, sizeof(d), &e), 0);
	assert_string_equal(d, "");
	/* not finished without the empty line */
	policy_request_reset(&r);
	assert_int_equal(feed(&r, "request=smtpd_access_policy\nclient_address=192.0.2.1\n"), 0);
}

static void expect_bad(const char *text, const char *why_part)
{
	struct policy_request r;
	struct err e;

	policy_request_reset(&r);
	assert_int_equal(feed(&r, text), 1);
	assert_int_equal(policy_request_check(&r, &e), -1);
	assert_int_equal(e.kind, ERR_INPUT);
	if (strstr(e.msg, why_part) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", e.msg, why_part);
}

static void test_request_bad(void **state)
{
	expect_bad("request=smtpd_access_policy\nno equals sign\nclient_address=192.0.2.1\n\n",
	           "not name=value");
	expect_bad("request=smtpd_access_policy\n=value\nclient_address=192.0.2.1\n\n",
	           "not name=value");
	expect_bad("request=junk\nclient_address=192.0.2.1\n\n", "not smtpd_access_policy");
	expect_bad("client_address=192.0.2.1\n\n", "not smtpd_access_policy");
	expect_bad("request=smtpd_access_policy\n\n", "no client_address");
	expect_bad("request=smtpd_access_policy\nclient_address=mx.example\n\n",
	           "not an IP address");
	expect_bad("request=smtpd_access_policy\nclient_address=192.0.2.1\n"
	           "client_address=192.0.2.2\n\n",
	           "appears twice");
	{
		char big[2000];

		/* Postfix's own attributes must fit; the client's text is cut instead. */
		snprintf(big, sizeof(big),
		         "request=smtpd_access_policy\nclient_address=192.0.2.1\n"
		         "instance=%0300d\n\n",
		         0);
		expect_bad(big, "too long");
	}
	{
		char many[2000] = "request=smtpd_access_policy\nclient_address=192.0.2.1\n";
		int i;

		for (i = 0; i < 25; i++)
			strcat(many, "x=1\n");
		strcat(many, "\n");
		expect_bad(many, "more than 20 attributes");
	}
	/* The first fault is the one kept. */
	{
		struct policy_request r;

		policy_request_reset(&r);
		feed(&r, "bad1\nbad2\n\n");
		assert_non_null(strstr(r.why, "bad1"));
	}
}

/* The SMTP client's own text never makes a request malformed (that is answered DUNNO:
 * a client must not be able to choose it); a value too long for its field is cut. */
static void test_request_client_text(void **state)
{
	struct policy_request r;
	struct err e;
	char text[4000], d[256], h[512];
	char longhelo[701], longlocal[801];

	memset(longhelo, 'a', sizeof(longhelo) - 1);
	longhelo[sizeof(longhelo) - 1] = '\0';
	memset(longlocal, 'b', sizeof(longlocal) - 1);
	longlocal[sizeof(longlocal) - 1] = '\0';
	snprintf(text, sizeof(text),
	         "request=smtpd_access_policy\nclient_address=192.0.2.1\nhelo_name=%s\n"
	         "sender=%s@Listed.Example.\nrecipient=%s@example.net\n\n",
	         longhelo, longlocal, longlocal);
	policy_request_reset(&r);
	assert_int_equal(feed(&r, text), 1);
	assert_int_equal(policy_request_check(&r, &e), 0);
	assert_int_equal(r.helo_cut, 1);
	assert_int_equal(strlen(r.helo_name), POLICY_VALUE_MAX - 1);
	assert_int_equal(r.sender_cut, 1);
	assert_int_equal(r.recipient_cut, 1);
	/* the domain comes from the whole sender, canonical as the service has it */
	assert_int_equal(policy_sender_domain(&r, d, sizeof(d), &e), 0);
	assert_string_equal(d, "listed.example");

	/* a second helo_name is still a fault, cut or not */
	snprintf(text, sizeof(text),
	         "request=smtpd_access_policy\nclient_address=192.0.2.1\nhelo_name=%s\n"
	         "helo_name=x\n\n",
	         longhelo);
	expect_bad(text, "appears twice");

	/* unusable sender domains: left out of the query, with the reason */
	static const char *const unusable[] = {
	    "a@[127.0.0.1]",
	    "a@vm",
	    "a@exa_mple.com",
	    "a@b\xc3\xbc"
	    "cher.example",
	    "a@example..com",
	    "a@-x.example",
	};
	for (size_t i = 0; i < sizeof(unusable) / sizeof(unusable[0]); i++) {
		snprintf(text, sizeof(text),
		         "request=smtpd_access_policy\nclient_address=192.0.2.1\nsender=%s\n\n",
		         unusable[i]);
		policy_request_reset(&r);
		assert_int_equal(feed(&r, text), 1);
		assert_int_equal(policy_request_check(&r, &e), 0);
		assert_int_equal(policy_sender_domain(&r, d, sizeof(d), &e), -1);
		assert_string_equal(d, "");
	}
	/* a domain longer than any host name */
	snprintf(text, sizeof(text),
	         "request=smtpd_access_policy\nclient_address=192.0.2.1\nsender=a@%s\n\n",
	         longhelo);
	policy_request_reset(&r);
	assert_int_equal(feed(&r, text), 1);
	assert_int_equal(r.sender_domain_cut, 1);
	assert_int_equal(policy_sender_domain(&r, d, sizeof(d), &e), -1);

	/* the HELO is sent as the client wrote it, only made readable as UTF-8 */
	policy_helo_for_query("Vm", h, sizeof(h));
	assert_string_equal(h, "Vm");
	policy_helo_for_query("b\xc3\xbc"
	                      "cher.example",
	                      h, sizeof(h));
	assert_string_equal(h, "b\xc3\xbc"
	                       "cher.example");
	policy_helo_for_query("mx.example.com\xff", h, sizeof(h));
	assert_string_equal(h, "mx.example.com?");
	policy_helo_for_query("a\tb\x7f\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80", h, sizeof(h));
	assert_string_equal(h, "a?b?"
	                       "?????????");
	policy_helo_for_query("\xe2\x82", h, sizeof(h)); /* cut sequence */
	assert_string_equal(h, "??");
	policy_helo_for_query("abc\xc3\xbc", h, 5); /* never a half sequence */
	assert_string_equal(h, "abc");
}

static const struct policy_actions open_ = {POLICY_DUNNO, POLICY_REJECT, POLICY_DUNNO, POLICY_DUNNO,
                                            POLICY_DUNNO};

static void test_actions(void **state)
{
	struct policy_verdict v = {"block", "listed by 10 reporters\r\nInjected: header", ""};
	struct policy_actions a = open_;
	char out[640];

	policy_action_line(&a, "X-Rep", &v, NULL, out, sizeof(out));
	assert_string_equal(out, "action=REJECT 5.7.1 client blocked by reputation: listed by 10 "
	                         "reporters  Injected: header\n\n");
	strcpy(v.verdict, "unknown");
	policy_action_line(&a, "X-Rep", &v, NULL, out, sizeof(out));
	assert_string_equal(out, "action=DUNNO\n\n");
	a.unknown = POLICY_PREPEND;
	snprintf(v.reason, sizeof(v.reason), "too few reporters");
	policy_action_line(&a, "X-Rep", &v, NULL, out, sizeof(out));
	assert_string_equal(out, "action=PREPEND X-Rep: unknown; too few reporters\n\n");
	strcpy(v.verdict, "trusted");
	a.trusted = POLICY_OK;
	policy_action_line(&a, "X-Rep", &v, NULL, out, sizeof(out));
	assert_string_equal(out, "action=OK\n\n");
	/* failure: fail open by default ... */
	policy_action_line(&a, "X-Rep", NULL, "timeout after 300 ms", out, sizeof(out));
	assert_string_equal(out, "action=DUNNO\n\n");
	/* ... or closed, temporarily or for good */
	a.on_error = POLICY_DEFER_IF_PERMIT;
	policy_action_line(&a, "X-Rep", NULL, "timeout after 300 ms", out, sizeof(out));
	assert_string_equal(out, "action=DEFER_IF_PERMIT 4.3.0 reputation service unavailable: "
	                         "timeout after 300 ms\n\n");
	a.on_error = POLICY_REJECT;
	policy_action_line(&a, "X-Rep", NULL, "down", out, sizeof(out));
	assert_int_equal(strncmp(out, "action=REJECT 5.3.0 ", 20), 0);
	a.block = POLICY_DEFER;
	strcpy(v.verdict, "block");
	policy_action_line(&a, "X-Rep", &v, NULL, out, sizeof(out));
	assert_int_equal(strncmp(out, "action=DEFER 4.7.1 client blocked", 33), 0);
}

static void test_verdict_json(void **state)
{
	struct policy_verdict v;
	struct err e;
	const char *ok = "{\"verdict\":\"block\",\"reasons\":[{\"code\":\"listed\",\"text\":"
	                 "\"listed by 10 independent reporting domains\"}],\"subjects\":[]}";

	assert_int_equal(policy_verdict_from_json(ok, strlen(ok), &v, &e), 0);
	assert_string_equal(v.verdict, "block");
	assert_string_equal(v.reason, "listed by 10 independent reporting domains");
	assert_int_equal(policy_verdict_from_json("{\"verdict\":\"unknown\"}", 21, &v, &e), 0);
	assert_string_equal(v.reason, "");
	assert_int_equal(policy_verdict_from_json("{\"verdict\":\"maybe\"}", 19, &v, &e), -1);
	assert_string_equal(e.code, "bad_answer");
	assert_int_equal(policy_verdict_from_json("<html>", 6, &v, &e), -1);
	assert_int_equal(policy_verdict_from_json("{}", 2, &v, &e), -1);
}

static void test_cache(void **state)
{
	struct policy_cache *c = policy_cache_new(64, 10);
	struct policy_verdict v = {"block", "x", ""}, got;

	assert_non_null(c);
	assert_false(policy_cache_get(c, "192.0.2.1||", 100, &got));
	policy_cache_put(c, "192.0.2.1||", 100, &v);
	assert_true(policy_cache_get(c, "192.0.2.1||", 105, &got));
	assert_string_equal(got.verdict, "block");
	assert_false(policy_cache_get(c, "192.0.2.1||", 110, &got)); /* expired */
	assert_false(policy_cache_get(c, "192.0.2.2||", 105, &got));
	assert_int_equal(policy_cache_hits(c), 1);
	policy_cache_free(c);
	assert_null(policy_cache_new(64, 0)); /* cache_ttl 0: none */
	assert_false(policy_cache_get(NULL, "k", 1, &got));
	policy_cache_put(NULL, "k", 1, &v);
	policy_cache_free(NULL);
}

static void test_settings(void **state)
{
	struct policy_settings s;
	struct policy_actions a;
	struct err e;

	memset(&s, 0, sizeof(s));
	assert_int_equal(conf_defaults(policy_settings_table, &s, &e), 0);
	assert_int_equal(policy_settings_check(&s, &a, &e), 0);
	assert_int_equal(a.on_error, POLICY_DUNNO); /* fail open by default */
	assert_int_equal(a.block, POLICY_REJECT);
	assert_int_equal(s.timeout_ms, 300);
	assert_int_equal(conf_set(policy_settings_table, &s, "on_error", "ok", &e), 0);
	assert_int_equal(policy_settings_check(&s, &a, &e), -1);
	assert_non_null(strstr(e.msg, "dunno, reject, defer, defer_if_permit"));
	assert_int_equal(conf_set(policy_settings_table, &s, "on_error", "defer_if_permit", &e), 0);
	assert_int_equal(conf_set(policy_settings_table, &s, "unknown_action", "reject", &e), 0);
	assert_int_equal(policy_settings_check(&s, &a, &e), -1);
	assert_int_equal(conf_set(policy_settings_table, &s, "unknown_action", "prepend", &e), 0);
	assert_int_equal(conf_set(policy_settings_table, &s, "header_name", "Bad: name", &e), 0);
	assert_int_equal(policy_settings_check(&s, &a, &e), -1);
	assert_int_equal(conf_set(policy_settings_table, &s, "header_name", "X-Ok", &e), 0);
	assert_int_equal(conf_set(policy_settings_table, &s, "reputation_url", "ftp://x", &e), 0);
	assert_int_equal(policy_settings_check(&s, &a, &e), -1);
	assert_int_equal(conf_set(policy_settings_table, &s, "reputation_url", "https://r:1", &e),
	                 0);
	assert_int_equal(policy_settings_check(&s, &a, &e), 0);
	assert_int_equal(a.on_error, POLICY_DEFER_IF_PERMIT);
	assert_int_equal(conf_set(policy_settings_table, &s, "timeout_ms", "1", &e), -1);
	conf_free(policy_settings_table, &s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_good),
	    cmocka_unit_test(test_request_bad),
	    cmocka_unit_test(test_request_client_text),
	    cmocka_unit_test(test_actions),
	    cmocka_unit_test(test_verdict_json),
	    cmocka_unit_test(test_cache),
	    cmocka_unit_test(test_settings),
	};

	return cmocka_run_group_tests_name("policyd", tests, NULL, NULL);
}
