/*
 * cache.c - recent per-subject answers, so that a busy receiver asking about the same
 * clients again and again costs no database round trips.
 *
 * Direct-mapped slots under striped locks; an entry lives answer_cache_ttl seconds (decay
 * over that time is negligible next to a half-life of days).  Every change this process
 * makes (a report, an import, a standing pass, a delisting) forgets the subjects it touched
 * after its commit; a generation number, bumped by every forget, keeps an answer computed
 * before a commit from being stored after it.  Other nodes' changes show after at most
 * the TTL.  Cached values are immutable jansson objects handed out by reference (jansson's
 * reference counts are atomic here).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rep.h"

#define CACHE_STRIPES 256

struct slot {
	char subject[REP_SUBJECT_MAX + 16];
	json_t *value;
	double expires;
	unsigned long long gen; /* the generation it was computed in */
};

struct rep_cache {
	struct slot *slots;
	size_t nslots;
	double ttl;
	atomic_ullong generation;
	pthread_mutex_t locks[CACHE_STRIPES];
};

static size_t slot_of(const struct rep_cache *c, const char *subject)
{
	uint64_t h = 1469598103934665603ULL;

	for (const unsigned char *p = (const unsigned char *)subject; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % c->nslots);
}

struct rep_cache *rep_cache_new(size_t nslots, double ttl)
{
	struct rep_cache *c;

	if (ttl <= 0 || nslots == 0)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->slots = calloc(nslots, sizeof(*c->slots))) == NULL) {
		free(c);
		return NULL;
	}
	c->nslots = nslots;
	c->ttl = ttl;
	for (int i = 0; i < CACHE_STRIPES; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	return c;
}

void rep_cache_free(struct rep_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nslots; i++)
		json_decref(c->slots[i].value);
	for (int i = 0; i < CACHE_STRIPES; i++)
		pthread_mutex_destroy(&c->locks[i]);
	free(c->slots);
	free(c);
}

unsigned long long rep_cache_generation(struct rep_cache *c)
{
	return c ? atomic_load(&c->generation) : 0;
}

static json_t *lookup(struct rep_cache *c, const char *key, double now, int current)
{
	json_t *v = NULL;
	size_t i;

	if (c == NULL)
		return NULL;
	i = slot_of(c, key);
	pthread_mutex_lock(&c->locks[i % CACHE_STRIPES]);
	if (c->slots[i].value != NULL && now < c->slots[i].expires &&
	    strcmp(c->slots[i].subject, key) == 0 &&
	    (!current || c->slots[i].gen == atomic_load(&c->generation)))
		v = json_incref(c->slots[i].value);
	pthread_mutex_unlock(&c->locks[i % CACHE_STRIPES]);
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
	json_t *old = NULL;
	size_t i;

	if (c == NULL || strlen(subject) >= sizeof(c->slots[0].subject))
		return;
	i = slot_of(c, subject);
	pthread_mutex_lock(&c->locks[i % CACHE_STRIPES]);
	/* Checked under the lock: a forget of this slot takes the same lock after bumping. */
	if (atomic_load(&c->generation) == gen) {
		old = c->slots[i].value;
		snprintf(c->slots[i].subject, sizeof(c->slots[i].subject), "%s", subject);
		c->slots[i].value = json_incref(v);
		c->slots[i].expires = now + c->ttl;
		c->slots[i].gen = gen;
	}
	pthread_mutex_unlock(&c->locks[i % CACHE_STRIPES]);
	json_decref(old);
}

void rep_cache_forget(struct rep_cache *c, const char *subject)
{
	json_t *old = NULL;
	size_t i;

	if (c == NULL)
		return;
	atomic_fetch_add(&c->generation, 1);
	i = slot_of(c, subject);
	pthread_mutex_lock(&c->locks[i % CACHE_STRIPES]);
	if (strcmp(c->slots[i].subject, subject) == 0) {
		old = c->slots[i].value;
		c->slots[i].value = NULL;
	}
	pthread_mutex_unlock(&c->locks[i % CACHE_STRIPES]);
	json_decref(old);
}

void rep_cache_flush(struct rep_cache *c)
{
	if (c == NULL)
		return;
	atomic_fetch_add(&c->generation, 1);
	for (size_t i = 0; i < c->nslots; i++) {
		json_t *old;

		pthread_mutex_lock(&c->locks[i % CACHE_STRIPES]);
		old = c->slots[i].value;
		c->slots[i].value = NULL;
		pthread_mutex_unlock(&c->locks[i % CACHE_STRIPES]);
		json_decref(old);
	}
}
