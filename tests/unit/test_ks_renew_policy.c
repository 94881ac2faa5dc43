/* test_ks_renew_policy.c - unit tests for the renewal rules (keyserver/renew_policy.c): the
 * signed payload's shape and freshness, the window, the interval, expiry and the lifetime
 * of a renewed certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "renew_policy.h"

#define DAY 86400LL
#define NOW 1800000000LL

/* A certificate issued at NOW - age, valid for life seconds from then. */
static struct ks_renew_state cert(long long age, long long life)
{
	struct ks_renew_state s = {.now = NOW,
	                           .not_before = NOW - age - 300, /* backdated like ours */
	                           .not_after = NOW - age + life,
	                           .issued_at = NOW - age};
	return s;
}

static const struct ks_renew_policy defaults = {
    .window = 0, .min_interval = 3600, .max_lifetime = 0, .cert_days = 365};

static void test_window(void **state)
{
	struct ks_renew_state s = cert(0, 365 * DAY);
	struct ks_renew_policy p = defaults;

	/* A third of the lifetime (notBefore to notAfter) by default... */
	assert_int_equal(ks_renew_window(&p, &s), (365 * DAY + 300) / 3);
	/* ...or what the setting says. */
	p.window = 30 * DAY;
	assert_int_equal(ks_renew_window(&p, &s), 30 * DAY);
	/* A degenerate certificate opens no window. */
	s.not_after = s.not_before;
	p.window = 0;
	assert_int_equal(ks_renew_window(&p, &s), 0);
}

static void test_too_early(void **state)
{
	struct ks_renew_state s = cert(10 * DAY, 365 * DAY);
	struct err e = {0};

	assert_int_equal(ks_renew_check(&defaults, &s, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_string_equal(e.code, "renew_too_early");
	assert_non_null(strstr(e.msg, "may be renewed from"));
}

static void test_inside_window(void **state)
{
	struct ks_renew_policy p = defaults;
	struct err e = {0};
	/* 250 days into 365: 115 days left, inside the default window of ~121.7 days. */
	struct ks_renew_state s = cert(250 * DAY, 365 * DAY);

	assert_int_equal(ks_renew_check(&p, &s, &e), 0);
	/* Exactly at the window's opening is allowed, a second before is not. */
	p.window = 30 * DAY;
	s = cert(0, 30 * DAY + 3600);
	s.now = s.not_after - 30 * DAY;
	assert_int_equal(ks_renew_check(&p, &s, &e), 0);
	s.now--;
	assert_int_equal(ks_renew_check(&p, &s, &e), -1);
	assert_string_equal(e.code, "renew_too_early");
}

static void test_too_often(void **state)
{
	struct ks_renew_policy p = defaults;
	struct ks_renew_state s = cert(60, 365 * DAY);
	struct err e = {0};

	p.window = 400 * DAY; /* always inside the window: only the interval counts */
	assert_int_equal(ks_renew_check(&p, &s, &e), -1);
	assert_int_equal(e.kind, ERR_RATE);
	assert_string_equal(e.code, "renew_too_often");
	s = cert(3600, 365 * DAY);
	assert_int_equal(ks_renew_check(&p, &s, &e), 0);
	s = cert(3599, 365 * DAY);
	assert_int_equal(ks_renew_check(&p, &s, &e), -1);
	p.min_interval = 0;
	s = cert(0, 365 * DAY);
	assert_int_equal(ks_renew_check(&p, &s, &e), 0);
}

static void test_expired(void **state)
{
	struct ks_renew_policy p = defaults;
	struct ks_renew_state s = cert(366 * DAY, 365 * DAY);
	struct err e = {0};

	assert_int_equal(ks_renew_check(&p, &s, &e), -1);
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	assert_string_equal(e.code, "cert_expired");
	/* The last second of validity still renews; notAfter itself does not. */
	s = cert(365 * DAY - 1, 365 * DAY);
	assert_int_equal(ks_renew_check(&p, &s, &e), 0);
	s = cert(365 * DAY, 365 * DAY);
	assert_int_equal(ks_renew_check(&p, &s, &e), -1);
	assert_string_equal(e.code, "cert_expired");
}

static void test_days(void **state)
{
	struct ks_renew_policy p = defaults;

	assert_int_equal(ks_renew_days(&p), 365);
	p.max_lifetime = 90 * DAY;
	assert_int_equal(ks_renew_days(&p), 90);
	p.max_lifetime = 90 * DAY + DAY - 1; /* whole days */
	assert_int_equal(ks_renew_days(&p), 90);
	p.max_lifetime = 800 * DAY; /* never longer than a new certificate */
	assert_int_equal(ks_renew_days(&p), 365);
	p.max_lifetime = 3600;
	assert_int_equal(ks_renew_days(&p), 1);
}

static json_t *payload(long long issued)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", "anchor-renew-request", "name",
	                 "alice@example.com", "purpose", "smime", "csr", "-----BEGIN...", "issued",
	                 (json_int_t)issued);
}

static void test_parse_ok(void **state)
{
	json_t *p = payload(NOW - 10);
	struct ks_renew_request r;
	struct err e = {0};

	assert_int_equal(ks_renew_request_parse(p, NOW, &r, &e), 0);
	assert_string_equal(r.name, "alice@example.com");
	assert_string_equal(r.purpose, "smime");
	assert_string_equal(r.csr, "-----BEGIN...");
	assert_int_equal(r.issued, NOW - 10);
	json_decref(p);
}

static void expect_refused(json_t *p, long long now, const char *code)
{
	struct ks_renew_request r;
	struct err e = {0};

	assert_int_equal(ks_renew_request_parse(p, now, &r, &e), -1);
	assert_int_equal(e.kind, ERR_INPUT);
	assert_string_equal(e.code, code);
	json_decref(p);
}

static void test_parse_refused(void **state)
{
	json_t *p;

	expect_refused(NULL, NOW, "bad_request");
	expect_refused(json_string("x"), NOW, "bad_request");
	expect_refused(payload(NOW - 301), NOW, "stale_request");
	expect_refused(payload(NOW + 301), NOW, "stale_request");
	p = payload(NOW);
	json_object_set_new(p, "type", json_string("anchor-route-request"));
	expect_refused(p, NOW, "bad_request");
	p = payload(NOW);
	json_object_set_new(p, "days", json_integer(800));
	expect_refused(p, NOW, "bad_request");
	p = payload(NOW);
	json_object_del(p, "csr");
	expect_refused(p, NOW, "bad_request");
	p = payload(NOW);
	json_object_set_new(p, "name", json_integer(1));
	expect_refused(p, NOW, "bad_request");
	p = payload(NOW);
	json_object_set_new(p, "issued", json_string("now"));
	expect_refused(p, NOW, "bad_request");
}

/* A domain's own limits: each taken when stricter than the server's, else the server's. */
static void test_domain_limits(void **state)
{
	const struct ks_renew_policy server = {
	    .window = 30 * DAY, .min_interval = 3600, .max_lifetime = 90 * DAY, .cert_days = 365};
	struct ks_renew_limits own = {KS_RENEW_UNSET, KS_RENEW_UNSET, KS_RENEW_UNSET};
	struct ks_renew_policy p;

	ks_renew_policy_for(&server, &own, &p);
	assert_memory_equal(&p, &server, sizeof(p));
	struct ks_renew_state year = cert(0, 365 * DAY);
	own = (struct ks_renew_limits){7 * DAY, 2 * DAY, 30 * DAY};
	ks_renew_policy_for(&server, &own, &p);
	assert_int_equal(ks_renew_window(&p, &year), 7 * DAY);
	assert_int_equal(p.min_interval, 2 * DAY);
	assert_int_equal(ks_renew_days(&p), 30);
	/* Looser than the server (a row written behind the checks): the server's hold. */
	own = (struct ks_renew_limits){60 * DAY, 60, 200 * DAY};
	ks_renew_policy_for(&server, &own, &p);
	assert_int_equal(ks_renew_window(&p, &year), 30 * DAY);
	assert_int_equal(p.min_interval, 3600);
	assert_int_equal(ks_renew_days(&p), 90);
	/* A server window of 0 (a third of the lifetime): the shorter of the two. */
	struct ks_renew_policy third = server;
	third.window = 0;
	own = (struct ks_renew_limits){200 * DAY, KS_RENEW_UNSET, KS_RENEW_UNSET};
	ks_renew_policy_for(&third, &own, &p);
	assert_int_equal(ks_renew_window(&p, &year), (365 * DAY + 300) / 3);
	own.window = 10 * DAY;
	ks_renew_policy_for(&third, &own, &p);
	assert_int_equal(ks_renew_window(&p, &year), 10 * DAY);
	/* The domain's window decides when renewal opens. */
	struct ks_renew_state s = cert(300 * DAY, 365 * DAY); /* 65 days left */
	struct err e = {0};
	assert_int_equal(ks_renew_check(&p, &s, &e), -1);
	assert_string_equal(e.code, "renew_too_early");
	s = cert(360 * DAY, 365 * DAY); /* 5 days left */
	assert_int_equal(ks_renew_check(&p, &s, &e), 0);
}

static void expect_limit(const struct ks_renew_policy *server, struct ks_renew_limits own,
                         const char *member)
{
	struct err e = {0};

	assert_int_equal(ks_renew_limits_check(server, &own, &e), -1);
	assert_int_equal(e.kind, ERR_INPUT);
	assert_string_equal(e.code, "renew_limit");
	assert_non_null(strstr(e.msg, member));
}

static void test_domain_limits_check(void **state)
{
	const struct ks_renew_policy server = {
	    .window = 30 * DAY, .min_interval = 3600, .max_lifetime = 90 * DAY, .cert_days = 365};
	const long long U = KS_RENEW_UNSET;
	struct err e = {0};

	assert_int_equal(ks_renew_limits_check(&server, &(struct ks_renew_limits){U, U, U}, &e), 0);
	assert_int_equal(
	    ks_renew_limits_check(&server, &(struct ks_renew_limits){30 * DAY, 3600, DAY}, &e), 0);
	expect_limit(&server, (struct ks_renew_limits){31 * DAY, U, U}, "window");
	expect_limit(&server, (struct ks_renew_limits){0, U, U}, "window");
	expect_limit(&server, (struct ks_renew_limits){U, 3599, U}, "min_interval");
	expect_limit(&server, (struct ks_renew_limits){U, 826 * DAY, U}, "min_interval");
	expect_limit(&server, (struct ks_renew_limits){U, U, 91 * DAY}, "max_lifetime");
	expect_limit(&server, (struct ks_renew_limits){U, U, DAY - 1}, "max_lifetime");
	/* No server window: any up to 825 days. */
	struct ks_renew_policy third = server;
	third.window = 0;
	assert_int_equal(
	    ks_renew_limits_check(&third, &(struct ks_renew_limits){200 * DAY, U, U}, &e), 0);
	expect_limit(&third, (struct ks_renew_limits){826 * DAY, U, U}, "window");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_window),        cmocka_unit_test(test_too_early),
	    cmocka_unit_test(test_inside_window), cmocka_unit_test(test_too_often),
	    cmocka_unit_test(test_expired),       cmocka_unit_test(test_days),
	    cmocka_unit_test(test_parse_ok),      cmocka_unit_test(test_parse_refused),
	    cmocka_unit_test(test_domain_limits), cmocka_unit_test(test_domain_limits_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
