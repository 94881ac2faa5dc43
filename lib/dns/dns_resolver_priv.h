/*
 * dns_resolver_priv.h - the resolver's state and what its two files share:
 * dns_resolve.c (setup, queries, CNAME chasing), dns_dnssec.c (validation
 * and the cache of validated keys) and dns_send.c (one query to the server).
 * Nothing outside them includes this.
 */
#ifndef ANCHOR_DNS_RESOLVER_PRIV_H
#define ANCHOR_DNS_RESOLVER_PRIV_H

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <ldns/ldns.h>

#include "core/err.h"
#include "dns/dns.h"

#define KEYCACHE_MAX 16
#define KEYCACHE_TTL_MAX 300
#define CHAIN_DEPTH_MAX 6
#define DNS_SEND_ATTEMPTS 3 /* UDP, UDP, TCP (dns_send_query) */
#define DNS_SEND_MIN_MS 50  /* an attempt waits at least this long */

struct keycache_entry {
	ldns_rdf *zone;
	ldns_rr_list *keys; /* validated DNSKEY RRset */
	time_t expires;
};

struct dns_resolver {
	int use_system; /* nameserver from /etc/resolv.conf */
	char addr[INET6_ADDRSTRLEN];
	uint16_t port;
	int timeout_ms;
	ldns_rr_list *anchors; /* DS / DNSKEY, NULL without a trust anchor */
	pthread_mutex_t lock;  /* keycache */
	struct keycache_entry cache[KEYCACHE_MAX];
	int ncache;
	atomic_uint queries;
	atomic_uint retries; /* attempts after the first (dns_send_query) */
};

/* Validate every RRset of the answer section (dns_dnssec.c). */
enum dns_sec dns_validate_answer(struct dns_resolver *r, const ldns_pkt *pkt, char *why,
                                 size_t wsize);
/* A negative answer under an anchor must come with signed NSEC/NSEC3 proof (dns_dnssec.c). */
enum dns_sec dns_validate_denial(struct dns_resolver *r, const ldns_pkt *pkt,
                                 const struct dns_answer *a, char *why, size_t wsize);

#endif
