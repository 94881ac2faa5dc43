/* test_dns_resolve.c - answer interpretation: rcodes, TC, CNAME chains and loops; resolver setup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dns/dns.h"

static ldns_pkt *pkt_with(ldns_pkt_rcode rcode, const char *const *answers, const char *soa)
{
	ldns_pkt *p = ldns_pkt_new();
	int i;

	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_rcode(p, rcode);
	for (i = 0; answers && answers[i]; i++) {
		ldns_rr *rr = NULL;

		assert_int_equal(ldns_rr_new_frm_str(&rr, answers[i], 0, NULL, NULL),
		                 LDNS_STATUS_OK);
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
	}
	if (soa) {
		ldns_rr *rr = NULL;

		assert_int_equal(ldns_rr_new_frm_str(&rr, soa, 0, NULL, NULL), LDNS_STATUS_OK);
		ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, rr);
	}
	return p;
}

static int interpret(ldns_pkt *p, const char *qname, ldns_rr_type t, struct dns_answer *a,
                     char *next, struct err *e)
{
	int rc;

	memset(a, 0, sizeof(*a));
	snprintf(a->qname, sizeof(a->qname), "%s", qname);
	err_clear(e);
	rc = dns_answer_from_pkt(p, qname, t, a, next, DNS_NAME_MAX, e);
	ldns_pkt_free(p);
	return rc;
}

#define SOA "x.test. 300 IN SOA ns.x.test. h.x.test. 1 3600 600 86400 120"

static void test_plain_answer(void **state)
{
	const char *ans[] = {"_anchor.x.test. 300 IN TXT \"v=ANCHOR1\"",
	                     "_anchor.x.test. 200 IN TXT \"other\"", NULL};
	struct dns_answer a;
	char next[DNS_NAME_MAX];
	struct err e;

	(void)state;
	assert_int_equal(interpret(pkt_with(LDNS_RCODE_NOERROR, ans, NULL), "_anchor.x.test",
	                           LDNS_RR_TYPE_TXT, &a, next, &e),
	                 0);
	assert_int_equal(ldns_rr_list_rr_count(a.rrs), 2);
	assert_int_equal(a.ttl, 200);
	assert_string_equal(next, "");
	assert_false(a.nxdomain || a.nodata);
	dns_answer_clear(&a);
}

static void test_rcodes_and_truncation(void **state)
{
	struct dns_answer a;
	char next[DNS_NAME_MAX];
	struct err e;
	ldns_pkt *p;

	(void)state;
	assert_int_equal(interpret(pkt_with(LDNS_RCODE_SERVFAIL, NULL, NULL), "x.test",
	                           LDNS_RR_TYPE_TXT, &a, next, &e),
	                 -1);
	assert_string_equal(e.code, "dns_servfail");
	assert_int_equal(e.kind, ERR_TEMP);
	dns_answer_clear(&a);
	assert_int_equal(interpret(pkt_with(LDNS_RCODE_REFUSED, NULL, NULL), "x.test",
	                           LDNS_RR_TYPE_TXT, &a, next, &e),
	                 -1);
	assert_string_equal(e.code, "dns_refused");
	dns_answer_clear(&a);
	assert_int_equal(interpret(pkt_with(LDNS_RCODE_FORMERR, NULL, NULL), "x.test",
	                           LDNS_RR_TYPE_TXT, &a, next, &e),
	                 -1);
	assert_string_equal(e.code, "dns_rcode");
	dns_answer_clear(&a);
	p = pkt_with(LDNS_RCODE_NOERROR, NULL, NULL);
	ldns_pkt_set_tc(p, true);
	assert_int_equal(interpret(p, "x.test", LDNS_RR_TYPE_TXT, &a, next, &e), -1);
	assert_string_equal(e.code, "dns_truncated");
	dns_answer_clear(&a);
}

static void test_negative_answers(void **state)
{
	struct dns_answer a;
	char next[DNS_NAME_MAX];
	struct err e;

	(void)state;
	assert_int_equal(interpret(pkt_with(LDNS_RCODE_NXDOMAIN, NULL, SOA), "_anchor.x.test",
	                           LDNS_RR_TYPE_TXT, &a, next, &e),
	                 0);
	assert_true(a.nxdomain);
	assert_int_equal(a.ttl, 120); /* SOA minimum */
	assert_int_equal(ldns_rr_list_rr_count(a.rrs), 0);
	dns_answer_clear(&a);
	assert_int_equal(interpret(pkt_with(LDNS_RCODE_NOERROR, NULL, SOA), "_anchor.x.test",
	                           LDNS_RR_TYPE_TXT, &a, next, &e),
	                 0);
	assert_true(a.nodata);
	dns_answer_clear(&a);
}

static void test_cname_chain(void **state)
{
	const char *in_pkt[] = {"_anchor.x.test. 300 IN CNAME a.y.test.",
	                        "a.y.test. 100 IN TXT \"v=ANCHOR1\"", NULL};
	const char *leaves[] = {"_anchor.x.test. 300 IN CNAME a.z.test.", NULL};
	struct dns_answer a;
	char next[DNS_NAME_MAX];
	struct err e;

	(void)state;
	assert_int_equal(interpret(pkt_with(LDNS_RCODE_NOERROR, in_pkt, NULL), "_anchor.x.test",
	                           LDNS_RR_TYPE_TXT, &a, next, &e),
	                 0);
	assert_int_equal(a.cnames, 1);
	assert_string_equal(a.final_name, "a.y.test");
	assert_int_equal(ldns_rr_list_rr_count(a.rrs), 1);
	assert_int_equal(a.ttl, 100);
	dns_answer_clear(&a);
	/* The target is not in the packet: the caller must ask for it. */
	assert_int_equal(interpret(pkt_with(LDNS_RCODE_NOERROR, leaves, NULL), "_anchor.x.test",
	                           LDNS_RR_TYPE_TXT, &a, next, &e),
	                 0);
	assert_string_equal(next, "a.z.test");
	dns_answer_clear(&a);
}

static void test_cname_loop(void **state)
{
	const char *loop[] = {"a.x.test. 300 IN CNAME b.x.test.",
	                      "b.x.test. 300 IN CNAME A.x.test.", NULL};
	const char *self[] = {"a.x.test. 300 IN CNAME a.x.test.", NULL};
	struct dns_answer a;
	char next[DNS_NAME_MAX];
	struct err e;

	(void)state;
	assert_int_equal(interpret(pkt_with(LDNS_RCODE_NOERROR, loop, NULL), "a.x.test",
	                           LDNS_RR_TYPE_TXT, &a, next, &e),
	                 -1);
	assert_string_equal(e.code, "dns_cname_loop");
	dns_answer_clear(&a);
	assert_int_equal(interpret(pkt_with(LDNS_RCODE_NOERROR, self, NULL), "a.x.test",
	                           LDNS_RR_TYPE_TXT, &a, next, &e),
	                 -1);
	assert_string_equal(e.code, "dns_cname_loop");
	dns_answer_clear(&a);
}

static void test_names_and_setup(void **state)
{
	char out[DNS_NAME_MAX];
	struct dns_resolver *r;
	struct err e;

	(void)state;
	assert_int_equal(dns_name_canon("Keys.Example.COM.", out, sizeof(out), &e), 0);
	assert_string_equal(out, "keys.example.com");
	assert_int_equal(dns_name_canon("a..b", out, sizeof(out), &e), -1);
	assert_int_equal(dns_name_canon("a b", out, sizeof(out), &e), -1);
	assert_int_equal(dns_name_canon("", out, sizeof(out), &e), -1);
	assert_null(dns_resolver_new("nonsense", NULL, 1000, &e));
	assert_string_equal(e.code, "bad_resolver");
	assert_null(dns_resolver_new("127.0.0.1:99999", NULL, 1000, &e));
	assert_null(dns_resolver_new("127.0.0.1", "/nonexistent/anchor", 1000, &e));
	assert_string_equal(e.code, "trust_anchor");
	r = dns_resolver_new("[::1]:5353", NULL, 1000, &e);
	assert_non_null(r);
	assert_false(dns_resolver_has_anchor(r));
	dns_resolver_free(r);
	dns_resolver_free(NULL);
}

/* Nothing listens on the port: a precise timeout error after asking again, no crash. */
static void test_timeout(void **state)
{
	struct dns_resolver *r;
	struct dns_answer a;
	struct err e;

	(void)state;
	r = dns_resolver_new("127.0.0.1:9", NULL, 1000, &e);
	assert_non_null(r);
	assert_int_equal(dns_query(r, "_anchor.x.test", LDNS_RR_TYPE_TXT, &a, &e), -1);
	assert_string_equal(e.code, "dns_timeout");
	assert_true(dns_resolver_queries(r) >= 1);
	/* asked again (UDP, then TCP) before giving up */
	assert_int_equal(dns_resolver_retries(r), 2);
	dns_resolver_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_answer),     cmocka_unit_test(test_rcodes_and_truncation),
	    cmocka_unit_test(test_negative_answers), cmocka_unit_test(test_cname_chain),
	    cmocka_unit_test(test_cname_loop),       cmocka_unit_test(test_names_and_setup),
	    cmocka_unit_test(test_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
