/*
 * cache.h - answers to public lookups, kept in memory until the data changes.
 *
 * Every write to a domain sends NOTIFY anchor_change inside its transaction;
 * each key-server node LISTENs on its own connection to the primary (db_conninfo: a
 * replica never delivers notifications) and bumps a generation
 * counter when a notification arrives, which retires every cached answer at
 * once.  Writes are rare and lookups many, so the coarse invalidation costs
 * little.  While the listening connection is down nothing is served from or
 * stored in the cache: a node that might miss a change must not answer from
 * memory.
 *
 * Stale if error (RFC 5861): when a public lookup fails with a server error (the
 * database cannot be reached), the answer kept for the same request may be served
 * instead, with Age, Warning 110 and Cache-Control: stale-if-error, if no change was
 * notified since it was computed, if it is at most max-age + stale_if_error seconds old,
 * and if the trouble began at most stale_if_error seconds ago (the loss of the change
 * listener, or the first failed lookup while it still looked connected).  The last
 * bound is what limits how long a change this node was never told about (a revocation
 * committed just before the outage) can stay hidden.  Losing the listener therefore no
 * longer retires the kept answers; reconnecting does.
 *
 * The answers are held under a byte budget (core/ttlcache): each is charged its body
 * and bookkeeping, and the oldest go first when it is full.
 */
#ifndef KS_CACHE_H
#define KS_CACHE_H

#include "http/http.h"
#include "core/db_rw.h"
#include "core/err.h"

struct ks_cache;

/* max_bytes: the budget of the kept answers; stale_if_error: seconds (0: never stale). */
struct ks_cache *ks_cache_new(size_t max_bytes, long long stale_if_error);
void ks_cache_free(struct ks_cache *c); /* stops the listener; accepts NULL */

/* Start the change listener on its own connection to conninfo, which must reach the
 * primary: NOTIFY is not carried to replicas.  Each change notified (and each reconnect)
 * also raises rw's floor to the primary's position, so that an answer computed after the
 * change, on a replica, includes it (core/db_rw.h); otherwise a lagging replica could
 * hand this node the old answer to keep for max-age. */
int ks_cache_listen(struct ks_cache *c, const char *conninfo, struct db_rw *rw, struct err *e);

/* Retire every cached answer (called after a local write commits). */
void ks_cache_invalidate(struct ks_cache *c);

/* Answer req from the cache; returns 1 when served.  Otherwise *gen receives the
 * generation to pass to ks_cache_store once the handler has answered. */
int ks_cache_serve(struct ks_cache *c, const struct http_request *req, struct http_response *resp,
                   unsigned long long *gen);

/* Add ETag and Cache-Control to a fresh 200 answer, turn it into 304 when the client
 * already has it, and keep it for later requests (at most max_age seconds) if the
 * generation is still current. */
void ks_cache_store(struct ks_cache *c, const struct http_request *req, struct http_response *resp,
                    unsigned long long gen, long long max_age);

/* After a cacheable GET failed with a server error: replace resp by the kept answer to
 * the same request when the stale-if-error rules above allow; returns 1 when served. */
int ks_cache_serve_stale(struct ks_cache *c, const struct http_request *req,
                         struct http_response *resp);

/* For /metrics: bytes and answers held, the budget, and stale answers served. */
struct ks_cache_stats {
	size_t bytes, entries, max_bytes;
	unsigned long long stale_served;
};
void ks_cache_stats(struct ks_cache *c, struct ks_cache_stats *out);

#endif
