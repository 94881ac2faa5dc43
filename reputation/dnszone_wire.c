/*
 * dnszone_wire.c - the pure half of the DNS zone: a query in wire form ->
 * what it asks (rep_dnszone_parse), and a verdict -> the answer in wire form
 * (rep_dnszone_answer).  No sockets, no store: the fuzzer's entry point.
 * Names and codes: dnszone.h; declarations: dnszone_wire.h.
 */
#include "dnszone_wire.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

/* ------------------------------------------------------------------ parsing */

static int all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return n > 0;
}

/* The labels of prefix as (start, length) pairs; -1 when more than max. */
static int split_labels(const char *prefix, const char *lab[], size_t len[], int max)
{
	int n = 0;
	const char *p = prefix;

	for (;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (n == max)
			return -1;
		lab[n] = p;
		len[n++] = l;
		if (dot == NULL)
			return n;
		p = dot + 1;
	}
}

/* d.c.b.a -> "a.b.c.d" when prefix is a reversed IPv4 address. */
static int reversed_ipv4(const char *lab[], const size_t len[], int n, char *out, size_t size)
{
	unsigned v[4];
	int i;

	if (n != 4)
		return -1;
	for (i = 0; i < 4; i++) {
		if (len[i] > 3 || !all_digits(lab[i], len[i]) || (len[i] > 1 && lab[i][0] == '0'))
			return -1;
		v[i] = 0;
		for (size_t k = 0; k < len[i]; k++)
			v[i] = v[i] * 10 + (unsigned)(lab[i][k] - '0');
		if (v[i] > 255)
			return -1;
	}
	snprintf(out, size, "%u.%u.%u.%u", v[3], v[2], v[1], v[0]);
	return 0;
}

/* 32 reversed nibbles -> an IPv6 address text. */
static int reversed_ipv6(const char *lab[], const size_t len[], int n, char *out, size_t size)
{
	unsigned char a[16];
	char buf[INET6_ADDRSTRLEN];
	int i;

	if (n != 32)
		return -1;
	memset(a, 0, sizeof(a));
	for (i = 0; i < 32; i++) {
		int c = tolower((unsigned char)lab[i][0]), v;

		if (len[i] != 1 || !isxdigit(c))
			return -1;
		v = isdigit(c) ? c - '0' : c - 'a' + 10;
		/* label i is nibble 31 - i of the address */
		a[(31 - i) / 2] |= (unsigned char)((31 - i) % 2 == 0 ? v << 4 : v);
	}
	if (inet_ntop(AF_INET6, a, buf, sizeof(buf)) == NULL)
		return -1;
	snprintf(out, size, "%s", buf);
	return 0;
}

static void classify(const char *prefix, struct rep_dnszone_query *q)
{
	const char *lab[33];
	size_t len[33];
	char addr[INET6_ADDRSTRLEN + 8];
	int n = split_labels(prefix, lab, len, 33), i, numeric = 1;
	struct err e;

	q->kind = REP_DZ_MALFORMED;
	if (n < 0)
		return; /* more labels than an address, and a domain with 33 labels is no sender */
	if (reversed_ipv4(lab, len, n, addr, sizeof(addr)) == 0 ||
	    reversed_ipv6(lab, len, n, addr, sizeof(addr)) == 0) {
		/* RFC 5782 §5 test entries (mapped addresses compare as IPv4). */
		if (strcmp(addr, "127.0.0.2") == 0 || strcasecmp(addr, "::ffff:127.0.0.2") == 0) {
			q->kind = REP_DZ_TEST_LISTED;
			return;
		}
		if (strcmp(addr, "127.0.0.1") == 0 || strcasecmp(addr, "::ffff:127.0.0.1") == 0) {
			q->kind = REP_DZ_TEST_UNLISTED;
			return;
		}
		if (rep_subject_make(REP_IP, addr, &q->subject, &e) == 0)
			q->kind = REP_DZ_SUBJECT;
		return;
	}
	if (strcmp(prefix, "test") == 0) {
		q->kind = REP_DZ_TEST_LISTED;
		return;
	}
	if (strcmp(prefix, "invalid") == 0) {
		q->kind = REP_DZ_TEST_UNLISTED;
		return;
	}
	for (i = 0; i < n; i++)
		numeric = numeric && all_digits(lab[i], len[i]);
	if (numeric)
		return; /* an address with the wrong number of labels */
	if (rep_subject_make(REP_DOMAIN, prefix, &q->subject, &e) == 0)
		q->kind = REP_DZ_SUBJECT;
}

void rep_dnszone_parse(const uint8_t *wire, size_t len, const char *zone,
                       struct rep_dnszone_query *q)
{
	ldns_pkt *pkt = NULL;
	ldns_rr *question;
	char *name = NULL;
	size_t nlen, zlen = strlen(zone), i;

	memset(q, 0, sizeof(*q));
	q->kind = REP_DZ_DROP;
	if (len < LDNS_HEADER_SIZE || (wire[2] & 0x80)) /* too short, or a response */
		return;
	q->id = (uint16_t)(wire[0] << 8 | wire[1]);
	q->rd = (wire[2] & 0x01) != 0;
	q->kind = REP_DZ_ERROR;
	if (((wire[2] >> 3) & 0x0f) != LDNS_PACKET_QUERY) {
		q->rcode = LDNS_RCODE_NOTIMPL;
		return;
	}
	q->rcode = LDNS_RCODE_FORMERR;
	if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK)
		return;
	q->edns = ldns_pkt_edns(pkt) ? 1 : 0;
	if (ldns_pkt_qdcount(pkt) != 1 || ldns_rr_list_rr_count(ldns_pkt_question(pkt)) != 1)
		goto out;
	question = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
	q->qtype = (uint16_t)ldns_rr_get_type(question);
	name = ldns_rdf2str(ldns_rr_owner(question));
	if (name == NULL)
		goto out;
	nlen = strlen(name);
	if (nlen > 0 && name[nlen - 1] == '.')
		name[--nlen] = '\0';
	if (nlen >= sizeof(q->qname))
		goto out;
	for (i = 0; i < nlen; i++)
		q->qname[i] = (char)tolower((unsigned char)name[i]);
	q->qname[nlen] = '\0';
	q->rcode = LDNS_RCODE_REFUSED;
	if (ldns_rr_get_class(question) != LDNS_RR_CLASS_IN)
		goto out;
	if (strcmp(q->qname, zone) == 0) {
		q->kind = REP_DZ_APEX;
	} else if (nlen > zlen + 1 && q->qname[nlen - zlen - 1] == '.' &&
	           strcmp(q->qname + nlen - zlen, zone) == 0) {
		char prefix[DNS_NAME_MAX];

		memcpy(prefix, q->qname, nlen - zlen - 1);
		prefix[nlen - zlen - 1] = '\0';
		classify(prefix, q);
	}
	if (q->kind != REP_DZ_ERROR)
		q->rcode = LDNS_RCODE_NOERROR;
out:
	free(name);
	ldns_pkt_free(pkt);
}

/* ------------------------------------------------------------------ answers */

uint32_t rep_dnszone_code(const struct rep_dnszone_verdict *v)
{
	if (v->rate_limited)
		return REP_DNSZONE_E_RATE;
	if (v->error)
		return REP_DNSZONE_E_TEMP;
	if (v->verdict != REP_BLOCK)
		return 0;
	if (v->categories & (1u << REP_MALWARE))
		return REP_DNSZONE_MALWARE;
	if (v->categories & (1u << REP_PHISHING))
		return REP_DNSZONE_PHISHING;
	return REP_DNSZONE_LISTED;
}

static ldns_rr *rr_new(const char *owner, ldns_rr_type type, uint32_t ttl)
{
	ldns_rr *rr = ldns_rr_new();
	ldns_rdf *o = ldns_dname_new_frm_str(owner[0] ? owner : ".");

	if (rr == NULL || o == NULL) {
		ldns_rr_free(rr);
		ldns_rdf_deep_free(o);
		return NULL;
	}
	ldns_rr_set_owner(rr, o);
	ldns_rr_set_type(rr, type);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	ldns_rr_set_ttl(rr, ttl);
	return rr;
}

static int push_a(ldns_pkt *p, const char *owner, uint32_t addr, uint32_t ttl)
{
	ldns_rr *rr = rr_new(owner, LDNS_RR_TYPE_A, ttl);
	uint32_t net = htonl(addr);
	ldns_rdf *rd;

	if (rr == NULL)
		return -1;
	rd = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, &net);
	if (rd == NULL || !ldns_rr_push_rdf(rr, rd)) {
		ldns_rdf_deep_free(rd);
		ldns_rr_free(rr);
		return -1;
	}
	return ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr) ? 0 : -1;
}

static int push_txt(ldns_pkt *p, const char *owner, const char *text, uint32_t ttl)
{
	ldns_rr *rr = rr_new(owner, LDNS_RR_TYPE_TXT, ttl);
	uint8_t buf[256];
	size_t n = strlen(text);
	ldns_rdf *rd;

	if (rr == NULL)
		return -1;
	if (n > 255)
		n = 255;
	buf[0] = (uint8_t)n;      /* a character-string: length octet, no NUL */
	memcpy(buf + 1, text, n); /* NOLINT(bugprone-not-null-terminated-result) */
	rd = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, n + 1, buf);
	if (rd == NULL || !ldns_rr_push_rdf(rr, rd)) {
		ldns_rdf_deep_free(rd);
		ldns_rr_free(rr);
		return -1;
	}
	return ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr) ? 0 : -1;
}

static int push_soa(ldns_pkt *p, ldns_pkt_section sec, const char *zone, uint32_t ttl,
                    uint32_t serial)
{
	/* Built from parts, not parsed from text: every negative answer carries one. */
	static const uint32_t timers[] = {3600, 600, 86400};
	char rname[DNS_NAME_MAX + 16];
	ldns_rr *rr = rr_new(zone, LDNS_RR_TYPE_SOA, ttl);
	ldns_rdf *rd[7];
	size_t i;

	if (rr == NULL)
		return -1;
	snprintf(rname, sizeof(rname), "hostmaster.%s", zone);
	rd[0] = ldns_dname_new_frm_str(zone);
	rd[1] = ldns_dname_new_frm_str(rname);
	rd[2] = ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, serial);
	for (i = 0; i < 3; i++)
		rd[3 + i] = ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, timers[i]);
	rd[6] = ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, ttl);
	for (i = 0; i < 7; i++)
		if (rd[i] == NULL || !ldns_rr_push_rdf(rr, rd[i])) {
			for (; i < 7; i++)
				ldns_rdf_deep_free(rd[i]);
			ldns_rr_free(rr);
			return -1;
		}
	return ldns_pkt_push_rr(p, sec, rr) ? 0 : -1;
}

/* A name with an A code and a TXT text: A, TXT or ANY answer them, other types NODATA. */
static int push_code(ldns_pkt *p, const struct rep_dnszone_query *q, uint32_t code,
                     const char *text, uint32_t ttl)
{
	if ((q->qtype == LDNS_RR_TYPE_A || q->qtype == LDNS_RR_TYPE_ANY) &&
	    push_a(p, q->qname, code, ttl) < 0)
		return -1;
	if ((q->qtype == LDNS_RR_TYPE_TXT || q->qtype == LDNS_RR_TYPE_ANY) &&
	    push_txt(p, q->qname, text, ttl) < 0)
		return -1;
	return 0;
}

static void verdict_text(const struct rep_dnszone_verdict *v, uint32_t code, char *out, size_t size)
{
	if (code == REP_DNSZONE_E_RATE)
		snprintf(out, size, "error: query rate exceeded; not a listing");
	else if (code == REP_DNSZONE_E_TEMP)
		snprintf(out, size, "error: the reputation store cannot answer now; not a listing");
	else
		snprintf(out, size, "block: %s", v->reason[0] ? v->reason : "listed");
}

static int fill(ldns_pkt *p, const struct rep_dnszone_query *q, const char *zone,
                const struct rep_dnszone_verdict *v, uint32_t ttl, uint32_t serial)
{
	char text[300];
	uint32_t code;

	switch (q->kind) {
	case REP_DZ_APEX:
		if (q->qtype == LDNS_RR_TYPE_SOA || q->qtype == LDNS_RR_TYPE_ANY)
			return push_soa(p, LDNS_SECTION_ANSWER, zone, ttl, serial);
		return push_soa(p, LDNS_SECTION_AUTHORITY, zone, ttl, serial);
	case REP_DZ_TEST_LISTED:
		return push_code(p, q, REP_DNSZONE_LISTED, "RFC 5782 test entry, always listed",
		                 ttl);
	case REP_DZ_MALFORMED:
		return push_code(p, q, REP_DNSZONE_E_NAME,
		                 "error: not a reversed IPv4/IPv6 address nor a domain; not a "
		                 "listing",
		                 REP_DNSZONE_ERROR_TTL);
	case REP_DZ_SUBJECT:
		code = v ? rep_dnszone_code(v) : 0;
		if (code != 0) {
			verdict_text(v, code, text, sizeof(text));
			return push_code(p, q, code, text,
			                 code >= REP_DNSZONE_E_NAME ? REP_DNSZONE_ERROR_TTL : ttl);
		}
		/* not listed */
		ldns_pkt_set_rcode(p, LDNS_RCODE_NXDOMAIN);
		return push_soa(p, LDNS_SECTION_AUTHORITY, zone, ttl, serial);
	case REP_DZ_TEST_UNLISTED:
		ldns_pkt_set_rcode(p, LDNS_RCODE_NXDOMAIN);
		return push_soa(p, LDNS_SECTION_AUTHORITY, zone, ttl, serial);
	default:
		return 0;
	}
}

uint8_t *rep_dnszone_answer(const struct rep_dnszone_query *q, const char *zone,
                            const struct rep_dnszone_verdict *v, uint32_t ttl, uint32_t serial,
                            size_t *len)
{
	ldns_pkt *p;
	uint8_t *wire = NULL;

	*len = 0;
	if (q->kind == REP_DZ_DROP)
		return NULL;
	p = ldns_pkt_new();
	if (p == NULL)
		return NULL;
	ldns_pkt_set_id(p, q->id);
	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_rd(p, q->rd);
	ldns_pkt_set_opcode(p, LDNS_PACKET_QUERY);
	ldns_pkt_set_rcode(p, (uint8_t)q->rcode);
	if (q->qname[0] != '\0') {
		ldns_rr *qr = rr_new(q->qname, (ldns_rr_type)q->qtype, 0);

		if (qr == NULL)
			goto out;
		ldns_rr_set_question(qr, true);
		ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, qr);
	}
	if (q->kind != REP_DZ_ERROR) {
		ldns_pkt_set_aa(p, true);
		if (fill(p, q, zone, v, ttl, serial) < 0)
			goto out;
	}
	if (q->edns)
		ldns_pkt_set_edns_udp_size(p, 1232);
	if (ldns_pkt2wire(&wire, p, len) != LDNS_STATUS_OK) {
		wire = NULL;
		*len = 0;
	}
out:
	ldns_pkt_free(p);
	return wire;
}
