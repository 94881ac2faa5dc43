/* test_http_tls.c - session ticket keys: the rotation bounds, the ticket lifetime, key
 * names found in a ClientHello, arming a real GnuTLS server session.  Resumption itself,
 * across a rotation, is test_tls_resumption.py against the daemons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "http/http_tls.h"

static time_t fake_now;

static time_t fake_clock(time_t *out)
{
	if (out != NULL)
		*out = fake_now;
	return fake_now;
}

static void test_rotation_bounds(void **state)
{
	struct err e = {0};

	assert_null(http_tls_new(0, NULL, &e));
	assert_string_equal(e.code, "bad_config");
	memset(&e, 0, sizeof(e));
	assert_null(http_tls_new(3L * 86400 + 1, NULL, &e));
	assert_string_equal(e.code, "bad_config");
	http_tls_free(NULL);
}

static void test_lifetime_is_two_periods(void **state)
{
	struct err e = {0};
	struct http_tls *t = http_tls_new(3600, NULL, &e);

	assert_non_null(t);
	assert_int_equal(http_tls_lifetime(t), 7200);
	http_tls_free(t);
}

static void test_hello_names(void **state)
{
	unsigned char name[HTTP_TLS_NAME_LEN], hello[300];

	for (int i = 0; i < HTTP_TLS_NAME_LEN; i++)
		name[i] = (unsigned char)(0xa0 + i);
	memset(hello, 0x16, sizeof(hello));
	assert_int_equal(http_tls_hello_names(hello, sizeof(hello), name), 0);
	memcpy(hello + 200, name, sizeof(name));
	assert_int_equal(http_tls_hello_names(hello, sizeof(hello), name), 1);
	/* cut one byte short of the whole name */
	assert_int_equal(http_tls_hello_names(hello, 200 + HTTP_TLS_NAME_LEN - 1, name), 0);
	assert_int_equal(http_tls_hello_names(NULL, 10, name), 0);
}

/* A server session takes a ticket key with or without a ClientHello to look at, also
 * after the clock has passed several rotations (and two without any connection). */
static void test_choose_arms_sessions(void **state)
{
	struct err e = {0};
	struct http_tls *t;
	gnutls_session_t s;
	const unsigned char hello[64] = {1};

	fake_now = 1000000;
	t = http_tls_new(10, fake_clock, &e);
	assert_non_null(t);
	assert_int_equal(gnutls_init(&s, GNUTLS_SERVER), 0);
	assert_int_equal(http_tls_choose(t, s, hello, sizeof(hello)), 0);
	gnutls_deinit(s);
	for (int i = 0; i < 5; i++) {
		fake_now += 7 * i;
		assert_int_equal(gnutls_init(&s, GNUTLS_SERVER), 0);
		assert_int_equal(http_tls_choose(t, s, NULL, 0), 0);
		gnutls_deinit(s);
	}
	http_tls_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rotation_bounds),
	    cmocka_unit_test(test_lifetime_is_two_periods),
	    cmocka_unit_test(test_hello_names),
	    cmocka_unit_test(test_choose_arms_sessions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
