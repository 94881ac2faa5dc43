/*
 * ratelimit.c - sharded per-client token buckets; see ratelimit.h.
 *
 * Every shard preallocates its buckets, so taking a token never allocates:
 * a flood of new client addresses costs a bounded table and an occasional
 * sweep, never memory.  The hash is seeded at random so that a client cannot
 * pick addresses that all land in one chain.
 */
#include "http/ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#define RL_SHARDS 64
#define RL_KEY_MAX 64 /* longer keys are cut; client addresses are at most 45 */
#define RL_NONE (-1)

struct rl_bucket {
	char key[RL_KEY_MAX];
	uint64_t hash;
	double tokens;
	double last; /* when tokens was last brought up to date */
	int32_t next;
};

struct rl_shard {
	_Alignas(64) pthread_mutex_t lock; /* own cache line: no false sharing between shards */
	struct rl_bucket *buckets;
	int32_t *heads;
	int32_t free_head;
	size_t used, cap, mask;
};

struct ratelimit {
	double rate, burst;
	uint64_t seed;
	struct rl_shard shard[RL_SHARDS];
};

double ratelimit_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rl_hash(uint64_t seed, const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	/* final mix so that the low bits (shard) depend on every byte */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static int rl_shard_init(struct rl_shard *s, size_t cap)
{
	size_t nheads = 4;

	while (nheads < cap)
		nheads <<= 1;
	s->buckets = calloc(cap, sizeof(*s->buckets));
	s->heads = malloc(nheads * sizeof(*s->heads));
	if (s->buckets == NULL || s->heads == NULL)
		return -1;
	for (size_t i = 0; i < nheads; i++)
		s->heads[i] = RL_NONE;
	for (size_t i = 0; i < cap; i++)
		s->buckets[i].next = i + 1 < cap ? (int32_t)(i + 1) : RL_NONE;
	s->free_head = 0;
	s->cap = cap;
	s->mask = nheads - 1;
	s->used = 0;
	return pthread_mutex_init(&s->lock, NULL) == 0 ? 0 : -1;
}

struct ratelimit *ratelimit_new(double rate, double burst, size_t max_entries)
{
	/* aligned: the shards' locks sit on their own cache lines */
	struct ratelimit *rl = aligned_alloc(_Alignof(struct ratelimit), sizeof(*rl));
	size_t cap;
	int inited = 0;

	if (rl == NULL)
		return NULL;
	memset(rl, 0, sizeof(*rl));
	rl->rate = rate;
	rl->burst = burst < 1 ? 1 : burst;
	if (RAND_bytes((unsigned char *)&rl->seed, sizeof(rl->seed)) != 1)
		rl->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)rl;
	cap = (max_entries + RL_SHARDS - 1) / RL_SHARDS;
	if (cap < 4)
		cap = 4;
	if (cap > INT32_MAX / 2)
		cap = INT32_MAX / 2;
	for (inited = 0; inited < RL_SHARDS; inited++) {
		if (rl_shard_init(&rl->shard[inited], cap) < 0)
			goto fail;
	}
	return rl;
fail:
	/* the failed shard's arrays are freed too; its mutex was never made */
	free(rl->shard[inited].buckets);
	free(rl->shard[inited].heads);
	while (inited-- > 0) {
		pthread_mutex_destroy(&rl->shard[inited].lock);
		free(rl->shard[inited].buckets);
		free(rl->shard[inited].heads);
	}
	free(rl);
	return NULL;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	for (int i = 0; i < RL_SHARDS; i++) {
		pthread_mutex_destroy(&rl->shard[i].lock);
		free(rl->shard[i].buckets);
		free(rl->shard[i].heads);
	}
	free(rl);
}

static double rl_level(const struct ratelimit *rl, const struct rl_bucket *b, double now)
{
	double t = b->tokens;

	if (now > b->last)
		t += (now - b->last) * rl->rate;
	return t > rl->burst ? rl->burst : t;
}

static void rl_unlink(struct rl_shard *s, int32_t idx)
{
	int32_t *link = &s->heads[s->buckets[idx].hash >> 6 & s->mask];

	while (*link != idx)
		link = &s->buckets[*link].next;
	*link = s->buckets[idx].next;
	s->buckets[idx].next = s->free_head;
	s->free_head = idx;
	s->used--;
}

/*
 * The shard is full: drop every bucket that has refilled to the brim (it
 * behaves exactly like a fresh one), or failing that the one idle longest.
 */
static void rl_evict(struct ratelimit *rl, struct rl_shard *s, double now)
{
	int32_t oldest = RL_NONE;
	size_t freed = 0;

	for (size_t h = 0; h <= s->mask; h++) {
		int32_t idx = s->heads[h];

		while (idx != RL_NONE) {
			int32_t next = s->buckets[idx].next;

			if (rl_level(rl, &s->buckets[idx], now) >= rl->burst) {
				rl_unlink(s, idx);
				freed++;
			} else if (oldest == RL_NONE ||
			           s->buckets[idx].last < s->buckets[oldest].last) {
				oldest = idx;
			}
			idx = next;
		}
	}
	if (freed == 0 && oldest != RL_NONE)
		rl_unlink(s, oldest);
}

static struct rl_bucket *rl_lookup(struct ratelimit *rl, struct rl_shard *s, const char *key,
                                   size_t len, uint64_t hash, double now)
{
	int32_t *head = &s->heads[hash >> 6 & s->mask];
	struct rl_bucket *b;
	int32_t idx;

	for (idx = *head; idx != RL_NONE; idx = s->buckets[idx].next) {
		b = &s->buckets[idx];
		if (b->hash == hash && strncmp(b->key, key, len) == 0 && b->key[len] == '\0')
			return b;
	}
	if (s->used == s->cap) {
		rl_evict(rl, s, now);
		head = &s->heads[hash >> 6 & s->mask];
	}
	idx = s->free_head;
	b = &s->buckets[idx];
	s->free_head = b->next;
	s->used++;
	memcpy(b->key, key, len);
	b->key[len] = '\0';
	b->hash = hash;
	b->tokens = rl->burst;
	b->last = now;
	b->next = *head;
	*head = idx;
	return b;
}

int ratelimit_take(struct ratelimit *rl, const char *key, double now, double *retry_after)
{
	struct rl_shard *s;
	struct rl_bucket *b;
	size_t len;
	uint64_t hash;
	int allowed;

	if (rl == NULL || rl->rate <= 0)
		return 1;
	len = strnlen(key, RL_KEY_MAX - 1);
	hash = rl_hash(rl->seed, key, len);
	s = &rl->shard[hash & (RL_SHARDS - 1)];

	pthread_mutex_lock(&s->lock);
	b = rl_lookup(rl, s, key, len, hash, now);
	b->tokens = rl_level(rl, b, now);
	if (now > b->last)
		b->last = now;
	allowed = b->tokens >= 1.0;
	if (allowed)
		b->tokens -= 1.0;
	else if (retry_after != NULL)
		*retry_after = (1.0 - b->tokens) / rl->rate;
	pthread_mutex_unlock(&s->lock);
	return allowed;
}

size_t ratelimit_size(struct ratelimit *rl)
{
	size_t n = 0;

	if (rl == NULL)
		return 0;
	for (int i = 0; i < RL_SHARDS; i++) {
		pthread_mutex_lock(&rl->shard[i].lock);
		n += rl->shard[i].used;
		pthread_mutex_unlock(&rl->shard[i].lock);
	}
	return n;
}
