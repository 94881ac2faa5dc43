/*
 * Tests of reputation/dnszone.c: query names -> subjects, answers per verdict
 * (listing codes, error signals outside the listing range, RFC 5782 test
 * entries), then the UDP/TCP server with a stand-in lookup, asked with ldns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dnszone.h"
#include "dnszone_tcp.h"

#define ZONE "rep.example"
#define LONG_LABEL "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"

/* A query for name/type in wire form. */
static uint8_t *query_wire(const char *name, ldns_rr_type type, int edns, size_t *len)
{
	ldns_pkt *p = NULL;
	uint8_t *wire = NULL;

	assert_int_equal(ldns_pkt_query_new_frm_str(&p, name, type, LDNS_RR_CLASS_IN, LDNS_RD),
	                 LDNS_STATUS_OK);
	ldns_pkt_set_id(p, 4242);
	if (edns) /* 1: the usual 1232; more: that size */
		ldns_pkt_set_edns_udp_size(p, edns > 1 ? (uint16_t)edns : 1232);
	assert_int_equal(ldns_pkt2wire(&wire, p, len), LDNS_STATUS_OK);
	ldns_pkt_free(p);
	return wire;
}

static void parse(const char *name, ldns_rr_type type, struct rep_dnszone_query *q)
{
	size_t len;
	uint8_t *w = query_wire(name, type, 0, &len);

	rep_dnszone_parse(w, len, ZONE, q);
	free(w);
}

static void test_parse_names(void **state)
{
	struct rep_dnszone_query q;

	parse("2.2.0.192." ZONE, LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_SUBJECT);
	assert_string_equal(q.subject.text, "ip:192.0.2.2");
	assert_int_equal(q.id, 4242);
	assert_int_equal(q.rd, 1);
	parse("2.2.0.192.REP.Example.", LDNS_RR_TYPE_TXT, &q); /* case-insensitive */
	assert_int_equal(q.kind, REP_DZ_SUBJECT);
	assert_int_equal(q.qtype, LDNS_RR_TYPE_TXT);
	parse("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2." ZONE,
	      LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_SUBJECT);
	assert_string_equal(q.subject.text, "ip:2001:db8::1");
	parse("Spammer.Example." ZONE, LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_SUBJECT);
	assert_string_equal(q.subject.text, "domain:spammer.example");
	/* RFC 5782 §5 test entries */
	parse("2.0.0.127." ZONE, LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_TEST_LISTED);
	parse("1.0.0.127." ZONE, LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_TEST_UNLISTED);
	parse("2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0." ZONE,
	      LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_TEST_LISTED);
	parse("1.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0." ZONE,
	      LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_TEST_UNLISTED);
	parse("TEST." ZONE, LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_TEST_LISTED);
	parse("invalid." ZONE, LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_TEST_UNLISTED);
	/* the apex, outside the zone, malformed */
	parse(ZONE, LDNS_RR_TYPE_SOA, &q);
	assert_int_equal(q.kind, REP_DZ_APEX);
	parse("2.2.0.192.other.example", LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_ERROR);
	assert_int_equal(q.rcode, LDNS_RCODE_REFUSED);
	parse("xrep.example", LDNS_RR_TYPE_A, &q); /* a suffix, not a subdomain */
	assert_int_equal(q.kind, REP_DZ_ERROR);
	parse("2.0.192." ZONE, LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_MALFORMED);
	parse("256.2.0.192." ZONE, LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_MALFORMED);
	parse("02.2.0.192." ZONE, LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_MALFORMED);
	parse("bad_name!." ZONE, LDNS_RR_TYPE_A, &q);
	assert_int_equal(q.kind, REP_DZ_MALFORMED);
}

static void test_parse_bad_packets(void **state)
{
	struct rep_dnszone_query q;
	uint8_t junk[12] = {0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0};
	size_t len;
	uint8_t *w;

	rep_dnszone_parse(junk, 5, ZONE, &q);
	assert_int_equal(q.kind, REP_DZ_DROP);
	rep_dnszone_parse(junk, sizeof(junk), ZONE, &q); /* qdcount 1, no question */
	assert_int_equal(q.kind, REP_DZ_ERROR);
	assert_int_equal(q.rcode, LDNS_RCODE_FORMERR);
	assert_int_equal(q.id, 0x1234);
	junk[2] = 0x81; /* QR: a response, never answered */
	rep_dnszone_parse(junk, sizeof(junk), ZONE, &q);
	assert_int_equal(q.kind, REP_DZ_DROP);
	w = query_wire("2.2.0.192." ZONE, LDNS_RR_TYPE_A, 0, &len);
	w[2] = (uint8_t)((w[2] & ~0x78) | (LDNS_PACKET_NOTIFY << 3));
	rep_dnszone_parse(w, len, ZONE, &q);
	assert_int_equal(q.kind, REP_DZ_ERROR);
	assert_int_equal(q.rcode, LDNS_RCODE_NOTIMPL);
	free(w);
}

/* Answer q with v; returns the parsed packet. */
static ldns_pkt *answer(const char *name, ldns_rr_type type, const struct rep_dnszone_verdict *v)
{
	struct rep_dnszone_query q;
	ldns_pkt *p = NULL;
	size_t len;
	uint8_t *w;

	parse(name, type, &q);
	w = rep_dnszone_answer(&q, ZONE, v, 300, 7, &len);
	assert_non_null(w);
	assert_int_equal(ldns_wire2pkt(&p, w, len), LDNS_STATUS_OK);
	free(w);
	assert_int_equal(ldns_pkt_id(p), 4242);
	assert_true(ldns_pkt_qr(p));
	return p;
}

static char *first_answer(ldns_pkt *p)
{
	ldns_rr_list *a = ldns_pkt_answer(p);

	if (ldns_rr_list_rr_count(a) == 0)
		return NULL;
	return ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(a, 0), 0));
}

static void expect_a(const char *name, const struct rep_dnszone_verdict *v, const char *want,
                     uint32_t want_ttl)
{
	ldns_pkt *p = answer(name, LDNS_RR_TYPE_A, v);
	char *a = first_answer(p);

	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
	assert_true(ldns_pkt_aa(p));
	assert_non_null(a);
	assert_string_equal(a, want);
	assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0)), want_ttl);
	free(a);
	ldns_pkt_free(p);
}

static void expect_nxdomain(const char *name, const struct rep_dnszone_verdict *v)
{
	ldns_pkt *p = answer(name, LDNS_RR_TYPE_A, v);

	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
	assert_int_equal(ldns_pkt_ancount(p), 0);
	assert_int_equal(ldns_pkt_nscount(p), 1); /* the SOA, for negative caching */
	ldns_pkt_free(p);
}

static void test_answers(void **state)
{
	struct rep_dnszone_verdict v;
	ldns_pkt *p;
	char *t;

	memset(&v, 0, sizeof(v));
	v.verdict = REP_BLOCK;
	snprintf(v.reason, sizeof(v.reason), "12 reports from 11 reporting domains");
	expect_a("2.2.0.192." ZONE, &v, "127.0.0.2", 300);
	v.categories = 1u << REP_PHISHING;
	expect_a("2.2.0.192." ZONE, &v, "127.0.0.3", 300);
	v.categories |= 1u << REP_MALWARE;
	expect_a("2.2.0.192." ZONE, &v, "127.0.0.4", 300);
	p = answer("2.2.0.192." ZONE, LDNS_RR_TYPE_TXT, &v);
	t = first_answer(p);
	assert_non_null(t);
	assert_non_null(strstr(t, "block: 12 reports from 11 reporting domains"));
	free(t);
	ldns_pkt_free(p);
	p = answer("2.2.0.192." ZONE, LDNS_RR_TYPE_ANY, &v);
	assert_int_equal(ldns_pkt_ancount(p), 2);
	ldns_pkt_free(p);
	p = answer("2.2.0.192." ZONE, LDNS_RR_TYPE_AAAA, &v); /* listed: NODATA */
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_ancount(p), 0);
	ldns_pkt_free(p);
	/* Not listed, whatever else the verdict is. */
	v.verdict = REP_UNKNOWN;
	expect_nxdomain("2.2.0.192." ZONE, &v);
	v.verdict = REP_TRUSTED;
	expect_nxdomain("2.2.0.192." ZONE, &v);
	v.verdict = REP_KNOWN;
	expect_nxdomain("2.2.0.192." ZONE, &v);
	/* Error signals: outside 127.0.0.0/24, short TTL. */
	memset(&v, 0, sizeof(v));
	v.error = 1;
	expect_a("2.2.0.192." ZONE, &v, "127.255.255.254", REP_DNSZONE_ERROR_TTL);
	memset(&v, 0, sizeof(v));
	v.rate_limited = 1;
	v.verdict = REP_BLOCK;
	expect_a("2.2.0.192." ZONE, &v, "127.255.255.255", REP_DNSZONE_ERROR_TTL);
	expect_a("2.0.192." ZONE, NULL, "127.255.255.252", REP_DNSZONE_ERROR_TTL);
	/* RFC 5782 test entries */
	expect_a("2.0.0.127." ZONE, NULL, "127.0.0.2", 300);
	expect_a("test." ZONE, NULL, "127.0.0.2", 300);
	expect_nxdomain("1.0.0.127." ZONE, NULL);
	expect_nxdomain("invalid." ZONE, NULL);
	/* apex */
	p = answer(ZONE, LDNS_RR_TYPE_SOA, NULL);
	assert_int_equal(ldns_pkt_ancount(p), 1);
	assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(p), 0)),
	                 LDNS_RR_TYPE_SOA);
	ldns_pkt_free(p);
	/* outside */
	p = answer("x.other.example", LDNS_RR_TYPE_A, NULL);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
	assert_false(ldns_pkt_aa(p));
	ldns_pkt_free(p);
}

/* Answer a query given in wire form with a listing; the parsed answer. */
static ldns_pkt *answer_wire(const uint8_t *w, size_t len, struct rep_dnszone_query *q)
{
	struct rep_dnszone_verdict v;
	ldns_pkt *p = NULL;
	uint8_t out[REP_DNSZONE_ANSWER_MAX];
	size_t alen;

	memset(&v, 0, sizeof(v));
	v.verdict = REP_BLOCK;
	rep_dnszone_parse(w, len, ZONE, q);
	alen = rep_dnszone_write(q, &v, 300, 7, out, sizeof(out));
	assert_true(alen > 0);
	assert_int_equal(ldns_wire2pkt(&p, out, alen), LDNS_STATUS_OK);
	return p;
}

static void test_wire_details(void **state)
{
	/* "a.rep" (one label with a dot in it) + "example": reads as the zone in text only */
	static const uint8_t escaped[] = {0x12, 0x34, 0x01, 0,   0,   1,   0,   0, 0,   0,   0,
	                                  0,    5,    'a',  '.', 'r', 'e', 'p', 7, 'e', 'x', 'a',
	                                  'm',  'p',  'l',  'e', 0,   0,   1,   0, 1};
	/* a question name that is a compression pointer */
	static const uint8_t pointer[] = {0x12, 0x34, 0x01, 0,    0,    1, 0, 0, 0,
	                                  0,    0,    0,    0xc0, 0x0c, 0, 1, 0, 1};
	struct rep_dnszone_query q;
	uint8_t small[40];
	ldns_pkt *p;
	ldns_rr *soa;
	size_t len;
	uint8_t *w;
	char *t;

	/* The question comes back as asked, case and all (resolvers using 0x20 check it). */
	w = query_wire("2.2.0.192.Rep.EXAMPLE.", LDNS_RR_TYPE_A, 1, &len);
	p = answer_wire(w, len, &q);
	t = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(p), 0)));
	assert_string_equal(t, "2.2.0.192.Rep.EXAMPLE.");
	free(t);
	t = first_answer(p);
	assert_string_equal(t, "127.0.0.2");
	free(t);
	assert_true(ldns_pkt_edns(p)); /* EDNS asked, EDNS answered */
	assert_int_equal(ldns_pkt_edns_udp_size(p), 1232);
	ldns_pkt_free(p);
	/* The same answer does not fit 40 octets: nothing rather than a cut message. */
	assert_int_equal(rep_dnszone_write(&q, NULL, 300, 7, small, sizeof(small)), 0);
	free(w);

	/* The negative answer's SOA names the apex and hostmaster.<apex> (pointers into the
	 * question's name). */
	w = query_wire("1.0.0.127." ZONE, LDNS_RR_TYPE_A, 0, &len);
	p = answer_wire(w, len, &q);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
	assert_false(ldns_pkt_edns(p));
	soa = ldns_rr_list_rr(ldns_pkt_authority(p), 0);
	t = ldns_rdf2str(ldns_rr_owner(soa));
	assert_string_equal(t, ZONE ".");
	free(t);
	t = ldns_rdf2str(ldns_rr_rdf(soa, 1));
	assert_string_equal(t, "hostmaster." ZONE ".");
	free(t);
	assert_int_equal(ldns_rdf2native_int32(ldns_rr_rdf(soa, 2)), 7);
	ldns_pkt_free(p);
	free(w);

	p = answer_wire(escaped, sizeof(escaped), &q);
	assert_int_equal(q.kind, REP_DZ_ERROR);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
	ldns_pkt_free(p);
	p = answer_wire(pointer, sizeof(pointer), &q);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_FORMERR);
	assert_int_equal(ldns_pkt_qdcount(p), 0);
	ldns_pkt_free(p);

	/* Class CH: REFUSED, the question echoed with its class. */
	w = query_wire("2.2.0.192." ZONE, LDNS_RR_TYPE_A, 0, &len);
	w[len - 1] = LDNS_RR_CLASS_CH;
	p = answer_wire(w, len, &q);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
	assert_int_equal(ldns_rr_get_class(ldns_rr_list_rr(ldns_pkt_question(p), 0)),
	                 LDNS_RR_CLASS_CH);
	ldns_pkt_free(p);
	/* A record cut short after the question: FORMERR. */
	w[11] = 1; /* arcount 1, and nothing there */
	w[len - 1] = LDNS_RR_CLASS_IN;
	rep_dnszone_parse(w, len, ZONE, &q);
	assert_int_equal(q.kind, REP_DZ_ERROR);
	assert_int_equal(q.rcode, LDNS_RCODE_FORMERR);
	free(w);
}

/* A listing with a long reason for a long name, asked with the given EDNS size (0: no
 * EDNS) over UDP or TCP; the answer's length, its packet in *pp. */
static size_t long_answer(ldns_rr_type type, int edns, int udp, ldns_pkt **pp)
{
	char name[DNS_NAME_MAX];
	struct rep_dnszone_query q;
	struct rep_dnszone_verdict v;
	uint8_t out[REP_DNSZONE_ANSWER_MAX], *w;
	size_t len, alen;

	/* 248 characters: the longest answers the zone gives */
	snprintf(name, sizeof(name), "%.63s.%.63s.%.63s.%.36s.example." ZONE, LONG_LABEL,
	         LONG_LABEL, LONG_LABEL, LONG_LABEL);
	memset(&v, 0, sizeof(v));
	v.verdict = REP_BLOCK;
	memset(v.reason, 'r', sizeof(v.reason) - 1);
	w = query_wire(name, type, edns, &len);
	rep_dnszone_parse(w, len, ZONE, &q);
	free(w);
	assert_int_equal(q.kind, REP_DZ_SUBJECT);
	q.udp = udp;
	alen = rep_dnszone_write(&q, &v, 300, 7, out, sizeof(out));
	assert_true(alen > 0);
	*pp = NULL;
	assert_int_equal(ldns_wire2pkt(pp, out, alen), LDNS_STATUS_OK);
	assert_int_equal(ldns_pkt_qdcount(*pp), 1); /* the question always comes back */
	assert_int_equal(ldns_pkt_get_rcode(*pp), LDNS_RCODE_NOERROR);
	return alen;
}

/* Expect a truncated UDP answer: TC, no records but the OPT, within limit. */
static void expect_truncated(ldns_rr_type type, int edns, size_t limit)
{
	ldns_pkt *p;
	size_t alen = long_answer(type, edns, 1, &p);

	assert_true(alen <= limit);
	assert_true(ldns_pkt_tc(p));
	assert_int_equal(ldns_pkt_ancount(p), 0);
	assert_int_equal(ldns_pkt_nscount(p), 0);
	assert_int_equal(ldns_pkt_edns(p), edns != 0);
	ldns_pkt_free(p);
}

static void expect_whole(ldns_rr_type type, int edns, int udp, size_t min_len)
{
	ldns_pkt *p;
	size_t alen = long_answer(type, edns, udp, &p);

	assert_true(alen >= min_len);
	assert_false(ldns_pkt_tc(p));
	assert_int_equal(ldns_pkt_ancount(p), type == LDNS_RR_TYPE_ANY ? 2 : 1);
	ldns_pkt_free(p);
}

static void test_udp_truncation(void **state)
{
	(void)state;
	/* no EDNS: 512 octets over UDP (RFC 1035 4.2.1); the TXT answer needs 520 */
	expect_truncated(LDNS_RR_TYPE_TXT, 0, 512);
	expect_truncated(LDNS_RR_TYPE_ANY, 0, 512);
	expect_whole(LDNS_RR_TYPE_A, 0, 1, 0); /* a short answer to the same name fits */
	/* TCP takes the whole answer */
	expect_whole(LDNS_RR_TYPE_TXT, 0, 0, 513);
	expect_whole(LDNS_RR_TYPE_ANY, 0, 0, 513);
	/* EDNS: the client's size; below 512 counts as 512 (RFC 6891 6.2.5) */
	expect_whole(LDNS_RR_TYPE_ANY, 1232, 1, 513);
	expect_whole(LDNS_RR_TYPE_ANY, 600, 1, 513);
	expect_truncated(LDNS_RR_TYPE_ANY, 530, 530);
	expect_truncated(LDNS_RR_TYPE_TXT, 100, 512);
	/* more than we offer is capped at ours, which still holds the longest answer */
	expect_whole(LDNS_RR_TYPE_ANY, 65535, 1, 513);
}

static void test_codes_in_range(void **state)
{
	struct rep_dnszone_verdict v;

	memset(&v, 0, sizeof(v));
	v.verdict = REP_BLOCK;
	assert_true((rep_dnszone_code(&v) >> 8) == 0x7f0000u);
	assert_true((rep_dnszone_code(&v) & 0xff) >= 2);
	v.error = 1;
	assert_false((rep_dnszone_code(&v) >> 8) == 0x7f0000u);
	v.verdict = REP_KNOWN;
	v.error = 0;
	assert_int_equal(rep_dnszone_code(&v), 0);
}

/* ------------------------------------------------------------------ the server */

struct fake {
	int calls;
	int fail;
};

static int fake_lookup(void *ctx, const struct rep_subject *s, struct rep_dnszone_verdict *v,
                       struct err *e)
{
	struct fake *f = ctx;

	f->calls++;
	if (f->fail)
		return err_set(e, ERR_TEMP, "db_down", "the database is down");
	if (strcmp(s->text, "ip:192.0.2.66") == 0 || strcmp(s->text, "domain:spam.example") == 0) {
		v->verdict = REP_BLOCK;
		snprintf(v->reason, sizeof(v->reason), "listed by 10 reporters");
	} else {
		v->verdict = REP_UNKNOWN;
	}
	return 0;
}

static ldns_pkt *ask(int port, const char *name, ldns_rr_type type, int tcp)
{
	ldns_resolver *r = ldns_resolver_new();
	ldns_rdf *ns = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, "127.0.0.1");
	ldns_rdf *qn = ldns_dname_new_frm_str(name);
	ldns_pkt *p = NULL;
	struct timeval tv = {2, 0};

	ldns_resolver_push_nameserver(r, ns);
	ldns_resolver_set_port(r, (uint16_t)port);
	ldns_resolver_set_timeout(r, tv);
	ldns_resolver_set_retry(r, 1);
	ldns_resolver_set_usevc(r, tcp);
	assert_int_equal(ldns_resolver_send(&p, r, qn, type, LDNS_RR_CLASS_IN, LDNS_RD),
	                 LDNS_STATUS_OK);
	ldns_rdf_deep_free(ns);
	ldns_rdf_deep_free(qn);
	ldns_resolver_deep_free(r);
	return p;
}

static void test_server(void **state)
{
	struct fake f = {0, 0};
	struct rep_dnszone_config c = {.listen = "127.0.0.1:0",
	                               .zone = "Rep.Example.",
	                               .ttl = 120,
	                               .threads = 2,
	                               .cache_seconds = 30,
	                               .lookup = fake_lookup,
	                               .ctx = &f};
	struct rep_dnszone *z;
	struct err e;
	ldns_pkt *p;
	char *a;
	int port, tcp;

	z = rep_dnszone_start_config(&c, &e);
	assert_non_null(z);
	port = rep_dnszone_port(z);
	assert_true(port > 0);
	for (tcp = 0; tcp <= 1; tcp++) {
		p = ask(port, "66.2.0.192." ZONE, LDNS_RR_TYPE_A, tcp);
		a = first_answer(p);
		assert_non_null(a);
		assert_string_equal(a, "127.0.0.2");
		free(a);
		ldns_pkt_free(p);
		p = ask(port, "spam.example." ZONE, LDNS_RR_TYPE_TXT, tcp);
		a = first_answer(p);
		assert_non_null(strstr(a, "listed by 10 reporters"));
		free(a);
		ldns_pkt_free(p);
		p = ask(port, "67.2.0.192." ZONE, LDNS_RR_TYPE_A, tcp);
		assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
		ldns_pkt_free(p);
	}
	/* The UDP and TCP rounds asked the same three subjects: the cache answered. */
	assert_int_equal(f.calls, 3);
	assert_int_equal(rep_dnszone_queries(z), 6);
	rep_dnszone_stop(z);

	/* A store that fails: the error signal, never a listing, never SERVFAIL. */
	f.fail = 1;
	c.cache_seconds = 0;
	c.rate = 2;
	c.burst = 2;
	z = rep_dnszone_start_config(&c, &e);
	assert_non_null(z);
	port = rep_dnszone_port(z);
	p = ask(port, "66.2.0.192." ZONE, LDNS_RR_TYPE_A, 0);
	a = first_answer(p);
	assert_string_equal(a, "127.255.255.254");
	free(a);
	ldns_pkt_free(p);
	ldns_pkt_free(ask(port, "66.2.0.192." ZONE, LDNS_RR_TYPE_A, 0));
	/* The third query within the second is over the rate of 2. */
	p = ask(port, "66.2.0.192." ZONE, LDNS_RR_TYPE_A, 0);
	a = first_answer(p);
	assert_string_equal(a, "127.255.255.255");
	free(a);
	ldns_pkt_free(p);
	rep_dnszone_stop(z);

	c.listen = "nonsense";
	assert_null(rep_dnszone_start_config(&c, &e));
	assert_string_equal(e.code, "bad_dns_listen");
	c.listen = "127.0.0.1:0";
	c.zone = "bad zone";
	assert_null(rep_dnszone_start_config(&c, &e));
	assert_string_equal(e.code, "bad_dns_zone");
	rep_dnszone_stop(NULL);
}

static int tcp_connect(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {5, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Read exactly n octets (the receive timeout fails the test rather than hanging). */
static void read_exactly(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);

		assert_true(r > 0);
		got += (size_t)r;
	}
}

/* One more TCP connection than the limit: the longest idle goes, the newcomer is
 * answered, and a query split over several writes is answered once it is whole. */
static void test_tcp_limit(void **state)
{
	struct fake f = {0, 0};
	struct rep_dnszone_config c = {.listen = "127.0.0.1:0",
	                               .zone = ZONE,
	                               .ttl = 60,
	                               .threads = 1,
	                               .cache_seconds = 30,
	                               .lookup = fake_lookup,
	                               .ctx = &f};
	static int fds[REP_DNSZONE_TCP_MAX_CONNS + 1];
	struct rep_dnszone *z;
	struct err e;
	uint8_t buf[REP_DNSZONE_ANSWER_MAX + 2], *w, frame[600];
	struct rlimit rl;
	size_t len;
	int port, i;

	/* Both ends live in this process: twice the limit in descriptors, and some. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2 * REP_DNSZONE_TCP_MAX_CONNS + 64) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < 2 * REP_DNSZONE_TCP_MAX_CONNS + 64)
			skip();
	}
	z = rep_dnszone_start_config(&c, &e);
	assert_non_null(z);
	port = rep_dnszone_port(z);
	for (i = 0; i <= REP_DNSZONE_TCP_MAX_CONNS; i++)
		fds[i] = tcp_connect(port);
	w = query_wire("66.2.0.192." ZONE, LDNS_RR_TYPE_A, 0, &len);
	frame[0] = (uint8_t)(len >> 8);
	frame[1] = (uint8_t)len;
	memcpy(frame + 2, w, len);
	free(w);
	/* the newest connection, its query in three pieces */
	assert_int_equal(send(fds[REP_DNSZONE_TCP_MAX_CONNS], frame, 1, 0), 1);
	usleep(50 * 1000);
	assert_int_equal(send(fds[REP_DNSZONE_TCP_MAX_CONNS], frame + 1, 5, 0), 5);
	usleep(50 * 1000);
	assert_int_equal(send(fds[REP_DNSZONE_TCP_MAX_CONNS], frame + 6, len - 4, 0),
	                 (ssize_t)(len - 4));
	read_exactly(fds[REP_DNSZONE_TCP_MAX_CONNS], buf, 2);
	read_exactly(fds[REP_DNSZONE_TCP_MAX_CONNS], buf + 2, (size_t)(buf[0] << 8 | buf[1]));
	assert_int_equal(buf[2] << 8 | buf[3], 4242); /* the query's id */
	/* The first, idle since it came, was closed to make room. */
	assert_int_equal(recv(fds[0], buf, sizeof(buf), 0), 0);
	for (i = 0; i <= REP_DNSZONE_TCP_MAX_CONNS; i++)
		close(fds[i]);
	rep_dnszone_stop(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_names),    cmocka_unit_test(test_parse_bad_packets),
	    cmocka_unit_test(test_answers),        cmocka_unit_test(test_wire_details),
	    cmocka_unit_test(test_codes_in_range), cmocka_unit_test(test_server),
	    cmocka_unit_test(test_tcp_limit),      cmocka_unit_test(test_udp_truncation),
	};

	return cmocka_run_group_tests_name("dnszone", tests, NULL, NULL);
}
