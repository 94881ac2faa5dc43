/* ttlcache.c - the one bounded cache with per-entry expiry; see ttlcache.h. */
#include "core/ttlcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

struct entry {
	struct entry *next;          /* in its bucket */
	struct entry *older, *newer; /* in its shard's insertion order */
	void *value;
	double expires;
	size_t charge; /* bytes accounted for this entry: itself, its key and its value */
	unsigned long long gen;
	uint64_t hash;
	char key[];
};

struct shard {
	pthread_mutex_t lock;
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	struct entry *oldest, *newest;
	size_t count;
	size_t bytes; /* the charges of the entries held */
};

struct ttlcache {
	struct shard *shards;
	size_t nshards;
	size_t max_per_shard;
	size_t bytes_per_shard; /* 0: no byte budget */
	ttlcache_free_fn free_value;
	atomic_ullong gen;
};

uint64_t ttlcache_hash(const char *key)
{
	return hash_str(key);
}

static void value_free(struct ttlcache *c, void *value)
{
	if (value != NULL && c->free_value != NULL)
		c->free_value(value);
}

/* The bucket takes the hash's low bits; the shard takes the top of the hash times the
 * golden ratio (FNV's own high bits spread badly over similar short keys), so that the
 * two choices are independent. */
static struct shard *shard_of(struct ttlcache *c, uint64_t h)
{
	return &c->shards[((h * 0x9E3779B97F4A7C15ULL) >> 40) % c->nshards];
}

static struct entry **bucket_of(struct shard *sh, uint64_t h)
{
	return &sh->buckets[h & (sh->nbuckets - 1)];
}

static int shard_init(struct shard *sh, size_t bound)
{
	size_t n = 8;

	while (n < bound && n < 65536)
		n <<= 1;
	if ((sh->buckets = calloc(n, sizeof(struct entry *))) == NULL)
		return -1;
	sh->nbuckets = n;
	pthread_mutex_init(&sh->lock, NULL);
	return 0;
}

struct ttlcache *ttlcache_new_bytes(size_t max_entries, size_t max_bytes, size_t shards,
                                    ttlcache_free_fn free_value)
{
	struct ttlcache *c;
	size_t buckets;

	if (max_entries == 0 && max_bytes > 0)
		max_entries =
		    max_bytes / sizeof(struct entry); /* every entry costs at least that */
	if (max_entries == 0 || shards == 0)
		return NULL;
	if (shards > max_entries)
		shards = max_entries; /* every shard holds at least one entry */
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->shards = calloc(shards, sizeof(*c->shards))) == NULL) {
		free(c);
		return NULL;
	}
	c->max_per_shard = (max_entries + shards - 1) / shards;
	c->bytes_per_shard = max_bytes > 0 ? (max_bytes + shards - 1) / shards : 0;
	/* A byte-bounded cache rarely reaches its entry bound (which assumes empty values):
	 * buckets for a quarter of it keep chains short without a table that costs more than
	 * the entries. */
	buckets = max_bytes > 0 ? c->max_per_shard / 4 : c->max_per_shard;
	c->free_value = free_value;
	atomic_init(&c->gen, 1);
	for (size_t i = 0; i < shards; i++, c->nshards++)
		if (shard_init(&c->shards[i], buckets) < 0) {
			ttlcache_free(c);
			return NULL;
		}
	return c;
}

struct ttlcache *ttlcache_new(size_t max_entries, size_t shards, ttlcache_free_fn free_value)
{
	return max_entries == 0 ? NULL : ttlcache_new_bytes(max_entries, 0, shards, free_value);
}

/* Unlink en from its bucket and the age list and free it; the shard's lock is held. */
static void entry_drop(struct ttlcache *c, struct shard *sh, struct entry *en)
{
	struct entry **pp = bucket_of(sh, en->hash);

	while (*pp != NULL && *pp != en)
		pp = &(*pp)->next;
	if (*pp == en)
		*pp = en->next;
	if (sh->oldest == en)
		sh->oldest = en->newer;
	if (sh->newest == en)
		sh->newest = en->older;
	if (en->older != NULL)
		en->older->newer = en->newer;
	if (en->newer != NULL)
		en->newer->older = en->older;
	value_free(c, en->value);
	sh->bytes -= en->charge;
	free(en);
	sh->count--;
}

static void shard_clear(struct ttlcache *c, struct shard *sh)
{
	while (sh->oldest != NULL)
		entry_drop(c, sh, sh->oldest);
}

void ttlcache_free(struct ttlcache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nshards; i++) {
		shard_clear(c, &c->shards[i]);
		free(c->shards[i].buckets);
		pthread_mutex_destroy(&c->shards[i].lock);
	}
	free(c->shards);
	free(c);
}

static struct entry *entry_find(struct shard *sh, uint64_t h, const char *key)
{
	struct entry *en = *bucket_of(sh, h);

	while (en != NULL && (en->hash != h || strcmp(en->key, key) != 0))
		en = en->next;
	return en;
}

int ttlcache_get(struct ttlcache *c, const char *key, double now, unsigned flags,
                 ttlcache_copy_fn copy, void *arg)
{
	uint64_t h;
	struct shard *sh;
	struct entry *en;
	int hit = 0;

	if (c == NULL)
		return 0;
	h = ttlcache_hash(key);
	sh = shard_of(c, h);
	pthread_mutex_lock(&sh->lock);
	if ((en = entry_find(sh, h, key)) != NULL) {
		if (now >= en->expires)
			entry_drop(c, sh, en);
		else if (!(flags & TTLCACHE_CURRENT) || en->gen == atomic_load(&c->gen))
			hit = copy == NULL || copy(en->value, arg) == 0;
	}
	pthread_mutex_unlock(&sh->lock);
	return hit;
}

/* Link a new entry as the shard's newest; the lock is held and there is room. */
static void entry_link(struct shard *sh, struct entry *en)
{
	struct entry **b = bucket_of(sh, en->hash);

	en->next = *b;
	*b = en;
	en->older = sh->newest;
	if (sh->newest != NULL)
		sh->newest->newer = en;
	else
		sh->oldest = en;
	sh->newest = en;
	sh->count++;
	sh->bytes += en->charge;
}

/* The entry fits in the shard's budgets once older entries have gone. */
static int shard_full(const struct ttlcache *c, const struct shard *sh, size_t charge)
{
	return sh->count >= c->max_per_shard ||
	       (c->bytes_per_shard > 0 && sh->bytes + charge > c->bytes_per_shard);
}

int ttlcache_put_sized(struct ttlcache *c, const char *key, void *value, size_t value_bytes,
                       double expires, unsigned long long gen)
{
	size_t klen = strlen(key);
	struct entry *en, *old;
	struct shard *sh;
	int stored = 0;

	if (c == NULL || (en = calloc(1, sizeof(*en) + klen + 1)) == NULL) {
		if (c != NULL)
			value_free(c, value);
		return 0;
	}
	memcpy(en->key, key, klen + 1);
	en->hash = ttlcache_hash(key);
	en->value = value;
	en->expires = expires;
	en->charge = sizeof(*en) + klen + 1 + value_bytes;
	sh = shard_of(c, en->hash);
	pthread_mutex_lock(&sh->lock);
	/* Checked under the lock: a caller that bumps and then removes takes it after us. */
	en->gen = atomic_load(&c->gen);
	if (gen == TTLCACHE_ANY_GEN || gen == en->gen) {
		if ((old = entry_find(sh, en->hash, key)) != NULL)
			entry_drop(c, sh, old);
		/* An entry larger than a whole shard's budget is refused, not let through. */
		if (c->bytes_per_shard == 0 || en->charge <= c->bytes_per_shard) {
			while (shard_full(c, sh, en->charge) && sh->oldest != NULL)
				entry_drop(c, sh, sh->oldest);
			entry_link(sh, en);
			stored = 1;
		}
	}
	pthread_mutex_unlock(&sh->lock);
	if (!stored) {
		value_free(c, value);
		free(en);
	}
	return stored;
}

int ttlcache_put(struct ttlcache *c, const char *key, void *value, double expires,
                 unsigned long long gen)
{
	return ttlcache_put_sized(c, key, value, 0, expires, gen);
}

void ttlcache_remove(struct ttlcache *c, const char *key)
{
	uint64_t h;
	struct shard *sh;
	struct entry *en;

	if (c == NULL)
		return;
	h = ttlcache_hash(key);
	sh = shard_of(c, h);
	pthread_mutex_lock(&sh->lock);
	if ((en = entry_find(sh, h, key)) != NULL)
		entry_drop(c, sh, en);
	pthread_mutex_unlock(&sh->lock);
}

void ttlcache_clear(struct ttlcache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nshards; i++) {
		pthread_mutex_lock(&c->shards[i].lock);
		shard_clear(c, &c->shards[i]);
		pthread_mutex_unlock(&c->shards[i].lock);
	}
}

unsigned long long ttlcache_generation(struct ttlcache *c)
{
	return c != NULL ? atomic_load(&c->gen) : 0;
}

unsigned long long ttlcache_bump(struct ttlcache *c)
{
	return c != NULL ? atomic_fetch_add(&c->gen, 1) + 1 : 0;
}

size_t ttlcache_count(struct ttlcache *c)
{
	size_t n = 0;

	if (c == NULL)
		return 0;
	for (size_t i = 0; i < c->nshards; i++) {
		pthread_mutex_lock(&c->shards[i].lock);
		n += c->shards[i].count;
		pthread_mutex_unlock(&c->shards[i].lock);
	}
	return n;
}

size_t ttlcache_bytes(struct ttlcache *c)
{
	size_t n = 0;

	if (c == NULL)
		return 0;
	for (size_t i = 0; i < c->nshards; i++) {
		pthread_mutex_lock(&c->shards[i].lock);
		n += c->shards[i].bytes;
		pthread_mutex_unlock(&c->shards[i].lock);
	}
	return n;
}

size_t ttlcache_max_bytes(struct ttlcache *c)
{
	return c != NULL ? c->bytes_per_shard * c->nshards : 0;
}
