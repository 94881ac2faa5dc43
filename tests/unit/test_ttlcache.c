/* test_ttlcache.c - the shared cache: hits, expiry, bounds, eviction order, generations,
 * ownership of values, and use from several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "core/ttlcache.h"

static int freed;

static void count_free(void *v)
{
	freed++;
	free(v);
}

static int copy_int(const void *value, void *arg)
{
	*(int *)arg = *(const int *)value;
	return 0;
}

static int *int_new(int n)
{
	int *p = malloc(sizeof(*p));

	assert_non_null(p);
	*p = n;
	return p;
}

static int get_int(struct ttlcache *c, const char *key, double now, int *out)
{
	return ttlcache_get(c, key, now, 0, copy_int, out);
}

static void test_hit_miss_replace(void **state)
{
	struct ttlcache *c = ttlcache_new(16, 4, count_free);
	int v = 0;

	freed = 0;
	assert_non_null(c);
	assert_int_equal(get_int(c, "a", 0, &v), 0);
	assert_int_equal(ttlcache_put(c, "a", int_new(1), 10, TTLCACHE_ANY_GEN), 1);
	assert_int_equal(get_int(c, "a", 0, &v), 1);
	assert_int_equal(v, 1);
	assert_int_equal(get_int(c, "b", 0, &v), 0);
	/* a second put replaces and frees the first value */
	assert_int_equal(ttlcache_put(c, "a", int_new(2), 10, TTLCACHE_ANY_GEN), 1);
	assert_int_equal(freed, 1);
	assert_int_equal(get_int(c, "a", 0, &v), 1);
	assert_int_equal(v, 2);
	assert_int_equal(ttlcache_count(c), 1);
	ttlcache_remove(c, "a");
	assert_int_equal(get_int(c, "a", 0, &v), 0);
	assert_int_equal(freed, 2);
	ttlcache_free(c);
	ttlcache_free(NULL);
}

static void test_expiry(void **state)
{
	struct ttlcache *c = ttlcache_new(16, 1, count_free);
	int v = 0;

	freed = 0;
	ttlcache_put(c, "k", int_new(7), 100.0, TTLCACHE_ANY_GEN);
	assert_int_equal(get_int(c, "k", 99.9, &v), 1);
	/* the expiry instant itself is past */
	assert_int_equal(get_int(c, "k", 100.0, &v), 0);
	/* an expired entry goes when it is found */
	assert_int_equal(freed, 1);
	assert_int_equal(ttlcache_count(c), 0);
	ttlcache_free(c);
}

static void test_bound_evicts_oldest(void **state)
{
	struct ttlcache *c = ttlcache_new(4, 1, count_free);
	char key[16];
	int v;

	freed = 0;
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ttlcache_put(c, key, int_new(i), 1000, TTLCACHE_ANY_GEN);
		assert_true(ttlcache_count(c) <= 4);
	}
	assert_int_equal(ttlcache_count(c), 4);
	assert_int_equal(freed, 6);
	/* the four newest remain, the oldest went first */
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(get_int(c, key, 0, &v), i >= 6);
	}
	ttlcache_free(c);
	assert_int_equal(freed, 10);
}

static void test_bound_over_shards(void **state)
{
	struct ttlcache *c = ttlcache_new(64, 8, count_free);
	char key[16];

	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		ttlcache_put(c, key, int_new(i), 1000, TTLCACHE_ANY_GEN);
	}
	assert_true(ttlcache_count(c) <= 64);
	assert_true(ttlcache_count(c) >= 56); /* the keys spread over every shard */
	ttlcache_clear(c);
	assert_int_equal(ttlcache_count(c), 0);
	ttlcache_free(c);
}

/* A byte budget: the charges held never pass it, older entries give way, an entry
 * larger than a shard's share is refused (and its value freed), and removing or
 * replacing an entry gives its bytes back. */
static void test_byte_budget(void **state)
{
	struct ttlcache *c = ttlcache_new_bytes(0, 4096, 1, count_free);
	char key[16];
	int v;

	assert_non_null(c);
	assert_int_equal(ttlcache_max_bytes(c), 4096);
	freed = 0;
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(
		    ttlcache_put_sized(c, key, int_new(i), 500, 1000, TTLCACHE_ANY_GEN), 1);
		assert_true(ttlcache_bytes(c) <= 4096);
	}
	/* 4096 bytes hold fewer than eight 500-byte values, and at least six */
	assert_true(ttlcache_count(c) < 8 && ttlcache_count(c) >= 6);
	assert_int_equal(get_int(c, "k99", 0, &v), 1);
	assert_int_equal(get_int(c, "k0", 0, &v), 0);
	/* too large for the whole budget: refused, value freed, nothing else evicted */
	size_t held = ttlcache_count(c);
	int before = freed;
	assert_int_equal(ttlcache_put_sized(c, "big", int_new(1), 5000, 1000, TTLCACHE_ANY_GEN), 0);
	assert_int_equal(freed, before + 1);
	assert_int_equal(ttlcache_count(c), held);
	/* replacing and removing keep the count of bytes exact */
	size_t bytes = ttlcache_bytes(c);
	ttlcache_put_sized(c, "k99", int_new(7), 500, 1000, TTLCACHE_ANY_GEN);
	assert_int_equal(ttlcache_bytes(c), bytes);
	ttlcache_remove(c, "k99");
	assert_true(ttlcache_bytes(c) < bytes);
	ttlcache_clear(c);
	assert_int_equal(ttlcache_bytes(c), 0);
	ttlcache_free(c);
	assert_int_equal(ttlcache_bytes(NULL), 0);
	assert_null(ttlcache_new_bytes(0, 0, 4, NULL));
}

/* Spread over shards, the budget still holds overall; a cache without one reports 0. */
static void test_byte_budget_shards(void **state)
{
	struct ttlcache *c = ttlcache_new_bytes(0, 64 * 1024, 16, count_free);
	char key[32];

	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "subject-%d.example", i);
		ttlcache_put_sized(c, key, int_new(i), (size_t)(i % 700), 1000, TTLCACHE_ANY_GEN);
		assert_true(ttlcache_bytes(c) <= 64 * 1024);
	}
	assert_true(ttlcache_bytes(c) > 48 * 1024); /* it is used, not emptied */
	ttlcache_free(c);
	c = ttlcache_new(8, 2, count_free);
	ttlcache_put(c, "a", int_new(1), 1000, TTLCACHE_ANY_GEN);
	assert_int_equal(ttlcache_max_bytes(c), 0);
	assert_true(ttlcache_bytes(c) > 0); /* the entry itself is still counted */
	ttlcache_free(c);
}

static void test_generations(void **state)
{
	struct ttlcache *c = ttlcache_new(16, 2, count_free);
	unsigned long long g = ttlcache_generation(c);
	int v;

	freed = 0;
	assert_int_equal(ttlcache_put(c, "a", int_new(1), 10, g), 1);
	assert_int_equal(ttlcache_bump(c), g + 1);
	/* computed before the change: refused, and its value freed */
	assert_int_equal(ttlcache_put(c, "b", int_new(2), 10, g), 0);
	assert_int_equal(freed, 1);
	assert_int_equal(get_int(c, "b", 0, &v), 0);
	/* an older entry is still there for a plain lookup, not for a current one */
	assert_int_equal(get_int(c, "a", 0, &v), 1);
	assert_int_equal(ttlcache_get(c, "a", 0, TTLCACHE_CURRENT, copy_int, &v), 0);
	assert_int_equal(ttlcache_put(c, "a", int_new(3), 10, g + 1), 1);
	assert_int_equal(ttlcache_get(c, "a", 0, TTLCACHE_CURRENT, copy_int, &v), 1);
	assert_int_equal(v, 3);
	ttlcache_free(c);
}

static int copy_fails(const void *value, void *arg)
{
	return -1;
}

static void test_copy_failure_and_null(void **state)
{
	struct ttlcache *c = ttlcache_new(2, 1, count_free);
	int v;

	ttlcache_put(c, "a", int_new(1), 10, TTLCACHE_ANY_GEN);
	assert_int_equal(ttlcache_get(c, "a", 0, 0, copy_fails, NULL), 0);
	assert_int_equal(get_int(c, "a", 0, &v), 1);
	ttlcache_free(c);
	assert_null(ttlcache_new(0, 1, NULL));
	assert_null(ttlcache_new(1, 0, NULL));
	assert_int_equal(get_int(NULL, "a", 0, &v), 0);
	freed = 0;
	assert_int_equal(ttlcache_put(NULL, "a", NULL, 10, TTLCACHE_ANY_GEN), 0);
	ttlcache_remove(NULL, "a");
	ttlcache_clear(NULL);
	assert_int_equal(ttlcache_count(NULL), 0);
}

static void test_hash_is_fnv1a(void **state)
{
	/* published FNV-1a 64 test vectors */
	assert_true(ttlcache_hash("") == 0xcbf29ce484222325ULL);
	assert_true(ttlcache_hash("a") == 0xaf63dc4c8601ec8cULL);
	assert_true(ttlcache_hash("foobar") == 0x85944171f73967e8ULL);
}

#define THREADS 8
#define ROUNDS 20000

static void plain_free(void *v)
{
	free(v);
}

static void *hammer(void *arg)
{
	struct ttlcache *c = arg;
	char key[16];
	int v;

	for (int i = 0; i < ROUNDS; i++) {
		unsigned k = (unsigned)(i * 7919) % 300;
		snprintf(key, sizeof(key), "k%u", k);
		switch (i % 5) {
		case 0:
			ttlcache_put(c, key, int_new((int)k), i % 50, ttlcache_generation(c));
			break;
		case 1:
			ttlcache_remove(c, key);
			break;
		case 2:
			if (i % 1000 == 2)
				ttlcache_bump(c);
			break;
		default:
			/* a hit always gives the value stored for that key */
			if (get_int(c, key, i % 40, &v))
				assert_int_equal(v, (int)k);
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct ttlcache *c = ttlcache_new(100, 4, plain_free);
	pthread_t t[THREADS];

	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, c), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_true(ttlcache_count(c) <= 100);
	ttlcache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hit_miss_replace),
	    cmocka_unit_test(test_expiry),
	    cmocka_unit_test(test_bound_evicts_oldest),
	    cmocka_unit_test(test_bound_over_shards),
	    cmocka_unit_test(test_byte_budget),
	    cmocka_unit_test(test_byte_budget_shards),
	    cmocka_unit_test(test_generations),
	    cmocka_unit_test(test_copy_failure_and_null),
	    cmocka_unit_test(test_hash_is_fnv1a),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
