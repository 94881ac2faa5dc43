/*
 * resolve.h - resolving an address to delivery targets (PROTOCOL.md §6.4).
 *
 * Follows aliases across domains, each hop verified against its own domain's
 * anchor (discover.h), with loop detection and a hop limit; orders the final
 * servers by RFC 2782 priority and weight; falls back to MX for legacy
 * domains.  Verified route answers are cached until their TTL, so a warm
 * resolution makes no network round trip; an answer that names a direct endpoint is
 * never kept (each delivery asks again, so a revoked key or a removed endpoint stops
 * it at once).  A resolve_ctx is thread-safe.
 */
#ifndef ANCHOR_RESOLVE_H
#define ANCHOR_RESOLVE_H

#include <stdint.h>
#include <time.h>

#include "dns/discover.h"
#include "core/err.h"

#define RESOLVE_MAX_HOPS 8
#define RESOLVE_MAX_TARGETS 32
#define RESOLVE_ADDR_MAX 320

enum resolve_hop_kind { RESOLVE_HOP_ALIAS = 0, RESOLVE_HOP_SERVERS, RESOLVE_HOP_LEGACY };

struct resolve_hop {
	char address[RESOLVE_ADDR_MAX]; /* the address resolved at this hop */
	char domain[DNS_NAME_MAX];
	enum resolve_hop_kind kind;
	char alias[RESOLVE_ADDR_MAX]; /* RESOLVE_HOP_ALIAS: where it points */
	char scope[8];                /* "address" or "domain" */
	int ttl;
	char expires[32];
	enum dns_sec dnssec;
	int from_cache;
};

struct resolve_target {
	char host[DNS_NAME_MAX];
	uint16_t port;
	uint16_t priority;
	uint16_t weight;
	char pin[CRYPTO_PIN_MAX]; /* "" for a legacy MX target */
};

/* A user's own daemon, published in the final address's route answer (PROTOCOL.md
 * §6.5): tried first while it has not expired, TLS with the daemon's key pinned. */
struct resolve_direct {
	char host[DNS_NAME_MAX]; /* a name or an IP literal */
	uint16_t port;
	char pin[CRYPTO_PIN_MAX];
	time_t expires; /* Unix time */
};

struct resolve_result {
	int nhops;
	struct resolve_hop hops[RESOLVE_MAX_HOPS + 1];
	int ntargets; /* in the order to try them */
	struct resolve_target targets[RESOLVE_MAX_TARGETS];
	char final_address[RESOLVE_ADDR_MAX];
	int legacy;               /* the walk ended at a legacy domain: MX targets, no pins */
	unsigned network_fetches; /* route answers fetched (not from cache) */
	int has_direct;           /* the final answer names a direct endpoint in force */
	struct resolve_direct direct;
};

struct resolve_ctx;

/* Uses (does not own) the discovery context. */
struct resolve_ctx *resolve_new(struct discover_ctx *dctx, struct err *e);
void resolve_free(struct resolve_ctx *ctx); /* accepts NULL */
/* The discovery context it uses (for callers that need its DNS resolver). */
struct discover_ctx *resolve_discover(struct resolve_ctx *ctx);
void resolve_cache_flush(struct resolve_ctx *ctx);

/*
 * Resolve address.  On failure *e names the reason: route_loop, too_many_hops,
 * no_route, route_unverified, route_expired, route_mismatch, bad_name, or a
 * discovery error; out->hops still shows the walk up to the failure.
 */
int resolve_address(struct resolve_ctx *ctx, const char *address, struct resolve_result *out,
                    struct err *e);

/*
 * Check one signed route answer (the JWS text) for name against pins, as of
 * time now.  On success fills *payload (caller json_decref's).  Exposed for
 * tests and for callers that fetched the answer themselves.
 */
int resolve_check_answer(const char *jws, size_t len, const char *name,
                         const char pins[][CRYPTO_PIN_MAX], int npins, time_t now, json_t **payload,
                         struct err *e);

/*
 * GET the signed route answer of name (an address, or a domain for its default route)
 * from the discovered domain's key servers, without checking it; rep->body holds the
 * JWS text (caller clears rep).  Errors: no_route, no_keyserver, fetch_* (https_get).
 */
int resolve_fetch_answer(struct resolve_ctx *ctx, const struct discover_result *d, const char *name,
                         struct https_reply *rep, struct err *e);

json_t *resolve_result_json(const struct resolve_result *r);

#endif
