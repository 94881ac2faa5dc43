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

#include "dnszone_wire.h"
#include "rep.h"

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
	size_t cache_bytes; /* their budget (each charged its name and bookkeeping); 0: 4 MiB */
	rep_dnszone_lookup_fn lookup;
	void *ctx;
};

struct rep_dnszone *rep_dnszone_start_config(const struct rep_dnszone_config *c, struct err *e);
int rep_dnszone_port(const struct rep_dnszone *z);
unsigned long long rep_dnszone_queries(const struct rep_dnszone *z);
/* For /metrics: the verdict cache's bytes, budget and entries (0 without one). */
void rep_dnszone_cache_stats(struct rep_dnszone *z, size_t *bytes, size_t *max_bytes,
                             size_t *entries);

/* rep.h: rep_dnszone_start(rep, e) serves rep->cfg.dns_zone on rep->cfg.dns_listen with
 * rep->cfg.dns_ttl, looking verdicts up with rep_score_get; rep_dnszone_stop(z). */

#endif
