/*
 * cache.c - recent per-subject answers, so that a busy receiver asking about the same
 * clients again and again costs no database round trips.
 *
 * A core/ttlcache under sharded locks, bounded in bytes (answer_cache_bytes): each
 * answer is charged an estimate of the memory its JSON holds (json_bytes), with its key
 * and the cache's bookkeeping, and the oldest go while a shard is over its share; an
 * entry lives
 * answer_cache_ttl seconds (decay over that time is negligible next to a half-life of
 * days).  Every change this process
 * makes (a report, an import, a standing pass, a delisting) forgets the subjects it touched
 * after its commit (rep_changed, which forgets them in the DNS zone's cache as well); a
 * generation number, bumped by every forget, keeps an answer computed before a commit
 * from being stored after it.  Other nodes' changes show after at most the TTL.  Cached values are
 * immutable jansson objects handed out by reference (jansson's reference counts are atomic here).
 */
#include <stdlib.h>
#include <string.h>

#include "core/ttlcache.h"
#include "rep.h"

/* Enough shards that the receivers' threads rarely meet on one lock. */
#define CACHE_SHARDS 64

struct rep_cache {
	struct ttlcache *entries;
	double ttl;
};

static void value_free(void *v)
{
	json_decref(v);
}

/* Allocator overhead per block (glibc: a size word, 16-byte alignment). */
#define MALLOC_OVERHEAD 16

/* What jansson allocates for v, estimated from its structures (jansson 2.14: a json_t
 * header in every value; an object's hashtable, one pair per member with its key; an
 * array's table; a string's copy).  true, false and null are shared singletons.  Checked
 * against mallinfo2() over typical answers: within 5% of what malloc hands out. */
static size_t json_bytes(const json_t *v)
{
	size_t n = 0, i;
	const char *k;
	json_t *m;

	size_t buckets = 8; /* an object's hashtable starts with 8 and doubles */

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		while (buckets < json_object_size(v))
			buckets <<= 1;
		n = 64 + MALLOC_OVERHEAD + 16 * buckets + MALLOC_OVERHEAD;
		json_object_foreach((json_t *)v, k, m) n +=
		    56 + strlen(k) + 1 + MALLOC_OVERHEAD + json_bytes(m);
		return n;
	case JSON_ARRAY:
		n = 40 + MALLOC_OVERHEAD + 8 * json_array_size(v) + MALLOC_OVERHEAD;
		json_array_foreach((json_t *)v, i, m) n += json_bytes(m);
		return n;
	case JSON_STRING:
		return 32 + MALLOC_OVERHEAD + json_string_length(v) + 1 + MALLOC_OVERHEAD;
	case JSON_INTEGER:
	case JSON_REAL:
		return 24 + MALLOC_OVERHEAD;
	default:
		return 0;
	}
}

struct rep_cache *rep_cache_new(size_t max_bytes, double ttl)
{
	struct rep_cache *c;

	if (ttl <= 0 || max_bytes == 0)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->entries = ttlcache_new_bytes(0, max_bytes, CACHE_SHARDS, value_free)) == NULL) {
		free(c);
		return NULL;
	}
	c->ttl = ttl;
	return c;
}

void rep_cache_free(struct rep_cache *c)
{
	if (c == NULL)
		return;
	ttlcache_free(c->entries);
	free(c);
}

unsigned long long rep_cache_generation(struct rep_cache *c)
{
	return c ? ttlcache_generation(c->entries) : 0;
}

static int take_ref(const void *value, void *arg)
{
	*(json_t **)arg = json_incref((json_t *)value);
	return 0;
}

static json_t *lookup(struct rep_cache *c, const char *key, double now, int current)
{
	json_t *v = NULL;

	if (c == NULL ||
	    !ttlcache_get(c->entries, key, now, current ? TTLCACHE_CURRENT : 0, take_ref, &v))
		return NULL;
	return v;
}

json_t *rep_cache_get(struct rep_cache *c, const char *subject, double now)
{
	return lookup(c, subject, now, 0);
}

json_t *rep_cache_get_current(struct rep_cache *c, const char *key, double now)
{
	return lookup(c, key, now, 1);
}

void rep_cache_put(struct rep_cache *c, const char *subject, json_t *v, unsigned long long gen,
                   double now)
{
	if (c == NULL || strlen(subject) >= REP_SUBJECT_MAX + 16)
		return;
	/* Refused under the shard's lock when a forget has bumped the generation since. */
	ttlcache_put_sized(c->entries, subject, json_incref(v), json_bytes(v), now + c->ttl, gen);
}

void rep_cache_stats(struct rep_cache *c, size_t *bytes, size_t *max_bytes, size_t *entries)
{
	*bytes = c ? ttlcache_bytes(c->entries) : 0;
	*max_bytes = c ? ttlcache_max_bytes(c->entries) : 0;
	*entries = c ? ttlcache_count(c->entries) : 0;
}

void rep_cache_forget(struct rep_cache *c, const char *subject)
{
	if (c == NULL)
		return;
	ttlcache_bump(c->entries);
	ttlcache_remove(c->entries, subject);
}

void rep_cache_flush(struct rep_cache *c)
{
	if (c == NULL)
		return;
	ttlcache_bump(c->entries);
	ttlcache_clear(c->entries);
}

void rep_changed(struct rep *rep, const char *subject)
{
	rep_cache_forget(rep->cache, subject);
	rep_dnszone_forget(rep->zone, subject);
}

void rep_changed_all(struct rep *rep)
{
	rep_cache_flush(rep->cache);
	rep_dnszone_flush(rep->zone);
}
