/* test_tls_policy.c - the TLS settings mapped to both libraries: the defaults, modern,
 * explicit lists in their order, every refused value, and an OpenSSL context that ends up
 * with the versions and options asked for.  The listeners themselves are
 * test_tls_policy.py (testssl.sh and openssl s_client against every daemon). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "pki/tls_policy.h"

static void test_defaults_are_intermediate(void **state)
{
	struct tls_policy p;
	struct err e = {0};

	(void)state;
	assert_int_equal(tls_policy_make(&p, NULL, &e), 0);
	assert_int_equal(p.min_version, TLS_POLICY_TLS12);
	assert_int_equal(p.max_version, TLS_POLICY_TLS13);
	assert_non_null(strstr(p.gnutls, "%SERVER_PRECEDENCE"));
	assert_non_null(strstr(p.gnutls, ":-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"));
	assert_non_null(strstr(p.gnutls, ":-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"));
	assert_non_null(strstr(p.gnutls, "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1"));
	assert_null(strstr(p.gnutls, "CBC"));
	assert_string_equal(
	    p.ossl_suites,
	    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
	assert_string_equal(p.ossl_groups, "X25519:P-256");
	assert_non_null(strstr(p.ossl_ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256"));
	assert_null(strstr(p.ossl_ciphers, "CBC"));
}

static void test_modern_and_lists(void **state)
{
	struct tls_policy_conf c = {"modern", " chacha20-poly1305 , AES-256-GCM", "P-384:X25519"};
	struct tls_policy p;
	struct err e = {0};

	(void)state;
	assert_int_equal(tls_policy_make(&p, &c, &e), 0);
	assert_int_equal(p.min_version, TLS_POLICY_TLS13);
	assert_null(strstr(p.gnutls, "VERS-TLS1.2"));
	assert_string_equal(p.ossl_suites, "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384");
	assert_string_equal(p.ossl_groups, "P-384:X25519");
	assert_non_null(strstr(p.gnutls, ":+CHACHA20-POLY1305:+AES-256-GCM:"));
	assert_non_null(strstr(p.gnutls, "+GROUP-SECP384R1:+GROUP-X25519"));
	c.ciphers = ""; /* empty is unset */
	assert_int_equal(tls_policy_make(&p, &c, &e), 0);
	assert_non_null(strstr(p.ossl_suites, "TLS_AES_128_GCM_SHA256"));
}

static void test_refused_values(void **state)
{
	static const struct {
		struct tls_policy_conf c;
		const char *msg;
	} bad[] = {
	    {{"old", NULL, NULL}, "tls_profile = old: must be modern"},
	    {{"", NULL, NULL}, "tls_profile = : must be modern"},
	    {{"intermediate", "AES-128-CBC", NULL}, "unknown or refused name 'AES-128-CBC'"},
	    {{NULL, "ECDHE-ECDSA-AES128-GCM-SHA256", NULL}, "tls_ciphers: unknown or refused"},
	    {{NULL, "AES-128-GCM::AES-256-GCM", NULL}, "expected names separated by ':'"},
	    {{NULL, "AES-128-GCM,aes-128-gcm", NULL}, "'aes-128-gcm' named twice"},
	    {{NULL, NULL, "ffdhe2048"}, "tls_groups: unknown or refused name 'ffdhe2048'"},
	    {{NULL, NULL, "X25519:"}, "tls_groups = X25519:: expected names"},
	};
	struct tls_policy p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err e = {0};

		assert_int_equal(tls_policy_make(&p, &bad[i].c, &e), -1);
		assert_string_equal(e.code, "bad_config");
		if (strstr(e.msg, bad[i].msg) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e.msg, bad[i].msg);
	}
}

static void test_openssl_context(void **state)
{
	struct tls_policy_conf c = {"modern", NULL, NULL};
	struct tls_policy p;
	struct err e = {0};
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	(void)state;
	assert_non_null(ctx);
	assert_int_equal(tls_policy_make(&p, NULL, &e), 0);
	assert_int_equal(tls_policy_apply_openssl(&p, ctx, &e), 0);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_CIPHER_SERVER_PREFERENCE);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
	assert_int_equal(tls_policy_make(&p, &c, &e), 0);
	assert_int_equal(tls_policy_apply_openssl(&p, ctx, &e), 0);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
	SSL_CTX_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_are_intermediate),
	    cmocka_unit_test(test_modern_and_lists),
	    cmocka_unit_test(test_refused_values),
	    cmocka_unit_test(test_openssl_context),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
