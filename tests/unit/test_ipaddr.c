/* test_ipaddr.c - private and public IP literals (lib/core/ipaddr.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/ipaddr.h"

static void test_private(void **state)
{
	static const char *const priv[] = {
	    "127.0.0.1",
	    "127.255.0.9",
	    "10.0.0.1",
	    "172.16.0.1",
	    "172.31.255.255",
	    "192.168.1.1",
	    "169.254.1.1",
	    "100.64.0.1",
	    "0.0.0.0",
	    "224.0.0.1",
	    "255.255.255.255",
	    "::1",
	    "::",
	    "fd00::1",
	    "fc12::3",
	    "fe80::1",
	    "ff02::1",
	    "::ffff:127.0.0.1",
	    "::ffff:10.1.2.3",
	    "198.18.0.1",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++)
		assert_int_equal(ipaddr_is_private(priv[i]), 1);
}

static void test_public_and_names(void **state)
{
	(void)state;
	assert_int_equal(ipaddr_is_private("8.8.8.8"), 0);
	assert_int_equal(ipaddr_is_private("172.32.0.1"), 0);
	assert_int_equal(ipaddr_is_private("100.128.0.1"), 0);
	assert_int_equal(ipaddr_is_private("2001:db8::1"), 0);
	assert_int_equal(ipaddr_is_private("::ffff:8.8.8.8"), 0);
	assert_int_equal(ipaddr_is_private("mail.example.com"), -1);
	assert_int_equal(ipaddr_is_private("127.0.0.1.example"), -1);
	assert_int_equal(ipaddr_is_private(""), -1);
	assert_int_equal(ipaddr_is_private(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_private),
	    cmocka_unit_test(test_public_and_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
