/*
 * cache.h - answers to public lookups, kept in memory until the data changes.
 *
 * Every write to a domain sends NOTIFY anchor_change inside its transaction;
 * each key-server node LISTENs on its own connection and bumps a generation
 * counter when a notification arrives, which retires every cached answer at
 * once.  Writes are rare and lookups many, so the coarse invalidation costs
 * little.  While the listening connection is down nothing is served from or
 * stored in the cache: a node that might miss a change must not answer from
 * memory.
 */
#ifndef KS_CACHE_H
#define KS_CACHE_H

#include "http/http.h"
#include "core/err.h"

struct ks_cache;

struct ks_cache *ks_cache_new(size_t max_entries);
void ks_cache_free(struct ks_cache *c); /* stops the listener; accepts NULL */

/* Start the change listener on its own connection. */
int ks_cache_listen(struct ks_cache *c, const char *conninfo, struct err *e);

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

#endif
