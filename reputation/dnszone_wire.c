/*
 * dnszone_wire.c - the pure half of the DNS zone: a query in wire form ->
 * what it asks (rep_dnszone_parse), and a verdict -> the answer in wire form
 * (rep_dnszone_write), both straight on the wire octets: no ldns packet and no
 * allocation per query.  No sockets, no store: the fuzzer's entry point.
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

/* The question's name, uncompressed, copied to q->qwire and written out as ldns
 * would print it (lowercase, no trailing dot, special octets escaped) to q->qname;
 * the offset just past it, or 0 when it is malformed. */
static size_t read_qname(const uint8_t *w, size_t len, size_t pos, struct rep_dnszone_query *q)
{
	size_t out = 0, start = pos;

	for (;;) {
		size_t l;

		if (pos >= len || (l = w[pos]) > 63) /* a pointer or a reserved label type */
			return 0;
		if (l == 0)
			break;
		if (pos + 1 + l >= len || pos + 1 + l - start >= DNS_WIRE_NAME_MAX)
			return 0;
		for (size_t i = 1; i <= l; i++) {
			unsigned c = w[pos + i];

			if (out + 5 >= sizeof(q->qname))
				return 0;
			if (c == '.' || c == ';' || c == '(' || c == ')' || c == '\\') {
				q->qname[out++] = '\\';
				q->qname[out++] = (char)c;
			} else if (c <= ' ' || c >= 0x7f) {
				out += (size_t)snprintf(q->qname + out, 5, "\\%03u", c);
			} else {
				q->qname[out++] = (char)tolower((int)c);
			}
		}
		q->qname[out++] = '.';
		pos += 1 + l;
	}
	if (out > 0)
		out--; /* the trailing dot */
	q->qname[out] = '\0';
	q->qwlen = pos + 1 - start;
	memcpy(q->qwire, w + start, q->qwlen);
	return pos + 1;
}

/* Past one name that may end in a compression pointer; 0 when it runs off the end. */
static size_t skip_name(const uint8_t *w, size_t len, size_t pos)
{
	while (pos < len) {
		if ((w[pos] & 0xc0) == 0xc0)
			return pos + 2 <= len ? pos + 2 : 0;
		if (w[pos] > 63)
			return 0;
		if (w[pos] == 0)
			return pos + 1;
		pos += 1 + (size_t)w[pos];
	}
	return 0;
}

/* Walk the records after the question: -1 when one is cut short, 0 without an OPT
 * (EDNS) in the additional section, else the UDP payload size it advertises (at least 1). */
static int scan_records(const uint8_t *w, size_t len, size_t pos)
{
	unsigned n = (unsigned)(w[6] << 8 | w[7]) + (unsigned)(w[8] << 8 | w[9]);
	unsigned total = n + (unsigned)(w[10] << 8 | w[11]);
	int edns = 0;

	for (unsigned i = 0; i < total; i++) {
		size_t rdlen;

		pos = skip_name(w, len, pos);
		if (pos == 0 || pos + 10 > len)
			return -1;
		rdlen = (size_t)(w[pos + 8] << 8 | w[pos + 9]);
		if (i >= n && (w[pos] << 8 | w[pos + 1]) == LDNS_RR_TYPE_OPT &&
		    (w[pos + 2] | w[pos + 3]) != 0)
			edns = w[pos + 2] << 8 | w[pos + 3];
		pos += 10 + rdlen;
		if (pos > len)
			return -1;
	}
	return edns;
}

/* Where the zone's labels start in q->qwire (a label boundary), or -1. */
static int zone_offset(struct rep_dnszone_query *q, size_t zlen)
{
	size_t want = q->qwlen - (zlen ? zlen + 2 : 1), pos = 0;

	while (pos < want)
		pos += 1 + (size_t)q->qwire[pos];
	if (pos != want)
		return -1;
	q->zone_off = want;
	return 0;
}

/*
 * Read straight from the wire: the zone answers a few names very often, and a parse
 * into ldns's packet (a dozen allocations) cost more than the rest of an answer.
 */
void rep_dnszone_parse(const uint8_t *wire, size_t len, const char *zone,
                       struct rep_dnszone_query *q)
{
	size_t nlen, zlen = strlen(zone), pos;
	int edns;

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
	if ((wire[4] << 8 | wire[5]) != 1 ||
	    (pos = read_qname(wire, len, LDNS_HEADER_SIZE, q)) == 0 || pos + 4 > len ||
	    (edns = scan_records(wire, len, pos + 4)) < 0) {
		q->qname[0] = '\0';
		q->qwlen = 0;
		return;
	}
	q->edns = edns > 0;
	q->udp_max = edns <= 512                  ? 512
	             : edns > REP_DNSZONE_UDP_MAX ? REP_DNSZONE_UDP_MAX
	                                          : (size_t)edns;
	q->qtype = (uint16_t)(wire[pos] << 8 | wire[pos + 1]);
	q->qclass = (uint16_t)(wire[pos + 2] << 8 | wire[pos + 3]);
	nlen = strlen(q->qname);
	q->rcode = LDNS_RCODE_REFUSED;
	if (q->qclass != LDNS_RR_CLASS_IN)
		return;
	if (strcmp(q->qname, zone) == 0) {
		q->kind = REP_DZ_APEX;
	} else if (nlen > zlen + 1 && q->qname[nlen - zlen - 1] == '.' &&
	           strcmp(q->qname + nlen - zlen, zone) == 0) {
		char prefix[DNS_NAME_MAX];

		memcpy(prefix, q->qname, nlen - zlen - 1);
		prefix[nlen - zlen - 1] = '\0';
		classify(prefix, q);
	}
	if (q->kind == REP_DZ_ERROR)
		return;
	/* The zone's labels end the question's name and answers point at them; a name that
	 * only reads so in text (an escaped dot before the apex) is outside the zone. */
	if (zone_offset(q, zlen) < 0) {
		memset(&q->subject, 0, sizeof(q->subject));
		q->kind = REP_DZ_ERROR;
		return;
	}
	q->rcode = LDNS_RCODE_NOERROR;
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

/* An answer being written: out of room sticks (len stays, ok 0). */
struct wbuf {
	uint8_t *p;
	size_t len, size;
	int ok;
	unsigned counts[3]; /* answer, authority, additional */
};

static void put(struct wbuf *b, const void *data, size_t n)
{
	if (!b->ok || b->size - b->len < n) {
		b->ok = 0;
		return;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void put16(struct wbuf *b, unsigned v)
{
	uint8_t o[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	put(b, o, 2);
}

static void put32(struct wbuf *b, uint32_t v)
{
	uint8_t o[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	put(b, o, 4);
}

#define QNAME_PTR (0xc000u | LDNS_HEADER_SIZE) /* the question's name, just after the header */

/* An RR's owner (a compression pointer), type, class, TTL and rdata length. */
static void rr_head(struct wbuf *b, int sec, unsigned owner_ptr, unsigned type, uint32_t ttl,
                    size_t rdlen)
{
	put16(b, owner_ptr);
	put16(b, type);
	put16(b, LDNS_RR_CLASS_IN);
	put32(b, ttl);
	put16(b, (unsigned)rdlen);
	b->counts[sec]++;
}

static void push_a(struct wbuf *b, uint32_t addr, uint32_t ttl)
{
	rr_head(b, 0, QNAME_PTR, LDNS_RR_TYPE_A, ttl, 4);
	put32(b, addr);
}

static void push_txt(struct wbuf *b, const char *text, uint32_t ttl)
{
	size_t n = strlen(text);
	uint8_t l;

	if (n > 255)
		n = 255;
	l = (uint8_t)n; /* a character-string: length octet, no NUL */
	rr_head(b, 0, QNAME_PTR, LDNS_RR_TYPE_TXT, ttl, n + 1);
	put(b, &l, 1);
	put(b, text, n);
}

/* The zone's SOA; its owner and MNAME point at the apex in the question, RNAME is
 * hostmaster.<apex>. */
static void push_soa(struct wbuf *b, const struct rep_dnszone_query *q, int sec, uint32_t ttl,
                     uint32_t serial)
{
	static const uint8_t hostmaster[] = "\012hostmaster";
	unsigned apex = 0xc000u | (unsigned)(LDNS_HEADER_SIZE + q->zone_off);

	rr_head(b, sec, apex, LDNS_RR_TYPE_SOA, ttl, 2 + 11 + 2 + 5 * 4);
	put16(b, apex);
	put(b, hostmaster, 11);
	put16(b, apex);
	put32(b, serial);
	put32(b, 3600);  /* refresh */
	put32(b, 600);   /* retry */
	put32(b, 86400); /* expire */
	put32(b, ttl);   /* minimum: the negative TTL */
}

/* A name with an A code and a TXT text: A, TXT or ANY answer them, other types NODATA. */
static void push_code(struct wbuf *b, const struct rep_dnszone_query *q, uint32_t code,
                      const char *text, uint32_t ttl)
{
	if (q->qtype == LDNS_RR_TYPE_A || q->qtype == LDNS_RR_TYPE_ANY)
		push_a(b, code, ttl);
	if (q->qtype == LDNS_RR_TYPE_TXT || q->qtype == LDNS_RR_TYPE_ANY)
		push_txt(b, text, ttl);
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

/* The answer and authority sections; the rcode to send. */
static int fill(struct wbuf *b, const struct rep_dnszone_query *q,
                const struct rep_dnszone_verdict *v, uint32_t ttl, uint32_t serial)
{
	char text[300];
	uint32_t code;

	switch (q->kind) {
	case REP_DZ_APEX:
		push_soa(b, q, q->qtype == LDNS_RR_TYPE_SOA || q->qtype == LDNS_RR_TYPE_ANY ? 0 : 1,
		         ttl, serial);
		return LDNS_RCODE_NOERROR;
	case REP_DZ_TEST_LISTED:
		push_code(b, q, REP_DNSZONE_LISTED, "RFC 5782 test entry, always listed", ttl);
		return LDNS_RCODE_NOERROR;
	case REP_DZ_MALFORMED:
		push_code(b, q, REP_DNSZONE_E_NAME,
		          "error: not a reversed IPv4/IPv6 address nor a domain; not a listing",
		          REP_DNSZONE_ERROR_TTL);
		return LDNS_RCODE_NOERROR;
	case REP_DZ_SUBJECT:
		code = v ? rep_dnszone_code(v) : 0;
		if (code != 0) {
			verdict_text(v, code, text, sizeof(text));
			push_code(b, q, code, text,
			          code >= REP_DNSZONE_E_NAME ? REP_DNSZONE_ERROR_TTL : ttl);
			return LDNS_RCODE_NOERROR;
		}
		/* not listed */
		push_soa(b, q, 1, ttl, serial);
		return LDNS_RCODE_NXDOMAIN;
	case REP_DZ_TEST_UNLISTED:
		push_soa(b, q, 1, ttl, serial);
		return LDNS_RCODE_NXDOMAIN;
	default:
		return q->rcode;
	}
}

/* A query parsed by hand (udp_max 0) still gets the 512 octets every client takes. */
static size_t udp_limit(const struct rep_dnszone_query *q)
{
	return q->udp_max < 512 ? 512 : q->udp_max;
}

size_t rep_dnszone_write(const struct rep_dnszone_query *q, const struct rep_dnszone_verdict *v,
                         uint32_t ttl, uint32_t serial, uint8_t *out, size_t size)
{
	/* the OPT record: root owner, type 41, our UDP size 1232, no flags, no options */
	static const uint8_t opt[] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
	struct wbuf b = {out, LDNS_HEADER_SIZE, size, size >= LDNS_HEADER_SIZE, {0, 0, 0}};
	size_t qend;
	int rcode, tc = 0;

	if (q->kind == REP_DZ_DROP || !b.ok)
		return 0;
	if (q->qwlen > 0) {
		put(&b, q->qwire, q->qwlen);
		put16(&b, q->qtype);
		put16(&b, q->qclass);
	}
	qend = b.len;
	rcode = q->kind == REP_DZ_ERROR ? q->rcode : fill(&b, q, v, ttl, serial);
	if (q->udp && b.ok && b.len + (q->edns ? sizeof(opt) : 0) > udp_limit(q)) {
		b.len = qend; /* too long for a datagram: the question alone, TC set */
		memset(b.counts, 0, sizeof(b.counts));
		tc = 1;
	}
	if (q->edns) {
		put(&b, opt, sizeof(opt));
		b.counts[2]++;
	}
	if (!b.ok)
		return 0;
	out[0] = (uint8_t)(q->id >> 8);
	out[1] = (uint8_t)q->id;
	out[2] = (uint8_t)(0x80 | (q->kind != REP_DZ_ERROR ? 0x04 : 0) | (tc ? 0x02 : 0) |
	                   (q->rd ? 0x01 : 0));
	out[3] = (uint8_t)(rcode & 0x0f); /* RA 0: no recursion here */
	out[4] = 0;
	out[5] = q->qwlen > 0;
	for (int i = 0; i < 3; i++) {
		out[6 + 2 * i] = (uint8_t)(b.counts[i] >> 8);
		out[7 + 2 * i] = (uint8_t)b.counts[i];
	}
	return b.len;
}

uint8_t *rep_dnszone_answer(const struct rep_dnszone_query *q, const char *zone,
                            const struct rep_dnszone_verdict *v, uint32_t ttl, uint32_t serial,
                            size_t *len)
{
	uint8_t *out;

	(void)zone;
	*len = 0;
	if (q->kind == REP_DZ_DROP || (out = malloc(REP_DNSZONE_ANSWER_MAX)) == NULL)
		return NULL;
	*len = rep_dnszone_write(q, v, ttl, serial, out, REP_DNSZONE_ANSWER_MAX);
	if (*len == 0) {
		free(out);
		return NULL;
	}
	return out;
}
