/*
 * deliver_cache.h - idle delivery connections kept open for the next message
 * to the same hop (deliver_cache.c).  Used by deliver.c and the scheduler.
 */
#ifndef ANCHOR_RELAY_DELIVER_CACHE_H
#define ANCHOR_RELAY_DELIVER_CACHE_H

#include <stddef.h>

#include "deliver_conn.h"
#include "deliver_resume.h"
#include "relay.h"

#define RELAY_DCACHE_KEY_MAX (RELAY_RESUME_KEY_MAX + 32)

/* Everything a kept session depends on: protocol, TLS policy, destination, pin, name. */
void relay_dcache_key(const struct relay_hop *hop, char *key, size_t len);
/* An idle session for key, moved into *c and *caps with the number of messages it has
 * carried (*sent): 1; none: 0.  A session idle past its time, or one the peer has
 * closed or spoken on meanwhile, is closed instead of given. */
int relay_dcache_take(const char *key, struct relay_dconn *c, struct relay_smtp_caps *caps,
                      unsigned *sent);
/* Keep c (after a successful RSET) for idle_seconds: 0, and c is the cache's; -1 (the cache
 * is full), and c is still the caller's. */
int relay_dcache_put(const char *key, struct relay_dconn *c, const struct relay_smtp_caps *caps,
                     unsigned sent, int idle_seconds);
/* Say QUIT to, and close, the sessions idle past their time (the scheduler's tick). */
void relay_dcache_sweep(void);
/* Close every kept session (shutdown). */
void relay_dcache_clear(void);
/* Messages sent on a kept session since start (for /metrics). */
unsigned long long relay_dcache_reused(void);

#endif
