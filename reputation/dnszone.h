/*
 * dnszone.h - the reputation verdicts as an RFC 5782 DNS zone (DNSxL), served
 * by anchor-reputation itself over UDP and TCP (dnszone.c).
 *
 * Names under the zone apex Z (dns_zone):
 *   d.c.b.a.Z              IPv4 a.b.c.d            subject ip:a.b.c.d
 *   <32 nibbles>.Z         IPv6, reversed nibbles   subject ip:<v6>
 *   <domain>.Z             anything else            subject domain:<domain>
 * Answers (A; TXT gives the reason; ANY both; other types NODATA when listed):
 *   127.0.0.2   block                                    \
 *   127.0.0.3   block, phishing among the evidence        > the listing range
 *   127.0.0.4   block, malware among the evidence        /  (127.0.0.2-127.0.0.255)
 *   NXDOMAIN    not listed (trusted, known, unknown)
 * Error signals, outside the listing range so that a client that tests for
 * 127.0.0.0/24 never mistakes them for a listing (and never defers mail):
 *   127.255.255.252  the name is not a valid address or domain
 *   127.255.255.254  the service cannot answer now (store down); short TTL
 *   127.255.255.255  the client exceeded its query rate
 *   REFUSED          a name outside the zone, or a class other than IN
 * RFC 5782 §5 test entries: 2.0.0.127.Z, ::FFFF:7F00:2 and TEST.Z are
 * listed (127.0.0.2); 1.0.0.127.Z, ::FFFF:7F00:1 and INVALID.Z are not.
 */
#ifndef REP_DNSZONE_H
#define REP_DNSZONE_H

#include <stddef.h>
#include <stdint.h>

#include "rep.h"

#define REP_DNSZONE_LISTED 0x7f000002u   /* 127.0.0.2 */
#define REP_DNSZONE_PHISHING 0x7f000003u /* 127.0.0.3 */
#define REP_DNSZONE_MALWARE 0x7f000004u  /* 127.0.0.4 */
#define REP_DNSZONE_E_NAME 0x7ffffffcu   /* 127.255.255.252 */
#define REP_DNSZONE_E_TEMP 0x7ffffffeu   /* 127.255.255.254 */
#define REP_DNSZONE_E_RATE 0x7fffffffu   /* 127.255.255.255 */
#define REP_DNSZONE_ERROR_TTL 10         /* seconds, for the error signals */

/* ------------------------------------------------------------------ pure parts */

enum rep_dnszone_qkind {
	REP_DZ_DROP = 0,      /* not a query we answer at all (a response, garbage) */
	REP_DZ_ERROR,         /* answered with rcode only (FORMERR, NOTIMP, REFUSED) */
	REP_DZ_APEX,          /* the zone apex */
	REP_DZ_SUBJECT,       /* a subject to look up */
	REP_DZ_TEST_LISTED,   /* an RFC 5782 test entry that must be listed */
	REP_DZ_TEST_UNLISTED, /* one that must not be */
	REP_DZ_MALFORMED,     /* under the zone, but neither address nor domain */
};

struct rep_dnszone_query {
	enum rep_dnszone_qkind kind;
	int rcode; /* for REP_DZ_ERROR */
	uint16_t id;
	int rd, edns; /* copied into the answer */
	uint16_t qtype;
	char qname[DNS_NAME_MAX];   /* lowercase, no trailing dot */
	struct rep_subject subject; /* REP_DZ_SUBJECT */
};

/* Read a query in wire form; never fails (kind says what to do). zone: apex, lowercase. */
void rep_dnszone_parse(const uint8_t *wire, size_t len, const char *zone,
                       struct rep_dnszone_query *q);

/* What the store said about a subject. */
struct rep_dnszone_verdict {
	int error;        /* the store could not answer */
	int rate_limited; /* the client is over its rate */
	enum rep_verdict verdict;
	unsigned categories; /* bits 1 << enum rep_category */
	char reason[240];
};

/*
 * The answer to q, in wire form (malloc'd, *len set), given the verdict (NULL
 * for kinds that need none).  ttl for listings and negative answers; serial
 * for the SOA.  NULL for REP_DZ_DROP or out of memory.
 */
uint8_t *rep_dnszone_answer(const struct rep_dnszone_query *q, const char *zone,
                            const struct rep_dnszone_verdict *v, uint32_t ttl, uint32_t serial,
                            size_t *len);

/* The listing code for a verdict: 0 when not listed. */
uint32_t rep_dnszone_code(const struct rep_dnszone_verdict *v);

/* ------------------------------------------------------------------ the server */

typedef int (*rep_dnszone_lookup_fn)(void *ctx, const struct rep_subject *s,
                                     struct rep_dnszone_verdict *v, struct err *e);

struct rep_dnszone_config {
	const char *listen; /* "127.0.0.1:5353", "[::1]:53"; port 0 picks one */
	const char *zone;   /* apex */
	uint32_t ttl;
	int threads;        /* UDP workers, 1.. */
	double rate, burst; /* queries per second per client address; rate 0: no limit */
	int cache_seconds;  /* verdicts kept this long in memory; 0: none */
	rep_dnszone_lookup_fn lookup;
	void *ctx;
};

struct rep_dnszone *rep_dnszone_start_config(const struct rep_dnszone_config *c, struct err *e);
int rep_dnszone_port(const struct rep_dnszone *z);
unsigned long long rep_dnszone_queries(const struct rep_dnszone *z);

/* rep.h: rep_dnszone_start(rep, e) serves rep->cfg.dns_zone on rep->cfg.dns_listen with
 * rep->cfg.dns_ttl, looking verdicts up with rep_score_get; rep_dnszone_stop(z). */

#endif
