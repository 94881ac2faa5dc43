/* test_dns_srv.c - RFC 2782 ordering: priorities, weights (statistically), ".", SRV parsing. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dns/dns.h"

static void set(struct dns_srv *s, const char *target, uint16_t prio, uint16_t weight)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->target, sizeof(s->target), "%s", target);
	s->priority = prio;
	s->weight = weight;
	s->port = 443;
}

static void test_priority_first(void **state)
{
	struct dns_srv s[4];
	struct err e;
	int i;

	(void)state;
	for (i = 0; i < 200; i++) {
		set(&s[0], "c", 30, 100);
		set(&s[1], "a", 10, 1);
		set(&s[2], "b", 20, 50);
		set(&s[3], "a2", 10, 1);
		assert_int_equal(dns_srv_order(s, 4, NULL, NULL, &e), 0);
		assert_int_equal(s[0].priority, 10);
		assert_int_equal(s[1].priority, 10);
		assert_string_equal(s[2].target, "b");
		assert_string_equal(s[3].target, "c");
	}
}

/*
 * Over N draws the share of each target chosen first must match its weight:
 * |count - N p| <= 5 sigma with sigma = sqrt(N p (1-p)); with three targets
 * a false failure has probability below 1e-5.
 */
static void test_weights_statistical(void **state)
{
	static const uint16_t weights[] = {60, 30, 10, 0};
	const int n = 10000;
	int count[4] = {0}, i, k;
	struct err e;

	(void)state;
	for (i = 0; i < n; i++) {
		struct dns_srv s[4];

		set(&s[0], "w60", 1, weights[0]);
		set(&s[1], "w30", 1, weights[1]);
		set(&s[2], "w10", 1, weights[2]);
		set(&s[3], "w0", 1, weights[3]);
		assert_int_equal(dns_srv_order(s, 4, NULL, NULL, &e), 0);
		for (k = 0; k < 4; k++)
			if (strcmp(s[0].target, k == 0   ? "w60"
			                        : k == 1 ? "w30"
			                        : k == 2 ? "w10"
			                                 : "w0") == 0)
				count[k]++;
		/* Weight 0 is drawn only after every weighted target. */
		assert_string_equal(s[3].target, "w0");
	}
	for (k = 0; k < 3; k++) {
		double p = weights[k] / 100.0, mean = n * p, sigma = sqrt(n * p * (1 - p));

		assert_true(fabs(count[k] - mean) <= 5 * sigma);
	}
	assert_int_equal(count[3], 0);
}

static void test_all_zero_weights_uniform(void **state)
{
	const int n = 6000;
	int count[3] = {0}, i;
	struct err e;

	(void)state;
	for (i = 0; i < n; i++) {
		struct dns_srv s[3];

		set(&s[0], "x0", 5, 0);
		set(&s[1], "x1", 5, 0);
		set(&s[2], "x2", 5, 0);
		assert_int_equal(dns_srv_order(s, 3, NULL, NULL, &e), 0);
		count[s[0].target[1] - '0']++;
	}
	for (i = 0; i < 3; i++) {
		double p = 1.0 / 3, sigma = sqrt(n * p * (1 - p));

		assert_true(fabs(count[i] - n * p) <= 5 * sigma);
	}
}

/* A fixed "random" source: draws r, so the running-sum rule is checked exactly. */
static uint32_t fixed_rand(void *ctx, uint32_t bound)
{
	uint32_t v = *(uint32_t *)ctx;

	return v < bound ? v : bound - 1;
}

static void test_running_sum_rule(void **state)
{
	struct dns_srv s[3];
	struct err e;
	uint32_t r;

	(void)state;
	/* weights 1, 2, 3: draw 0 -> pick 1 -> first; draw 1 -> pick 2 -> second. */
	r = 0;
	set(&s[0], "a", 1, 1), set(&s[1], "b", 1, 2), set(&s[2], "c", 1, 3);
	assert_int_equal(dns_srv_order(s, 3, fixed_rand, &r, &e), 0);
	assert_string_equal(s[0].target, "a");
	r = 1;
	set(&s[0], "a", 1, 1), set(&s[1], "b", 1, 2), set(&s[2], "c", 1, 3);
	assert_int_equal(dns_srv_order(s, 3, fixed_rand, &r, &e), 0);
	assert_string_equal(s[0].target, "b");
	r = 5;
	set(&s[0], "a", 1, 1), set(&s[1], "b", 1, 2), set(&s[2], "c", 1, 3);
	assert_int_equal(dns_srv_order(s, 3, fixed_rand, &r, &e), 0);
	assert_string_equal(s[0].target, "c");
}

static void test_dot_target(void **state)
{
	struct dns_srv s[2];
	struct err e;

	(void)state;
	set(&s[0], ".", 0, 0);
	assert_int_equal(dns_srv_order(s, 1, NULL, NULL, &e), -1);
	assert_string_equal(e.code, "srv_no_service");
	set(&s[0], ".", 0, 0);
	set(&s[1], "keys.example.com", 10, 10);
	assert_int_equal(dns_srv_order(s, 2, NULL, NULL, &e), -1);
	assert_string_equal(e.code, "srv_bad_target");
	assert_int_equal(dns_srv_order(s, 0, NULL, NULL, &e), 0);
}

static void test_from_rr(void **state)
{
	ldns_rr *rr = NULL;
	struct dns_srv s;
	struct err e;

	(void)state;
	assert_int_equal(
	    ldns_rr_new_frm_str(&rr, "_anchor._tcp.x.test. 60 IN SRV 10 60 8443 KEYS.x.test.", 0,
	                        NULL, NULL),
	    LDNS_STATUS_OK);
	assert_int_equal(dns_srv_from_rr(rr, &s, &e), 0);
	assert_string_equal(s.target, "keys.x.test");
	assert_int_equal(s.priority, 10);
	assert_int_equal(s.weight, 60);
	assert_int_equal(s.port, 8443);
	assert_int_equal(s.ttl, 60);
	ldns_rr_free(rr);
	assert_int_equal(ldns_rr_new_frm_str(&rr, "x.test. 60 IN SRV 0 0 0 .", 0, NULL, NULL),
	                 LDNS_STATUS_OK);
	assert_int_equal(dns_srv_from_rr(rr, &s, &e), 0);
	assert_string_equal(s.target, ".");
	ldns_rr_free(rr);
	assert_int_equal(ldns_rr_new_frm_str(&rr, "x.test. 60 IN A 192.0.2.1", 0, NULL, NULL),
	                 LDNS_STATUS_OK);
	assert_int_equal(dns_srv_from_rr(rr, &s, &e), -1);
	assert_string_equal(e.code, "srv_malformed");
	ldns_rr_free(rr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_priority_first),
	    cmocka_unit_test(test_weights_statistical),
	    cmocka_unit_test(test_all_zero_weights_uniform),
	    cmocka_unit_test(test_running_sum_rule),
	    cmocka_unit_test(test_dot_target),
	    cmocka_unit_test(test_from_rr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
