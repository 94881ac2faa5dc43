/*
 * cache.c - verdicts by request key (client address, HELO, sender domain),
 * reused for cache_ttl seconds.  Direct-mapped: a key has one slot, a newer
 * key in the same slot replaces the older one, so memory is fixed at
 * cache_size entries and a lookup is one comparison.  Loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policyd.h"

struct slot {
	char key[POLICY_VALUE_MAX];
	time_t expires;
	struct policy_verdict v;
};

struct policy_cache {
	struct slot *slots;
	size_t size;
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
	c->slots = calloc(size, sizeof(*c->slots));
	if (c->slots == NULL) {
		free(c);
		return NULL;
	}
	c->size = size;
	c->ttl = ttl;
	return c;
}

void policy_cache_free(struct policy_cache *c)
{
	if (c == NULL)
		return;
	free(c->slots);
	free(c);
}

static struct slot *slot_of(struct policy_cache *c, const char *key)
{
	unsigned long long h = 1469598103934665603ULL;

	while (*key)
		h = (h ^ (unsigned char)*key++) * 1099511628211ULL;
	return &c->slots[h % c->size];
}

int policy_cache_get(struct policy_cache *c, const char *key, time_t now, struct policy_verdict *v)
{
	struct slot *s;

	if (c == NULL)
		return 0;
	s = slot_of(c, key);
	if (s->expires <= now || strcmp(s->key, key) != 0)
		return 0;
	*v = s->v;
	c->hits++;
	return 1;
}

void policy_cache_put(struct policy_cache *c, const char *key, time_t now,
                      const struct policy_verdict *v)
{
	struct slot *s;

	if (c == NULL || strlen(key) >= sizeof(s->key))
		return;
	s = slot_of(c, key);
	snprintf(s->key, sizeof(s->key), "%s", key);
	s->expires = now + c->ttl;
	s->v = *v;
}

unsigned long policy_cache_hits(const struct policy_cache *c)
{
	return c ? c->hits : 0;
}
