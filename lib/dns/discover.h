/*
 * discover.h - find and verify another domain's key server from DNS alone
 * (PROTOCOL.md §8).  Used by anchorctl, the relay and the reputation service.
 *
 *   1. _anchor._tcp.<domain> SRV and _anchor.<domain> TXT, asked in parallel;
 *      DNSSEC-validated when a trust anchor is configured (bogus = failure)
 *   2. neither record: a legacy domain, reported with its MX records
 *   3. SRV targets ordered by RFC 2782 priority and weight; for each in turn,
 *      GET https://<target>:<port>/v1/domains/<domain>; a target that does not
 *      answer or serves objects that do not verify is skipped for the next
 *   4. the served root's SPKI pin must be one of the TXT pins, the issuer must
 *      chain to the root
 *   5. the verified result is cached in memory until the smallest TTL expires
 *
 * A discover_ctx is safe to share between threads.
 */
#ifndef ANCHOR_DISCOVER_H
#define ANCHOR_DISCOVER_H

#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "dns/dns.h"
#include "dns/discover_verify.h"
#include "http/https_client.h"
#include "core/err.h"

#define DISCOVER_MAX_TARGETS 16
#define DISCOVER_MAX_MX 16
#define DISCOVER_TTL_MAX 3600 /* cache at most an hour, whatever DNS says */
#define DISCOVER_TTL_MIN 5

/* Environment: ANCHOR_RESOLVER, ANCHOR_TRUST_ANCHOR, ANCHOR_CACERT, ANCHOR_DNS_TIMEOUT_MS. */
struct discover_config {
	const char *resolver;          /* "ADDR[:PORT]"; NULL: /etc/resolv.conf */
	const char *trust_anchor_file; /* DS/DNSKEY: the root's and/or zones'; NULL: unvalidated */
	const char *cacert;            /* CA file for the key server's TLS; NULL: system store */
	int timeout_ms;                /* per DNS query and per HTTPS connect (default 2000) */
	int https_timeout_ms;          /* whole HTTPS exchange (default 10000) */
	int no_cache;                  /* 1: always go to the network */
};

/* Fill unset fields from the environment (pointers into the environment). */
void discover_config_from_env(struct discover_config *c);

enum discover_status { DISCOVER_ANCHORED = 0, DISCOVER_LEGACY, DISCOVER_ERROR };
const char *discover_status_name(enum discover_status s);

struct discover_mx {
	uint16_t preference;
	char host[DNS_NAME_MAX];
};

struct discover_result {
	char domain[DNS_NAME_MAX];
	char address[320]; /* when an address was asked for, else "" */
	enum discover_status status;
	enum dns_sec dnssec;
	char dnssec_why[200];
	enum dns_mode mode; /* from the TXT record: testing = verify and report, never reject */
	int npins;
	char pins[DNS_MAX_PINS][CRYPTO_PIN_MAX];
	char id[DNS_ID_MAX];
	int ntargets; /* in the order they are to be tried */
	struct dns_srv targets[DISCOVER_MAX_TARGETS];
	int used_target; /* index into targets of the server that answered, or -1 */
	int nmx;         /* legacy domains */
	struct discover_mx mx[DISCOVER_MAX_MX];
	/* The verified domain object (PROTOCOL.md §3.1) and its certificates. */
	json_t *object;
	X509 *root, *issuer;
	char root_pin[CRYPTO_PIN_MAX];
	/* What happened, one line per step, for `anchor-dns discover`. */
	int ntrace;
	char **trace;
	struct err err; /* status == DISCOVER_ERROR */
	int from_cache;
	uint32_t ttl;         /* seconds the result stays valid */
	unsigned dns_queries; /* round trips spent on this result */
	unsigned https_requests;
	double elapsed_ms;
};

struct discover_ctx;

struct discover_ctx *discover_new(const struct discover_config *c, struct err *e);
void discover_free(struct discover_ctx *ctx);
struct dns_resolver *discover_resolver(struct discover_ctx *ctx);
/*
 * The IPv4 address of a key server's SRV target, asked of the discovery
 * resolver: a test or private zone may name hosts the system resolver does
 * not know, and a client should connect where discovery itself looked.  ""
 * (no answer, or a bogus one) leaves the name to the system resolver.
 */
void discover_target_ip(struct discover_ctx *ctx, const char *target, char *ip, size_t size);
const struct discover_config *discover_config(const struct discover_ctx *ctx);

/*
 * GET path from d's key servers (discover_get.c): the one that answered
 * discovery first, then the others in order.  0 with *body (malloc'd,
 * NUL-terminated) from the first that answers 2xx; ERR_NOTFOUND when one
 * answers 404 (the server knows: no such key); else ERR_TEMP with the last
 * server's error ("no_keyserver" when d lists none).
 */
int discover_keyserver_get(struct discover_ctx *dctx, const struct discover_result *d,
                           const char *path, char **body, struct err *e);

/*
 * Discover a domain (or the domain of an address).  Always returns a result
 * in *out (caller frees with discover_result_free); returns 0 when the status
 * is anchored or legacy, -1 when it is error, with *e a copy of out->err.
 */
int discover_domain(struct discover_ctx *ctx, const char *domain_or_address,
                    struct discover_result **out, struct err *e);

void discover_result_free(struct discover_result *r);
json_t *discover_result_json(const struct discover_result *r);

/* Drop every cached result. */
void discover_cache_flush(struct discover_ctx *ctx);

#endif
