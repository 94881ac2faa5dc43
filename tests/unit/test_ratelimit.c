/* test_ratelimit.c - token buckets: burst, refill, independence, bounds, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "http/ratelimit.h"

static void test_burst_then_limited(void **state)
{
	struct ratelimit *rl = ratelimit_new(2.0, 3.0, 1024);
	double retry = -1;

	assert_non_null(rl);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take(rl, "192.0.2.1", 100.0, &retry), 1);
	assert_int_equal(ratelimit_take(rl, "192.0.2.1", 100.0, &retry), 0);
	/* one token at 2/s is half a second away */
	assert_true(retry > 0.49 && retry < 0.51);
	ratelimit_free(rl);
}

static void test_refill(void **state)
{
	struct ratelimit *rl = ratelimit_new(1.0, 2.0, 1024);
	double retry = 0;

	assert_int_equal(ratelimit_take(rl, "k", 0.0, &retry), 1);
	assert_int_equal(ratelimit_take(rl, "k", 0.0, &retry), 1);
	assert_int_equal(ratelimit_take(rl, "k", 0.0, &retry), 0);
	assert_int_equal(ratelimit_take(rl, "k", 0.5, &retry), 0);
	assert_true(retry > 0.49 && retry < 0.51);
	assert_int_equal(ratelimit_take(rl, "k", 1.0, &retry), 1);
	assert_int_equal(ratelimit_take(rl, "k", 1.0, &retry), 0);
	/* a long pause refills to the burst, not beyond */
	for (int i = 0; i < 2; i++)
		assert_int_equal(ratelimit_take(rl, "k", 1000.0, &retry), 1);
	assert_int_equal(ratelimit_take(rl, "k", 1000.0, &retry), 0);
	/* time going backwards (a test clock) never adds tokens */
	assert_int_equal(ratelimit_take(rl, "k", 10.0, &retry), 0);
	ratelimit_free(rl);
}

static void test_keys_independent(void **state)
{
	struct ratelimit *rl = ratelimit_new(0.001, 1.0, 1024);
	double retry;

	assert_int_equal(ratelimit_take(rl, "2001:db8::1", 5.0, &retry), 1);
	assert_int_equal(ratelimit_take(rl, "2001:db8::1", 5.0, &retry), 0);
	assert_int_equal(ratelimit_take(rl, "2001:db8::2", 5.0, &retry), 1);
	assert_int_equal(ratelimit_take(rl, "2001:db8::", 5.0, &retry), 1);
	assert_int_equal(ratelimit_size(rl), 3);
	ratelimit_free(rl);
}

static void test_disabled(void **state)
{
	struct ratelimit *rl = ratelimit_new(0, 1, 16);

	for (int i = 0; i < 100; i++)
		assert_int_equal(ratelimit_take(rl, "x", 0.0, NULL), 1);
	ratelimit_free(rl);
	ratelimit_free(NULL);
	assert_int_equal(ratelimit_take(NULL, "x", 0.0, NULL), 1);
}

static void test_bounded(void **state)
{
	struct ratelimit *rl = ratelimit_new(0.001, 2.0, 256);
	double retry;
	char key[32];

	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
		/* every new client starts with a full bucket, even after evictions */
		assert_int_equal(ratelimit_take(rl, key, (double)i, &retry), 1);
	}
	assert_true(ratelimit_size(rl) <= 256);
	assert_true(ratelimit_size(rl) > 64);
	ratelimit_free(rl);
}

static void test_long_key(void **state)
{
	struct ratelimit *rl = ratelimit_new(0.001, 1.0, 64);
	char key[200];
	double retry;

	memset(key, 'a', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_int_equal(ratelimit_take(rl, key, 0.0, &retry), 1);
	assert_int_equal(ratelimit_take(rl, key, 0.0, &retry), 0);
	ratelimit_free(rl);
}

#define THREADS 4
#define TRIES 2000

struct worker {
	struct ratelimit *rl;
	int allowed;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	double retry;

	for (int i = 0; i < TRIES; i++)
		w->allowed += ratelimit_take(w->rl, "shared", 1.0, &retry);
	return NULL;
}

static void test_threads_share_one_bucket(void **state)
{
	struct ratelimit *rl = ratelimit_new(1e-9, 1000.0, 1024);
	struct worker w[THREADS];
	pthread_t t[THREADS];
	int total = 0;

	for (int i = 0; i < THREADS; i++) {
		w[i].rl = rl;
		w[i].allowed = 0;
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		total += w[i].allowed;
	}
	/* exactly the burst, never a token more: the shard lock works */
	assert_int_equal(total, 1000);
	ratelimit_free(rl);
}

static void test_clock_moves(void **state)
{
	double a = ratelimit_now(), b = ratelimit_now();

	assert_true(a > 0);
	assert_true(b >= a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_then_limited),
	    cmocka_unit_test(test_refill),
	    cmocka_unit_test(test_keys_independent),
	    cmocka_unit_test(test_disabled),
	    cmocka_unit_test(test_bounded),
	    cmocka_unit_test(test_long_key),
	    cmocka_unit_test(test_threads_share_one_bucket),
	    cmocka_unit_test(test_clock_moves),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
