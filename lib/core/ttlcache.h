/*
 * ttlcache.h - the one bounded cache with per-entry expiry.
 *
 * Keys are strings; values are owned by the cache from the moment they are offered to
 * ttlcache_put (stored or not) and released with the free callback given at creation.
 * A lookup does not hand out the stored value: it calls the caller's copy function on it
 * under the lock, so a value never outlives its entry in another thread's hands (a
 * reference-counted value may take a reference there).
 *
 * The cache is split into shards, each under its own mutex, so that threads asking about
 * different keys rarely wait on each other; the entry bound is spread evenly over the
 * shards.  A full shard gives up its oldest insertion; an expired entry goes when it is
 * found.  Memory is therefore bounded by max_entries (rounded up to a multiple of the
 * shard count) whatever the keys.
 *
 * Byte budgets: a cache made with ttlcache_new_bytes also charges every entry its bytes
 * (the entry itself, its key, and what the caller says its value holds, through
 * ttlcache_put_sized) and gives up its oldest insertions while a shard is over its share
 * of the budget, so that the charges held never exceed max_bytes (rounded up to a
 * multiple of the shard count), however large the values.  An entry larger than a shard's
 * share is refused.  ttlcache_bytes reports the charges held, for /metrics.
 *
 * Times are the caller's, in seconds on any clock it likes (monotonic preferred): the
 * cache never reads a clock, so tests drive expiry and callers keep their own time base.
 *
 * Generations: ttlcache_bump advances a counter.  A put made with an older generation is
 * refused (the answer was computed before a change and may be stale), and a lookup with
 * TTLCACHE_CURRENT ignores entries stored in an older one.  Callers that do not care pass
 * TTLCACHE_ANY_GEN and no flag.
 */
#ifndef ANCHOR_TTLCACHE_H
#define ANCHOR_TTLCACHE_H

#include <stddef.h>
#include <stdint.h>

struct ttlcache;

/* Releases a value the cache owns; NULL values are never passed. */
typedef void (*ttlcache_free_fn)(void *value);
/* Copies what the caller needs out of a stored value, under the shard's lock: 0, or -1
 * (out of memory, say) to report a miss. */
typedef int (*ttlcache_copy_fn)(const void *value, void *arg);

#define TTLCACHE_ANY_GEN (~0ULL)
#define TTLCACHE_CURRENT 1u /* ttlcache_get: only entries of the current generation */

/* NULL when out of memory or max_entries or shards is 0.  free_value may be NULL
 * (values that are not to be freed). */
struct ttlcache *ttlcache_new(size_t max_entries, size_t shards, ttlcache_free_fn free_value);
void ttlcache_free(struct ttlcache *c);
/* The same with a byte budget as well (0: none).  max_entries 0 with a budget: as many
 * entries as the budget can hold.  NULL when both are 0. */
struct ttlcache *ttlcache_new_bytes(size_t max_entries, size_t max_bytes, size_t shards,
                                    ttlcache_free_fn free_value);

/* 1 and copy() called when key has a fresh entry (now < its expiry), else 0.  A NULL
 * cache always misses. */
int ttlcache_get(struct ttlcache *c, const char *key, double now, unsigned flags,
                 ttlcache_copy_fn copy, void *arg);

/* Store value under key until expires, replacing an older entry; 1 stored, 0 refused
 * (generation gen is no longer current, NULL cache, out of memory).  The value belongs to
 * the cache either way. */
int ttlcache_put(struct ttlcache *c, const char *key, void *value, double expires,
                 unsigned long long gen);
/* The same, charging value_bytes for the value (what it holds beyond the entry; 0 when
 * it costs nothing worth counting).  0 also when the entry alone exceeds a shard's share
 * of the byte budget. */
int ttlcache_put_sized(struct ttlcache *c, const char *key, void *value, size_t value_bytes,
                       double expires, unsigned long long gen);

/* Forget key (nothing when absent). */
void ttlcache_remove(struct ttlcache *c, const char *key);
/* Forget every entry. */
void ttlcache_clear(struct ttlcache *c);

/* The current generation (0 for a NULL cache), and advancing it (returns the new one). */
unsigned long long ttlcache_generation(struct ttlcache *c);
unsigned long long ttlcache_bump(struct ttlcache *c);

/* Entries held, expired ones not yet found included. */
size_t ttlcache_count(struct ttlcache *c);
/* Bytes charged for the entries held (never more than the budget), and the budget
 * (0 when there is none). */
size_t ttlcache_bytes(struct ttlcache *c);
size_t ttlcache_max_bytes(struct ttlcache *c);

/* The hash the cache uses (core/hash.h's hash_str): keys may be chosen by peers, but a
 * chain is bounded by the shard's entry bound, so collisions cost comparisons, never
 * memory. */
uint64_t ttlcache_hash(const char *key);

#endif
