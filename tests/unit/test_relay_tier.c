/* test_relay_tier.c - the tier decision (relay/tier.c) and the lists it consults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay.h"

static struct relay_auth auth(int domain_verified, int anchored, int user_verified)
{
	struct relay_auth a = {0};

	snprintf(a.from_addr, sizeof(a.from_addr), "alice@example.org");
	snprintf(a.from_domain, sizeof(a.from_domain), "example.org");
	a.domain_verified = domain_verified;
	a.domain_anchored = anchored;
	a.user_verified = user_verified;
	return a;
}

static enum relay_tier decide(const struct relay_auth *a, enum relay_list_hit list, int have_rep,
                              enum relay_rep_verdict rep, int pow_ok, char *why, size_t len)
{
	struct relay_tier_input in = {
	    .auth = a, .list = list, .have_rep = have_rep, .sender_rep = rep, .pow_ok = pow_ok};

	return relay_tier_decide(&in, why, len);
}

static void test_names(void **state)
{
	assert_string_equal(relay_tier_name(RELAY_TIER_TRUSTED), "trusted");
	assert_string_equal(relay_tier_name(RELAY_TIER_KNOWN), "known");
	assert_string_equal(relay_tier_name(RELAY_TIER_UNKNOWN), "unknown");
}

static void test_trusted(void **state)
{
	struct relay_auth a = auth(1, 1, 1);
	char why[200];

	/* trust wins over a poor reputation: the recipient said so */
	assert_int_equal(decide(&a, RELAY_LIST_TRUST, 1, RELAY_REP_UNKNOWN, 0, why, sizeof(why)),
	                 RELAY_TIER_TRUSTED);
	assert_string_equal(why, "verified alice@example.org on trust list");
}

static void test_blocked_is_unknown_not_dropped(void **state)
{
	struct relay_auth a = auth(1, 1, 0);
	char why[200];

	/* blocked beats good standing and a stamp; the message stays deliverable (unknown) */
	assert_int_equal(decide(&a, RELAY_LIST_BLOCK, 1, RELAY_REP_TRUSTED, 1, why, sizeof(why)),
	                 RELAY_TIER_UNKNOWN);
	assert_non_null(strstr(why, "block list"));
	assert_non_null(strstr(why, "alice@example.org"));
}

static void test_known(void **state)
{
	struct relay_auth a = auth(1, 0, 0);
	char why[200];

	assert_int_equal(decide(&a, RELAY_LIST_NONE, 1, RELAY_REP_KNOWN, 0, why, sizeof(why)),
	                 RELAY_TIER_KNOWN);
	assert_non_null(strstr(why, "good standing"));
	assert_int_equal(decide(&a, RELAY_LIST_NONE, 1, RELAY_REP_TRUSTED, 0, why, sizeof(why)),
	                 RELAY_TIER_KNOWN);
	assert_int_equal(
	    decide(&a, RELAY_LIST_SUBSCRIBED, 1, RELAY_REP_UNKNOWN, 0, why, sizeof(why)),
	    RELAY_TIER_KNOWN);
	assert_string_equal(why, "verified alice@example.org on subscribe list");
	/* poor standing: unknown, unless a stamp lifts it */
	assert_int_equal(decide(&a, RELAY_LIST_NONE, 1, RELAY_REP_UNKNOWN, 0, why, sizeof(why)),
	                 RELAY_TIER_UNKNOWN);
	assert_non_null(strstr(why, "not in good standing"));
	assert_int_equal(decide(&a, RELAY_LIST_NONE, 1, RELAY_REP_BLOCK, 1, why, sizeof(why)),
	                 RELAY_TIER_KNOWN);
	assert_string_equal(why, "valid proof-of-work stamp");
}

static void test_no_reputation_verdict(void **state)
{
	struct relay_auth anchored = auth(1, 1, 0), legacy = auth(1, 0, 0), user = auth(0, 0, 1);
	char why[200];

	/* without a verdict, the anchor is the standing; plain DKIM is not */
	assert_int_equal(
	    decide(&anchored, RELAY_LIST_NONE, 0, RELAY_REP_UNKNOWN, 0, why, sizeof(why)),
	    RELAY_TIER_KNOWN);
	assert_non_null(strstr(why, "anchored"));
	assert_int_equal(
	    decide(&legacy, RELAY_LIST_NONE, 0, RELAY_REP_UNKNOWN, 0, why, sizeof(why)),
	    RELAY_TIER_UNKNOWN);
	assert_non_null(strstr(why, "not anchored"));
	/* a user key comes from an anchored key server */
	assert_int_equal(decide(&user, RELAY_LIST_NONE, 0, RELAY_REP_UNKNOWN, 0, why, sizeof(why)),
	                 RELAY_TIER_KNOWN);
	/* "unknown" is no evidence either way: an anchored sender stays in good standing,
	 * a block is poor standing even for an anchored domain */
	assert_int_equal(
	    decide(&anchored, RELAY_LIST_NONE, 1, RELAY_REP_UNKNOWN, 0, why, sizeof(why)),
	    RELAY_TIER_KNOWN);
	assert_non_null(strstr(why, "reputation unknown"));
	assert_int_equal(
	    decide(&anchored, RELAY_LIST_NONE, 1, RELAY_REP_BLOCK, 0, why, sizeof(why)),
	    RELAY_TIER_UNKNOWN);
	assert_int_equal(
	    decide(&legacy, RELAY_LIST_NONE, 1, RELAY_REP_UNKNOWN, 0, why, sizeof(why)),
	    RELAY_TIER_UNKNOWN);
}

static void test_unverified(void **state)
{
	struct relay_auth a = auth(0, 0, 0);
	char why[200];

	assert_int_equal(decide(&a, RELAY_LIST_NONE, 1, RELAY_REP_TRUSTED, 0, why, sizeof(why)),
	                 RELAY_TIER_UNKNOWN);
	assert_string_equal(why, "unverified sender");
	assert_int_equal(decide(&a, RELAY_LIST_NONE, 0, RELAY_REP_UNKNOWN, 1, why, sizeof(why)),
	                 RELAY_TIER_KNOWN);
	assert_int_equal(relay_tier_decide(NULL, why, sizeof(why)), RELAY_TIER_UNKNOWN);
	/* the reason fits whatever room it gets */
	assert_int_equal(decide(&a, RELAY_LIST_NONE, 0, RELAY_REP_UNKNOWN, 0, why, 5),
	                 RELAY_TIER_UNKNOWN);
	assert_string_equal(why, "unve");
}

/* relay_tier_lists asks the lists only about what was verified. */
static void test_tier_lists(void **state)
{
	char dir[] = "/tmp/test_relay_tier_XXXXXX", cmd[128];
	struct relay_lists *l;
	struct relay_auth a;
	struct err e = {0};

	assert_non_null(mkdtemp(dir));
	l = relay_lists_open(dir, &e);
	assert_non_null(l);
	assert_int_equal(relay_lists_add(l, "bob@example.com", "trust", "alice@example.org", &e),
	                 0);
	assert_int_equal(relay_lists_add(l, "bob@example.com", "block", "@example.net", &e), 0);

	a = auth(0, 0, 0); /* a forged From: no hit */
	assert_int_equal(relay_tier_lists(l, "bob@example.com", &a), RELAY_LIST_NONE);
	a = auth(1, 0, 0); /* the From domain vouches for its address */
	assert_int_equal(relay_tier_lists(l, "bob@example.com", &a), RELAY_LIST_TRUST);
	a = auth(0, 0, 1); /* the user's own signature */
	assert_int_equal(relay_tier_lists(l, "bob@example.com", &a), RELAY_LIST_TRUST);
	a = auth(1, 0, 0);
	snprintf(a.from_addr, sizeof(a.from_addr), "x@example.net");
	snprintf(a.from_domain, sizeof(a.from_domain), "example.net");
	assert_int_equal(relay_tier_lists(l, "bob@example.com", &a), RELAY_LIST_BLOCK);
	a.domain_verified = 0;
	assert_int_equal(relay_tier_lists(l, "bob@example.com", &a), RELAY_LIST_NONE);
	relay_lists_free(l);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_trusted),
	    cmocka_unit_test(test_blocked_is_unknown_not_dropped),
	    cmocka_unit_test(test_known),
	    cmocka_unit_test(test_no_reputation_verdict),
	    cmocka_unit_test(test_unverified),
	    cmocka_unit_test(test_tier_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
