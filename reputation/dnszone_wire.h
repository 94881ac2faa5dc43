/*
 * dnszone_wire.h - the pure half of the DNS zone (dnszone_wire.c): a query in
 * wire form -> what it asks, and a verdict -> the answer in wire form.  No
 * sockets, no store: the fuzzer and the unit tests drive it directly.  The
 * names and the codes it answers with are described in dnszone.h.
 */
#ifndef REP_DNSZONE_WIRE_H
#define REP_DNSZONE_WIRE_H

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

enum rep_dnszone_qkind {
	REP_DZ_DROP = 0,      /* not a query we answer at all (a response, garbage) */
	REP_DZ_ERROR,         /* answered with rcode only (FORMERR, NOTIMP, REFUSED) */
	REP_DZ_APEX,          /* the zone apex */
	REP_DZ_SUBJECT,       /* a subject to look up */
	REP_DZ_TEST_LISTED,   /* an RFC 5782 test entry that must be listed */
	REP_DZ_TEST_UNLISTED, /* one that must not be */
	REP_DZ_MALFORMED,     /* under the zone, but neither address nor domain */
};

#define DNS_WIRE_NAME_MAX 255 /* octets of a name in wire form, the root label included */

struct rep_dnszone_query {
	enum rep_dnszone_qkind kind;
	int rcode; /* for REP_DZ_ERROR */
	uint16_t id;
	int rd, edns;   /* copied into the answer */
	size_t udp_max; /* the most a UDP answer may hold: 512 without EDNS, else the client's
	                 * advertised size within 512..REP_DNSZONE_UDP_MAX (RFC 6891 6.2.5) */
	int udp;        /* set by the caller: the answer goes out over UDP and must fit udp_max */
	uint16_t qtype, qclass;
	size_t qwlen;                     /* the question's name in wire form (0: none), */
	uint8_t qwire[DNS_WIRE_NAME_MAX]; /* echoed as asked (case kept, RFC 0x20 clients) */
	size_t zone_off;                  /* where the apex's labels start in qwire */
	char qname[DNS_NAME_MAX];         /* lowercase, no trailing dot */
	struct rep_subject subject;       /* REP_DZ_SUBJECT */
};

/* Read a query in wire form; never fails (kind says what to do). zone: apex, lowercase,
 * no trailing dot. */
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
 * The answer to q written into out (size octets; 1024 always suffice), given the
 * verdict (NULL for kinds that need none).  ttl for listings and negative answers;
 * serial for the SOA.  Its length, or 0 for REP_DZ_DROP (stay silent) or when it does
 * not fit.  Names in the answer point back at the question's (compression).  Over UDP
 * (q->udp) an answer longer than q->udp_max goes out truncated (RFC 1035 4.2.1): TC set,
 * the question kept, no records but the OPT, so the client asks again over TCP.
 */
size_t rep_dnszone_write(const struct rep_dnszone_query *q, const struct rep_dnszone_verdict *v,
                         uint32_t ttl, uint32_t serial, uint8_t *out, size_t size);

#define REP_DNSZONE_ANSWER_MAX 1024
#define REP_DNSZONE_UDP_MAX 1232 /* our OPT's payload size; a larger advertised one is capped */

/* The same, malloc'd (*len set); NULL for REP_DZ_DROP or out of memory.  zone is the
 * apex q was parsed against (the answer takes it from the question). */
uint8_t *rep_dnszone_answer(const struct rep_dnszone_query *q, const char *zone,
                            const struct rep_dnszone_verdict *v, uint32_t ttl, uint32_t serial,
                            size_t *len);

/* The listing code for a verdict: 0 when not listed. */
uint32_t rep_dnszone_code(const struct rep_dnszone_verdict *v);

#endif
