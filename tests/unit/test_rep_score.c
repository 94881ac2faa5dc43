/*
 * test_rep_score.c - anchor-reputation's scoring math with explicit times (decay, folding,
 * Wilson interval, caps, standing, verdicts), subject canonicalisation and the report
 * payload parser.  No store, no clock: every function takes `now`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "rep.h"

#define HL (7.0 * 86400)
#define T0 1800000000LL /* an arbitrary "now" */

static const struct rep_params params = {
    .half_life = HL,
    .min_reporters = 3,
    .list_weight = 2.5,
    .trust_weight = 2.5,
    .reporter_cap = 1.0,
    .network_cap = 1.5,
    .standing_default = 1.0,
    .standing_min = 0.1,
    .standing_max = 2.0,
    .prefix4 = 24,
    .prefix6 = 48,
};

static char names[64][32];
static char nets[64][32];

/* Reporter i: its own domain and network, standing 1, one unit of evidence at t. */
static struct rep_contrib contrib(int i, double bad, double good, long long t)
{
	struct rep_contrib c = {0};

	snprintf(names[i], sizeof(names[i]), "r%d.example", i);
	snprintf(nets[i], sizeof(nets[i]), "192.0.%d.0/24", i);
	c.reporter = names[i];
	c.net = nets[i];
	c.standing = 1.0;
	c.bad = bad;
	c.good = good;
	c.t = t;
	c.categories = bad > 0 ? 1u << REP_SPAM : 1u << REP_NOT_SPAM;
	c.reports = 1;
	c.first_seen = c.last_seen = t;
	return c;
}

static int has_reason(const struct rep_score *s, const char *code)
{
	json_t *r;
	size_t i;

	json_array_foreach(s->reasons, i, r)
	{
		if (strcmp(json_string_value(json_object_get(r, "code")), code) == 0)
			return 1;
	}
	return 0;
}

static void score(const struct rep_contrib *c, int n, long long now, struct rep_score *out)
{
	struct err e = {0};

	assert_int_equal(rep_score_compute(&params, "ip:192.0.2.1", c, n, now, out, &e), 0);
}

/* ------------------------------------------------------------------ decay */

static void test_decay(void **state)
{
	assert_true(fabs(rep_decay(8, T0, T0, HL) - 8) < 1e-12);
	assert_true(fabs(rep_decay(8, T0, T0 + (long long)HL, HL) - 4) < 1e-12);
	assert_true(fabs(rep_decay(8, T0, T0 + 3 * (long long)HL, HL) - 1) < 1e-12);
	/* a reference time in the future (clock skew) never inflates a sum */
	assert_true(fabs(rep_decay(8, T0 + 100, T0, HL) - 8) < 1e-12);
	assert_true(rep_decay(0, T0, T0 + 10, HL) == 0);
	assert_true(rep_decay(1, T0, T0 + 2000 * (long long)HL, HL) < 1e-300);
}

static void test_fold(void **state)
{
	double sum = 2;
	long long t = T0;

	/* new evidence one half-life later: the old sum halves, the new counts fully */
	rep_fold(&sum, &t, 1, T0 + (long long)HL, HL);
	assert_true(fabs(sum - 2.0) < 1e-12);
	assert_int_equal(t, T0 + (long long)HL);
	/* evidence observed in the past arrives already decayed; the reference stays */
	rep_fold(&sum, &t, 1, T0, HL);
	assert_true(fabs(sum - 2.5) < 1e-12);
	assert_int_equal(t, T0 + (long long)HL);
	/* folding then decaying equals decaying each piece: the order does not matter */
	double a = 0, b = 0;
	long long ta = 0, tb = 0;

	rep_fold(&a, &ta, 1, T0, HL);
	rep_fold(&a, &ta, 1, T0 + 1000, HL);
	rep_fold(&b, &tb, 1, T0 + 1000, HL);
	rep_fold(&b, &tb, 1, T0, HL);
	assert_true(fabs(rep_decay(a, ta, T0 + 99999, HL) - rep_decay(b, tb, T0 + 99999, HL)) <
	            1e-12);
}

static void test_wilson(void **state)
{
	double lo, hi;

	rep_wilson(0, 0, 1.96, &lo, &hi);
	assert_true(lo == 0 && hi == 1);
	rep_wilson(5, 10, 1.96, &lo, &hi);
	assert_true(fabs(lo - 0.2366) < 1e-3 && fabs(hi - 0.7634) < 1e-3);
	rep_wilson(10, 10, 1.96, &lo, &hi);
	assert_true(fabs(lo - 0.7225) < 1e-3 && hi == 1);
	/* more evidence, narrower interval */
	double lo2, hi2;
	rep_wilson(100, 100, 1.96, &lo2, &hi2);
	assert_true(lo2 > lo);
}

static void test_category_weight(void **state)
{
	int good;

	assert_true(rep_category_weight(REP_SPAM, 0, &good) == 1.0 && !good);
	assert_true(rep_category_weight(REP_AUTH_FAIL, 1, &good) == 0.5 && !good);
	assert_true(rep_category_weight(REP_NOT_SPAM, 1, &good) == 1.0 && good);
	/* an unverified identity earns nothing */
	assert_true(rep_category_weight(REP_NOT_SPAM, 0, &good) == 0.0 && good);
}

/* ------------------------------------------------------------------ scores and verdicts */

static void test_nothing_known(void **state)
{
	struct rep_score s;

	score(NULL, 0, T0, &s);
	assert_true(s.score == 0 && s.weight == 0);
	assert_true(s.ci_low == -1 && s.ci_high == 1);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	assert_true(has_reason(&s, "no_reports"));
	rep_score_clear(&s);
}

static void test_independent_reporters_list(void **state)
{
	struct rep_contrib c[10];
	struct rep_score s;

	for (int i = 0; i < 10; i++)
		c[i] = contrib(i, 1, 0, T0);
	score(c, 2, T0, &s);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	assert_true(has_reason(&s, "too_few_reporters"));
	rep_score_clear(&s);
	score(c, 3, T0, &s);
	assert_int_equal(s.verdict, REP_BLOCK);
	rep_score_clear(&s);
	score(c, 10, T0, &s);
	assert_int_equal(s.verdict, REP_BLOCK);
	assert_int_equal(s.bad_reporters, 10);
	assert_true(fabs(s.score - 10.0 / 11) < 1e-9);
	assert_true(s.ci_low > 0 && s.ci_low < s.score && s.score < s.ci_high);
	assert_true(has_reason(&s, "listed"));
	assert_string_equal(s.first_seen, "2027-01-15T08:00:00Z");
	rep_score_clear(&s);
}

static void test_listing_fades_with_time(void **state)
{
	struct rep_contrib c[10];
	struct rep_score s;

	for (int i = 0; i < 10; i++)
		c[i] = contrib(i, 1, 0, T0);
	/* two half-lives: 10 * 1/4 = 2.5, still at the threshold */
	score(c, 10, T0 + 2 * (long long)HL, &s);
	assert_true(fabs(s.bad - 2.5) < 1e-9);
	assert_int_equal(s.verdict, REP_BLOCK);
	rep_score_clear(&s);
	/* a day later it is below: the listing has faded with nobody touching it */
	score(c, 10, T0 + 2 * (long long)HL + 86400, &s);
	assert_true(s.bad < 2.5);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	assert_true(has_reason(&s, "below_threshold"));
	rep_score_clear(&s);
	/* long after, the evidence is gone */
	score(c, 10, T0 + 60 * (long long)HL, &s);
	assert_true(s.weight < 1e-9);
	assert_true(has_reason(&s, "no_reports"));
	rep_score_clear(&s);
}

/*
 * list_weight = min_reporters * reporter_cap (operator-reputation.md §5): the reports of
 * min_reporters fresh reporters list, though each has decayed a little; once decay shows
 * in the two decimals the answer says so with numbers that differ.
 */
static void test_threshold_at_equality(void **state)
{
	struct rep_params p = params;
	struct rep_contrib c[1] = {contrib(0, 1, 0, T0 - 60)};
	struct rep_score s;
	struct err e = {0};
	const char *text;

	(void)state;
	p.min_reporters = 1;
	p.list_weight = 1.0;
	assert_int_equal(rep_score_compute(&p, "ip:192.0.2.1", c, 1, T0, &s, &e), 0);
	assert_true(s.bad < 1.0);
	assert_int_equal(s.verdict, REP_BLOCK);
	assert_true(has_reason(&s, "listed"));
	rep_score_clear(&s);
	/* three days later: 0.74, below the threshold, and the reason shows it */
	assert_int_equal(rep_score_compute(&p, "ip:192.0.2.1", c, 1, T0 + 3 * 86400, &s, &e), 0);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	assert_true(has_reason(&s, "below_threshold"));
	text = json_string_value(json_object_get(json_array_get(s.reasons, 0), "text"));
	assert_non_null(strstr(text, "weigh 0.74 after decay; listing needs 1.00"));
	rep_score_clear(&s);
}

static void test_reporter_cap(void **state)
{
	struct rep_contrib c = contrib(0, 5000, 0, T0);
	struct rep_score s;

	score(&c, 1, T0, &s);
	assert_true(fabs(s.bad - params.reporter_cap) < 1e-12);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	assert_true(has_reason(&s, "reporter_capped"));
	assert_true(has_reason(&s, "too_few_reporters"));
	rep_score_clear(&s);
}

static void test_poisoning_moves_score_by_at_most_the_cap(void **state)
{
	struct rep_contrib c[6];
	struct rep_score before, after;
	double g, cap = params.reporter_cap;

	for (int i = 0; i < 5; i++)
		c[i] = contrib(i, 0, 1, T0);
	score(c, 5, T0, &before);
	assert_int_equal(before.verdict, REP_TRUSTED);
	g = before.good;
	c[5] = contrib(5, 3000, 0, T0); /* thousands of false reports from one domain */
	score(c, 6, T0, &after);
	assert_int_equal(after.verdict, REP_TRUSTED);
	assert_true(after.score - before.score <= 2 * cap / (g + cap + 1) + 1e-12);
	assert_true(after.score - before.score > 0); /* it moved, by the capped amount */
	rep_score_clear(&before);
	rep_score_clear(&after);
	/* the same holds with only min_reporters vouching */
	score(c + 2, 4, T0, &after);
	assert_int_equal(after.verdict, REP_TRUSTED);
	rep_score_clear(&after);
}

static void test_contested_needs_numbers_on_both_sides(void **state)
{
	struct rep_contrib c[8];
	struct rep_score s;

	for (int i = 0; i < 4; i++)
		c[i] = contrib(i, 1, 0, T0);
	for (int i = 4; i < 8; i++)
		c[i] = contrib(i, 0, 1, T0);
	score(c, 8, T0, &s);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	assert_true(has_reason(&s, "contested"));
	assert_true(fabs(s.score) < 1e-9);
	rep_score_clear(&s);
	/* two domains on each side: neither side qualifies */
	score(c + 2, 4, T0, &s);
	assert_int_equal(s.good_reporters, 2);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	rep_score_clear(&s);
	/* two vouching domains cannot unlist what four reported */
	score(c, 6, T0, &s);
	assert_int_equal(s.verdict, REP_BLOCK);
	rep_score_clear(&s);
}

/* Unlisting needs as much evidence as listing: four vouchers cannot take back what ten
 * listed (the old 3:1 rule let them); ten can, and then the other way round. */
static void test_contest_is_symmetric(void **state)
{
	struct rep_contrib c[20];
	struct rep_score s;

	for (int i = 0; i < 10; i++)
		c[i] = contrib(i, 1, 0, T0);
	for (int i = 10; i < 20; i++)
		c[i] = contrib(i, 0, 1, T0);
	score(c, 14, T0, &s);
	assert_int_equal(s.verdict, REP_BLOCK);
	rep_score_clear(&s);
	score(c, 20, T0, &s); /* ten against ten: neither stands */
	assert_int_equal(s.verdict, REP_UNKNOWN);
	assert_true(has_reason(&s, "contested"));
	rep_score_clear(&s);
	score(c + 6, 14, T0, &s); /* four listers cannot take back what ten vouched for */
	assert_int_equal(s.verdict, REP_TRUSTED);
	rep_score_clear(&s);
}

/* known is a verdict like the others: min_reporters domains, never one. */
static void test_known_needs_min_reporters(void **state)
{
	struct rep_contrib c[3];
	struct rep_score s;

	for (int i = 0; i < 3; i++)
		c[i] = contrib(i, 0, 0.5, T0);
	score(c, 1, T0, &s);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	rep_score_clear(&s);
	score(c, 2, T0, &s);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	rep_score_clear(&s);
	score(c, 3, T0, &s);
	assert_int_equal(s.verdict, REP_KNOWN);
	assert_true(has_reason(&s, "verified_good"));
	rep_score_clear(&s);
}

/* Newcomers earn weight: nothing when just seen, half at half the ramp, full after it;
 * a vetted reporter weighs its configured weight at once. */
static void test_newcomer_ramp(void **state)
{
	struct rep_params p = params;
	struct rep_contrib c[4];

	p.newcomer_ramp = 86400;
	p.nvetted = 1;
	snprintf(p.vetted[0].domain, sizeof(p.vetted[0].domain), "r3.example");
	p.vetted[0].weight = 1.5;
	for (int i = 0; i < 4; i++)
		c[i] = contrib(i, 1, 0, T0);
	c[0].reporter_since = T0;
	c[1].reporter_since = T0 - 43200;
	c[2].reporter_since = T0 - 2 * 86400;
	c[3].reporter_since = T0; /* vetted: r3.example */
	rep_contribs_vet(&p, c, 4, T0);
	assert_true(fabs(c[0].standing) < 1e-12);
	assert_true(fabs(c[1].standing - 0.5) < 1e-12);
	assert_true(fabs(c[2].standing - 1.0) < 1e-12);
	assert_true(c[3].vetted && fabs(c[3].standing - 1.5) < 1e-12);
}

static void test_network_cap(void **state)
{
	struct rep_contrib c[4];
	struct rep_score s;

	for (int i = 0; i < 4; i++) {
		c[i] = contrib(i, 1, 0, T0);
		c[i].net = "198.51.100.0/24";
	}
	score(c, 4, T0, &s);
	assert_true(fabs(s.bad - params.network_cap) < 1e-12);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	assert_true(has_reason(&s, "network_capped"));
	rep_score_clear(&s);
	/* an unknown network is no network */
	for (int i = 0; i < 4; i++)
		c[i].net = "";
	score(c, 4, T0, &s);
	assert_true(fabs(s.bad - 4) < 1e-12);
	rep_score_clear(&s);
}

static void test_standing_weighs(void **state)
{
	struct rep_contrib c[3];
	struct rep_score s;

	for (int i = 0; i < 3; i++)
		c[i] = contrib(i, 1, 0, T0);
	c[0].standing = 0.2;
	score(c, 3, T0, &s);
	assert_true(fabs(s.bad - 2.2) < 1e-12);
	assert_int_equal(s.verdict, REP_UNKNOWN); /* 2.2 < 2.5 */
	rep_score_clear(&s);
	/* imported evidence is weighted on import: standing does not apply to peers */
	c[0].peer = 1;
	c[0].reporter = "peer:other.example";
	score(c, 3, T0, &s);
	assert_true(fabs(s.bad - 3) < 1e-12);
	assert_true(fabs(s.local_bad - 2) < 1e-12);
	assert_true(has_reason(&s, "imported"));
	rep_score_clear(&s);
}

/* ------------------------------------------------------------------ subjects */

static void subject_is(const char *in, const char *want)
{
	struct rep_subject s;
	struct err e = {0};

	assert_int_equal(rep_subject_parse(in, &s, &e), 0);
	assert_string_equal(s.text, want);
}

static void subject_bad(const char *in)
{
	struct rep_subject s;
	struct err e = {0};

	assert_int_equal(rep_subject_parse(in, &s, &e), -1);
	assert_string_equal(e.code, "bad_subject");
	assert_true(e.msg[0] != '\0');
}

static void test_subjects(void **state)
{
	subject_is("ip:192.0.2.1", "ip:192.0.2.1");
	subject_is("IP:2001:DB8:0:0::1", "ip:2001:db8::1");
	subject_is("ip:::ffff:192.0.2.7", "ip:192.0.2.7");
	subject_is("helo:MX.Example.COM.", "helo:mx.example.com");
	subject_is("helo:[192.0.2.1]", "helo:[192.0.2.1]");
	subject_is("helo:[ipv6:2001:DB8::1]", "helo:[IPv6:2001:db8::1]");
	subject_is("domain:Example.org", "domain:example.org");
	subject_is("signer:example.org", "signer:example.org");
	subject_is("key:SHA256:"
	           "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff",
	           "key:sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
	subject_is("address:Alice@Example.org", "address:alice@example.org");
	subject_bad("ip:192.0.2.256");
	subject_bad("ip:192.0.2.1/24");
	subject_bad("ip:");
	subject_bad("helo:[192.0.2.1");
	subject_bad("helo:[ipv6:192.0.2.1]");
	subject_bad("helo:exa mple.com");
	subject_bad("domain:localhost");
	subject_bad("key:sha256:0011");
	subject_bad("key:md5:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
	subject_bad("address:@example.org");
	subject_bad("color:red");
	subject_bad("192.0.2.1");
}

static void test_network_of(void **state)
{
	char out[64];

	rep_network_of("192.0.2.77", 24, 48, out, sizeof(out));
	assert_string_equal(out, "192.0.2.0/24");
	rep_network_of("2001:db8:1:2::5", 24, 48, out, sizeof(out));
	assert_string_equal(out, "2001:db8:1::/48");
	rep_network_of("10.1.2.3", 12, 48, out, sizeof(out));
	assert_string_equal(out, "10.0.0.0/12");
	rep_network_of("unknown", 24, 48, out, sizeof(out));
	assert_string_equal(out, "");
}

/* ------------------------------------------------------------------ payloads */

static int parse(const char *json, struct rep_report *r, struct err *e)
{
	memset(e, 0, sizeof(*e));
	return rep_report_from_json(json, strlen(json), T0, &params, 90 * 86400, 3600, r, e);
}

static void test_payload(void **state)
{
	struct rep_report r;
	struct err e;

	assert_int_equal(
	    parse("{\"type\":\"anchor-report\",\"id\":\"abc-1\",\"reporter\":"
	          "\"rep.example\",\"category\":\"phishing\",\"subjects\":"
	          "[\"ip:192.0.2.1\",\"IP:192.0.2.1\",\"domain:Bad.Example\"],"
	          "\"observed\":\"2027-01-15T07:00:00+01:00\",\"verified_identity\":true,"
	          "\"evidence\":\"Message-ID: <x@y>\"}",
	          &r, &e),
	    0);
	assert_string_equal(r.id, "abc-1");
	assert_string_equal(r.reporter, "rep.example");
	assert_int_equal(r.category, REP_PHISHING);
	assert_int_equal(r.nsubjects, 2); /* the repeated subject counts once */
	assert_string_equal(r.subjects[1].text, "domain:bad.example");
	assert_int_equal((long long)r.observed, T0 - 7200);
	assert_int_equal(r.verified_identity, 1);
	assert_string_equal(r.evidence, "Message-ID: <x@y>");
}

static void payload_fails(const char *json, const char *code)
{
	struct rep_report r;
	struct err e;

	assert_int_equal(parse(json, &r, &e), -1);
	assert_string_equal(e.code, code);
}

#define BASE "\"type\":\"anchor-report\",\"reporter\":\"rep.example\",\"category\":\"spam\""

static void test_payload_errors(void **state)
{
	payload_fails("[]", "bad_request");
	payload_fails("{\"type\":\"anchor-report\",\"type\":\"x\"}", "bad_request");
	payload_fails("{" BASE ",\"subjects\":[\"ip:192.0.2.1\"],"
	              "\"observed\":\"2027-01-15T07:00:00Z\"}",
	              "bad_request"); /* no id */
	payload_fails("{" BASE ",\"id\":\"a b\",\"subjects\":[\"ip:192.0.2.1\"],"
	              "\"observed\":\"2027-01-15T07:00:00Z\"}",
	              "bad_report_id");
	payload_fails("{" BASE
	              ",\"id\":\"a\",\"subjects\":[],\"observed\":\"2027-01-15T07:00:00Z\"}",
	              "bad_subject");
	payload_fails("{" BASE ",\"id\":\"a\",\"subjects\":[\"ip:x\"],"
	              "\"observed\":\"2027-01-15T07:00:00Z\"}",
	              "bad_subject");
	payload_fails("{" BASE ",\"id\":\"a\",\"subjects\":[\"ip:192.0.2.1\"],"
	              "\"observed\":\"2027-01-15 07:00\"}",
	              "bad_time");
	payload_fails("{" BASE ",\"id\":\"a\",\"subjects\":[\"ip:192.0.2.1\"],"
	              "\"observed\":\"2027-01-16T07:00:00Z\"}",
	              "bad_time"); /* a day in the future */
	payload_fails("{" BASE ",\"id\":\"a\",\"subjects\":[\"ip:192.0.2.1\"],"
	              "\"observed\":\"2026-01-15T07:00:00Z\"}",
	              "report_too_old");
	payload_fails(
	    "{\"type\":\"anchor-report\",\"reporter\":\"REP.example\",\"category\":\"spam\","
	    "\"id\":\"a\",\"subjects\":[\"ip:192.0.2.1\"],"
	    "\"observed\":\"2027-01-15T07:00:00Z\"}",
	    "bad_reporter");
	payload_fails(
	    "{\"type\":\"anchor-report\",\"reporter\":\"rep.example\",\"category\":\"ham\","
	    "\"id\":\"a\",\"subjects\":[\"ip:192.0.2.1\"],"
	    "\"observed\":\"2027-01-15T07:00:00Z\"}",
	    "bad_category");
}

static void test_time_parse(void **state)
{
	long long t;

	assert_int_equal(rep_time_parse("2027-01-15T08:00:00Z", &t), 0);
	assert_int_equal(t, T0);
	assert_int_equal(rep_time_parse("2027-01-15T08:00:00.123Z", &t), 0);
	assert_int_equal(t, T0);
	assert_int_equal(rep_time_parse("2027-01-15T03:00:00-05:00", &t), 0);
	assert_int_equal(t, T0);
	assert_int_equal(rep_time_parse("2027-01-15T08:00:00", &t), -1);
	assert_int_equal(rep_time_parse("2027-01-15T08:00:00Zjunk", &t), -1);
	assert_int_equal(rep_time_parse("", &t), -1);
}

/* Independent networks (networks.c): a matching, not a count of names or of reporters. */
static void test_networks(void **state)
{
	struct rep_contrib c[6];
	int all[6] = {1, 1, 1, 1, 1, 1}, group[6];
	struct rep_nets *m;

	(void)state;
	for (int i = 0; i < 6; i++)
		c[i] = contrib(i, 1, 0, T0);
	/* a ring of three on one /24 (and the key server's), two honest with their own */
	c[0].net = c[1].net = c[2].net = "10.0.0.0/24";
	c[3].net = "10.0.0.0/24 192.0.3.0/24";
	c[4].net = "192.0.4.0/24 10.0.0.0/24";
	c[5].net = ""; /* its DNS resolved nothing */
	assert_non_null(m = rep_nets_new(c, 6));
	assert_int_equal(rep_nets_count(m, all, group), 3);
	assert_int_equal(group[0], group[1]); /* the ring is capped together */
	assert_int_equal(group[1], group[2]);
	assert_int_not_equal(group[3], group[0]);
	assert_int_equal(group[5], -1);
	rep_nets_free(m);
	/* one reporter naming many networks counts once */
	c[0].net = "192.0.10.0/24 192.0.11.0/24 192.0.12.0/24";
	assert_non_null(m = rep_nets_new(c, 1));
	assert_int_equal(rep_nets_count(m, all, NULL), 1);
	rep_nets_free(m);
	/* a vetted reporter is a network of its own, whatever its DNS */
	c[0].net = c[1].net = "10.0.0.0/24";
	c[1].vetted = 1;
	assert_non_null(m = rep_nets_new(c, 2));
	assert_int_equal(rep_nets_count(m, all, NULL), 2);
	rep_nets_free(m);
	rep_nets_free(NULL);
}

/* min_networks: three domains on one network list nothing; a burst of new ones is held. */
static void test_networks_and_burst_verdicts(void **state)
{
	struct rep_params p = params;
	struct rep_contrib c[3];
	struct rep_score s;
	struct err e = {0};

	(void)state;
	p.min_networks = 3;
	for (int i = 0; i < 3; i++) {
		c[i] = contrib(i, 1, 0, T0);
		c[i].net = "10.0.0.0/24";
		c[i].reporter_since = T0 - 30 * 86400; /* long known: no burst */
	}
	p.network_cap = 10;
	assert_int_equal(rep_score_compute(&p, "ip:192.0.2.1", c, 3, T0, &s, &e), 0);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	assert_int_equal(s.bad_networks, 1);
	assert_true(has_reason(&s, "too_few_networks"));
	rep_score_clear(&s);
	for (int i = 0; i < 3; i++)
		c[i].net = nets[i]; /* three networks */
	assert_int_equal(rep_score_compute(&p, "ip:192.0.2.1", c, 3, T0, &s, &e), 0);
	assert_int_equal(s.verdict, REP_BLOCK);
	rep_score_clear(&s);
	/* the same three, first seen an hour before they reported: a burst */
	p.burst_reporters = 3;
	p.burst_window = 86400;
	for (int i = 0; i < 3; i++)
		c[i].reporter_since = T0 - 3600;
	assert_int_equal(rep_score_compute(&p, "ip:192.0.2.1", c, 3, T0, &s, &e), 0);
	assert_int_equal(s.verdict, REP_UNKNOWN);
	assert_int_equal(s.burst, 3);
	assert_true(s.bad < 0.01);
	assert_true(has_reason(&s, "burst"));
	rep_score_clear(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decay),
	    cmocka_unit_test(test_fold),
	    cmocka_unit_test(test_wilson),
	    cmocka_unit_test(test_category_weight),
	    cmocka_unit_test(test_nothing_known),
	    cmocka_unit_test(test_independent_reporters_list),
	    cmocka_unit_test(test_listing_fades_with_time),
	    cmocka_unit_test(test_threshold_at_equality),
	    cmocka_unit_test(test_reporter_cap),
	    cmocka_unit_test(test_poisoning_moves_score_by_at_most_the_cap),
	    cmocka_unit_test(test_contested_needs_numbers_on_both_sides),
	    cmocka_unit_test(test_contest_is_symmetric),
	    cmocka_unit_test(test_known_needs_min_reporters),
	    cmocka_unit_test(test_newcomer_ramp),
	    cmocka_unit_test(test_network_cap),
	    cmocka_unit_test(test_standing_weighs),
	    cmocka_unit_test(test_subjects),
	    cmocka_unit_test(test_network_of),
	    cmocka_unit_test(test_payload),
	    cmocka_unit_test(test_payload_errors),
	    cmocka_unit_test(test_time_parse),
	    cmocka_unit_test(test_networks),
	    cmocka_unit_test(test_networks_and_burst_verdicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
