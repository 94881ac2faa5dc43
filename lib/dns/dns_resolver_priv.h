/*
 * dns_resolver_priv.h - the resolver's state and what its files share:
 * dns_resolve.c (setup, queries, CNAME chasing), dns_dnssec.c (the chain of
 * trust and the cache of validated keys), dns_verdict.c (secure, insecure or
 * bogus: signatures, denial proofs, insecure delegations) and dns_send.c (one
 * query to the server).
 * Nothing outside them includes this, but tests/fuzz/fuzz_dns_denial.c.
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
	ldns_rr_list *keys; /* validated DNSKEY RRset; NULL: zone is a proven insecure delegation */
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

/* The closest anchored zone at or above name, or NULL (dns_dnssec.c). */
const ldns_rdf *dns_anchor_zone(const struct dns_resolver *r, const ldns_rdf *name);
/* The DNSKEY RRset of zone, validated down the DS chain from its anchor (*keys: caller
 * frees); -1 with why set when the chain does not verify (dns_dnssec.c). */
int dns_trusted_keys(struct dns_resolver *r, const ldns_rdf *zone, int depth, ldns_rr_list **keys,
                     char *why, size_t wsize);
/* Verify set with sigs under the keys of their signer: 0 secure, -1 bogus (dns_dnssec.c). */
int dns_verify_rrset(struct dns_resolver *r, ldns_rr_list *set, ldns_rr_list *sigs, int depth,
                     char *why, size_t wsize);
/* RRs of section with this owner and type (clones), and the RRSIGs covering them. */
void dns_rrset_from(const ldns_rr_list *section, const ldns_rdf *owner, ldns_rr_type type,
                    ldns_rr_list *set, ldns_rr_list *sigs);
/* why = "<name>: " + the formatted text. */
void dns_set_why(char *why, size_t size, const ldns_rdf *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The key cache: 1 with *keys (a copy) for a validated zone, 2 for a zone proven to be an
 * insecure delegation (*keys NULL), 0 when neither is known (dns_dnssec.c). */
int dns_keycache_get(struct dns_resolver *r, const ldns_rdf *zone, ldns_rr_list **keys);
/* Remember zone's validated keys, or (keys NULL) that zone is an insecure delegation. */
void dns_keycache_put(struct dns_resolver *r, const ldns_rdf *zone, const ldns_rr_list *keys,
                      uint32_t ttl);

/*
 * The walk down from name's trust anchor, one label at a time, asking each
 * name's DS (dns_verdict.c): 1 when a signed proof shows an insecure
 * delegation at or above name (no DS: an NSEC/NSEC3 record with NS and
 * without DS, or an NSEC3 opt-out span covering it); why names it.  0 when
 * no such proof exists: the chain is signed down to name (so unsigned or
 * badly signed data there is bogus) or a step of the walk failed (why says).
 */
int dns_prove_insecure(struct dns_resolver *r, const ldns_rdf *name, char *why, size_t wsize);

/*
 * What the NSEC/NSEC3 records of pkt's authority section prove of its
 * question, signatures NOT checked (for the fuzz target): 0 the name/type is
 * denied, 1 an insecure delegation or opt-out span, -1 neither (dns_verdict.c).
 */
int dns_denial_check(const ldns_pkt *pkt, char *why, size_t wsize);

/* Validate every RRset of the answer section (dns_verdict.c). */
enum dns_sec dns_validate_answer(struct dns_resolver *r, const ldns_pkt *pkt, char *why,
                                 size_t wsize);
/* A negative answer under an anchor must come with signed NSEC/NSEC3 proof, unless it lies
 * below a proven insecure delegation (dns_verdict.c). */
enum dns_sec dns_validate_denial(struct dns_resolver *r, const ldns_pkt *pkt,
                                 const struct dns_answer *a, char *why, size_t wsize);

#endif
