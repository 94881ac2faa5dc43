/*
 * cache.c - verdicts by request key (client address, HELO, sender domain),
 * reused for cache_ttl seconds, at most cache_size of them (the oldest goes
 * first), over the shared core/ttlcache.  Loop thread only, so one shard.
 */
#include <stdlib.h>
#include <string.h>

#include "core/ttlcache.h"
#include "policyd.h"

struct policy_cache {
	struct ttlcache *entries;
	long long ttl;
	unsigned long hits;
};

struct policy_cache *policy_cache_new(size_t size, long long ttl)
{
	struct policy_cache *c;

	if (ttl <= 0 || size == 0)
		return NULL; /* no cache: every lookup misses */
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	if ((c->entries = ttlcache_new(size, 1, free)) == NULL) {
		free(c);
		return NULL;
	}
	c->ttl = ttl;
	return c;
}

void policy_cache_free(struct policy_cache *c)
{
	if (c == NULL)
		return;
	ttlcache_free(c->entries);
	free(c);
}

static int copy_verdict(const void *value, void *arg)
{
	memcpy(arg, value, sizeof(struct policy_verdict));
	return 0;
}

int policy_cache_get(struct policy_cache *c, const char *key, time_t now, struct policy_verdict *v)
{
	if (c == NULL || !ttlcache_get(c->entries, key, (double)now, 0, copy_verdict, v))
		return 0;
	c->hits++;
	return 1;
}

void policy_cache_put(struct policy_cache *c, const char *key, time_t now,
                      const struct policy_verdict *v)
{
	struct policy_verdict *copy;

	/* Keys are bounded like the request values they come from. */
	if (c == NULL || strlen(key) >= POLICY_VALUE_MAX || (copy = malloc(sizeof(*copy))) == NULL)
		return;
	*copy = *v;
	ttlcache_put(c->entries, key, copy, (double)(now + c->ttl), TTLCACHE_ANY_GEN);
}

unsigned long policy_cache_hits(const struct policy_cache *c)
{
	return c ? c->hits : 0;
}
