/*
 * ratelimit.h - per-client token buckets with bounded memory.
 *
 * Each key (a client address) owns a bucket of `burst` tokens that refills
 * at `rate` tokens per second; a request takes one token.  The table is split
 * into shards, each with its own lock, so that worker threads rarely wait on
 * each other.  When a shard is full, buckets that have refilled completely
 * (indistinguishable from a new one) are dropped first, then the one idle
 * longest; memory never grows past max_entries buckets.
 */
#ifndef ANCHOR_RATELIMIT_H
#define ANCHOR_RATELIMIT_H

#include <stddef.h>

struct ratelimit;

/* NULL when out of memory.  rate <= 0 makes every take succeed. */
struct ratelimit *ratelimit_new(double rate, double burst, size_t max_entries);
void ratelimit_free(struct ratelimit *rl); /* accepts NULL */

/*
 * Take one token for key at time now (seconds, from ratelimit_now() or a
 * test's clock).  Returns 1 when allowed; 0 when limited, with *retry_after
 * set to the seconds until a token is back.
 */
int ratelimit_take(struct ratelimit *rl, const char *key, double now, double *retry_after);

/* Monotonic clock in seconds. */
double ratelimit_now(void);

/* Buckets currently held (for tests and metrics). */
size_t ratelimit_size(struct ratelimit *rl);

#endif
