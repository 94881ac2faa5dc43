/*
 * Tests of lib/mail/arf.c and reputation/arf.c: the RFC 5965 Appendix B examples and real-looking
 * not-spam / auth-failure reports (tests/fuzz/corpus/arf/), then one malformed
 * report per error code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/arf.h"
#include "rep.h"

static char *slurp(const char *name, size_t *len)
{
	const char *src = getenv("ANCHOR_SRC");
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/arf/%s", src ? src : ".", name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s (run from the source tree or set ANCHOR_SRC)", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static int has_subject(const struct rep_report *r, const char *text)
{
	int i;

	for (i = 0; i < r->nsubjects; i++)
		if (strcmp(r->subjects[i].text, text) == 0)
			return 1;
	return 0;
}

static void test_rfc5965_b1_minimal(void **state)
{
	struct rep_report r;
	struct err e;
	size_t len;
	char *msg = slurp("rfc5965_b1.eml", &len);

	assert_int_equal(arf_parse(msg, len, &r, &e), 0);
	assert_int_equal(r.category, REP_SPAM);
	/* No Source-IP nor Reported-Domain: the original From is the one subject. */
	assert_int_equal(r.nsubjects, 1);
	assert_true(has_subject(&r, "address:somespammer@example.net"));
	/* No Message-ID on the report: the id is the message's hash. */
	assert_int_equal(strncmp(r.id, "sha256:", 7), 0);
	assert_int_equal(strlen(r.id), 7 + 64);
	/* No Arrival-Date: the report's Date, Thu, 8 Mar 2005 17:40:36 EDT. */
	assert_int_equal((long long)r.observed, 1110318036LL);
	assert_int_equal(r.verified_identity, 0);
	assert_string_equal(r.source, "arf");
	assert_non_null(strstr(r.evidence, "8787KJKJ3K4J3K4J3K4J3.mail@example.net"));
	free(msg);
}

static void test_rfc5965_b2_complete(void **state)
{
	struct arf_feedback f;
	struct rep_report r;
	struct err e;
	size_t len;
	char *msg = slurp("rfc5965_b2.eml", &len);

	assert_int_equal(arf_feedback_parse(msg, len, &f, &e), 0);
	assert_string_equal(f.feedback_type, "abuse");
	assert_string_equal(f.user_agent, "SomeGenerator/1.0");
	assert_string_equal(f.source_ip, "192.0.2.1");
	assert_string_equal(f.original_mail_from, "somespammer@example.net");
	assert_string_equal(f.reporting_mta, "dns; mail.example.com");
	assert_int_equal(f.nreported_domain, 1);
	assert_string_equal(f.reported_domain[0], "example.net");
	assert_int_equal(f.have_original, 1);
	assert_string_equal(f.orig_subject, "Earn money");

	assert_int_equal(arf_parse(msg, len, &r, &e), 0);
	assert_int_equal(r.category, REP_SPAM);
	assert_true(has_subject(&r, "ip:192.0.2.1"));
	assert_true(has_subject(&r, "domain:example.net"));
	assert_true(has_subject(&r, "address:somespammer@example.net"));
	assert_int_equal(r.nsubjects, 3); /* the From equals the envelope sender: once */
	/* Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT = 18:00:00 UTC */
	assert_int_equal((long long)r.observed, 1110304800LL);
	assert_non_null(strstr(r.evidence, "mail.example.com"));
	/* spf=fail is no verification */
	assert_int_equal(r.verified_identity, 0);
	free(msg);
}

static void test_not_spam_dkim_crlf(void **state)
{
	struct rep_report r;
	struct err e;
	size_t len;
	char *msg = slurp("notspam_dkim.eml", &len);

	assert_non_null(strstr(msg, "\r\n")); /* the sample really is CRLF */
	assert_int_equal(arf_parse(msg, len, &r, &e), 0);
	assert_int_equal(r.category, REP_NOT_SPAM);
	assert_string_equal(r.id, "fbl-20261123-0001@mail.example.org");
	assert_true(has_subject(&r, "ip:2001:db8::25")); /* canonical */
	assert_true(has_subject(&r, "signer:news.example.com"));
	assert_true(has_subject(&r, "address:letters@news.example.com"));
	/* dkim=pass header.d= the signer of the original */
	assert_int_equal(r.verified_identity, 1);
	/* Mon, 23 Nov 2026 08:59:00 +0100 */
	assert_int_equal((long long)r.observed, 1795420740LL);
	assert_non_null(strstr(r.evidence, "3 incidents"));
	free(msg);
}

/* lib/mail/arf.c alone (what anchorctl report --arf uses): canonical subject strings. */
static void test_report_make(void **state)
{
	struct arf_report r;
	struct err e;
	size_t len;
	char *msg = slurp("notspam_dkim.eml", &len);

	assert_int_equal(arf_report_make(msg, len, &r, &e), 0);
	assert_string_equal(r.category, "not-spam");
	assert_string_equal(r.id, "fbl-20261123-0001@mail.example.org");
	assert_string_equal(r.subjects[0], "ip:2001:db8::25");
	assert_int_equal(r.verified_identity, 1);
	assert_int_equal((long long)r.observed, 1795420740LL);
	for (int i = 0; i < r.nsubjects; i++)
		assert_non_null(strchr(r.subjects[i], ':'));
	free(msg);
}

static void test_auth_failure(void **state)
{
	struct rep_report r;
	struct err e;
	size_t len;
	char *msg = slurp("authfail.eml", &len);

	assert_int_equal(arf_parse(msg, len, &r, &e), 0);
	assert_int_equal(r.category, REP_AUTH_FAIL);
	assert_true(has_subject(&r, "ip:198.51.100.7"));
	assert_true(has_subject(&r, "domain:bank.example"));
	assert_true(has_subject(&r, "domain:bank-login.example"));
	assert_true(has_subject(&r, "signer:bank.example"));
	assert_true(has_subject(&r, "address:security@bank.example"));
	assert_string_equal(r.id, "af1@receiver.example");
	free(msg);
}

static void test_categories(void **state)
{
	enum rep_category c;

	assert_int_equal(arf_category("abuse", &c), 0);
	assert_int_equal(c, REP_SPAM);
	assert_int_equal(arf_category("fraud", &c), 0);
	assert_int_equal(c, REP_PHISHING);
	assert_int_equal(arf_category("virus", &c), 0);
	assert_int_equal(c, REP_MALWARE);
	assert_int_equal(arf_category("other", &c), 0);
	assert_int_equal(c, REP_ABUSE);
	assert_int_equal(arf_category("Not-Spam", &c), 0);
	assert_int_equal(c, REP_NOT_SPAM);
	assert_int_equal(arf_category("auth-failure", &c), 0);
	assert_int_equal(c, REP_AUTH_FAIL);
	assert_int_equal(arf_category("spam", &c), -1);
}

static void test_dates(void **state)
{
	time_t t;

	assert_int_equal(arf_date_parse("Thu, 8 Mar 2005 14:00:00 EDT", &t), 0);
	assert_int_equal((long long)t, 1110304800LL);
	assert_int_equal(arf_date_parse("8 Mar 2005 18:00:00 +0000", &t), 0);
	assert_int_equal((long long)t, 1110304800LL);
	assert_int_equal(arf_date_parse("Tue, 08 Mar 05 18:00 GMT", &t), 0);
	assert_int_equal((long long)t, 1110304800LL);
	assert_int_equal(arf_date_parse("Tue, 08 Mar 2005 19:30:00 +0130 (comment)", &t), 0);
	assert_int_equal((long long)t, 1110304800LL);
	assert_int_equal(arf_date_parse("yesterday", &t), -1);
	assert_int_equal(arf_date_parse("Thu, 8 Foo 2005 14:00:00 EDT", &t), -1);
	assert_int_equal(arf_date_parse("Thu, 8 Mar 2005 25:00:00 EDT", &t), -1);
	assert_int_equal(arf_date_parse("Thu, 8 Mar 2005 14:00:00 +0199", &t), -1);
	assert_int_equal(arf_date_parse("Thu, 8 Mar 2005 14:00:00", &t), -1);
}

/* ------------------------------------------------------------------ malformed */

/* b2 with one substring replaced; expects arf_parse to fail with code. */
static void bad(const char *from, const char *to, enum err_kind kind, const char *code)
{
	size_t len, flen = strlen(from), tlen = strlen(to);
	char *msg = slurp("rfc5965_b2.eml", &len), *at = strstr(msg, from), *m;
	struct rep_report r;
	struct err e;

	if (at == NULL)
		fail_msg("\"%s\" is not in the sample", from);
	m = malloc(len - flen + tlen + 1);
	assert_non_null(m);
	memcpy(m, msg, (size_t)(at - msg));
	memcpy(m + (at - msg), to, tlen);
	memcpy(m + (at - msg) + tlen, at + flen, len - (size_t)(at - msg) - flen + 1);
	if (arf_parse(m, len - flen + tlen, &r, &e) == 0)
		fail_msg("replacing \"%s\" by \"%s\" was accepted, want %s", from, to, code);
	if (strcmp(e.code, code) != 0 || e.kind != kind)
		fail_msg("replacing \"%s\": got %s (%s), want %s", from, e.code, e.msg, code);
	assert_true(strlen(e.msg) > 10);
	free(m);
	free(msg);
}

static void test_malformed(void **state)
{
	bad("multipart/report;", "multipart/mixed;", ERR_INPUT, "arf_not_report");
	bad("report-type=feedback-report", "report-type=delivery-status", ERR_INPUT,
	    "arf_not_feedback_report");
	bad("boundary=\"part1_13d.2e68ed54_boundary\"", "charset=us-ascii", ERR_INPUT,
	    "arf_no_boundary");
	bad("--part1_13d.2e68ed54_boundary--", "--part1_13d.2e68ed54_boundary-", ERR_INPUT,
	    "arf_bad_multipart");
	bad("Content-Type: message/feedback-report", "Content-Type: text/plain", ERR_INPUT,
	    "arf_no_feedback_part");
	bad("Content-Type: message/feedback-report",
	    "Content-Type: message/feedback-report\nContent-Transfer-Encoding: base64", ERR_INPUT,
	    "arf_bad_encoding");
	bad("Feedback-Type: abuse\n", "", ERR_INPUT, "arf_missing_field");
	bad("User-Agent: SomeGenerator/1.0\n", "", ERR_INPUT, "arf_missing_field");
	bad("Version: 1\nOriginal", "Version: 1\nVersion: 1\nOriginal", ERR_INPUT,
	    "arf_duplicate_field");
	bad("Source-IP: 192.0.2.1\n", "Source-IP: 192.0.2.1\nSource-IP: 192.0.2.2\n", ERR_INPUT,
	    "arf_duplicate_field");
	bad("Version: 1\n", "Version: 2\n", ERR_INPUT, "arf_bad_version");
	bad("Feedback-Type: abuse", "Feedback-Type: spam", ERR_INPUT, "arf_bad_feedback_type");
	bad("Source-IP: 192.0.2.1", "Source-IP: 192.0.2.300", ERR_INPUT, "arf_bad_source_ip");
	bad("Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT", "Arrival-Date: last Thursday", ERR_INPUT,
	    "arf_bad_date");
	bad("Reported-Domain: example.net", "Reported-Domain: exa mple..net", ERR_INPUT,
	    "arf_bad_reported_domain");
}

static void test_malformed_more(void **state)
{
	bad("Reporting-MTA: dns; mail.example.com\n",
	    "Reporting-MTA: dns; mail.example.com\nIncidents: many\n", ERR_INPUT, "arf_bad_field");
	bad("Version: 1\n", "Version: 1\nthis line is no header\n", ERR_INPUT, "arf_bad_header");
	bad("MIME-Version: 1.0\nContent-Type: multipart",
	    "MIME-Version 1.0\nContent-Type: multipart", ERR_INPUT, "arf_bad_header");
}

static void test_no_subject_nul_size(void **state)
{
	static const char only[] =
	    "Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n"
	    "--b\nContent-Type: message/feedback-report\n\n"
	    "Feedback-Type: abuse\nUser-Agent: x/1\nVersion: 1\n\n--b--\n";
	struct rep_report r;
	struct err e;
	char *big;

	assert_int_equal(arf_parse(only, strlen(only), &r, &e), -1);
	assert_string_equal(e.code, "arf_no_subject");
	assert_int_equal(arf_parse(only, sizeof(only), &r, &e), -1); /* with the NUL */
	assert_string_equal(e.code, "arf_nul");
	big = calloc(1, ARF_MAX_MESSAGE + 2);
	assert_non_null(big);
	memset(big, 'a', ARF_MAX_MESSAGE + 1);
	assert_int_equal(arf_parse(big, ARF_MAX_MESSAGE + 1, &r, &e), -1);
	assert_string_equal(e.code, "arf_too_large");
	assert_int_equal(e.kind, ERR_TOOBIG);
	free(big);
	assert_int_equal(arf_parse("", 0, &r, &e), -1);
	assert_string_equal(e.code, "arf_not_report");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc5965_b1_minimal),
	    cmocka_unit_test(test_rfc5965_b2_complete),
	    cmocka_unit_test(test_not_spam_dkim_crlf),
	    cmocka_unit_test(test_report_make),
	    cmocka_unit_test(test_auth_failure),
	    cmocka_unit_test(test_categories),
	    cmocka_unit_test(test_dates),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_malformed_more),
	    cmocka_unit_test(test_no_subject_nul_size),
	};

	return cmocka_run_group_tests_name("arf", tests, NULL, NULL);
}
