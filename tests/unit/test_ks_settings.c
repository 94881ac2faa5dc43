/* test_ks_settings.c - unit tests for anchor-keyserver's settings (keyserver/settings.c): the
 * table's defaults and bounds, and the cross-parameter checks of ks_settings_check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http/http_settings.h"
#include "settings.h"

#define HASH "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

/* Load text over the defaults; return conf_load_buffer's result, then the check's. */
static int load(const char *text, struct ks_settings *s, struct err *e)
{
	memset(s, 0, sizeof(*s));
	err_clear(e);
	if (conf_load_buffer(ks_settings_table, s, "ks.conf", text, strlen(text), e) < 0)
		return -1;
	return ks_settings_check(s, e);
}

static void test_defaults(void **state)
{
	struct ks_settings s;
	struct err e;

	/* The defaults alone ask for TLS files. */
	assert_int_equal(load("", &s, &e), -1);
	assert_string_equal(e.code, "bad_config");
	assert_non_null(strstr(e.msg, "tls_cert_file and tls_key_file are required"));
	assert_string_equal(s.listen_address, "127.0.0.1");
	assert_int_equal(s.listen_port, 8443);
	assert_int_equal(s.db_pool_size, 8);
	assert_int_equal(s.max_body, 64 * 1024);
	assert_int_equal(s.conn_timeout, 30);
	assert_int_equal(s.cache_max_age, 300);
	assert_int_equal(s.cert_days, 365);
	assert_int_equal(s.renew_window, 0);
	assert_int_equal(s.renew_min_interval, 3600);
	assert_int_equal(s.renew_max_lifetime, 0);
	assert_int_equal(s.allow_plain_http, 0);
	assert_int_equal(s.webhook_allow_http, 0);
	assert_null(s.operator_token_hash);
	assert_string_equal(s.issuer_kek_file, "/var/lib/anchor/issuer.kek");
	conf_free(ks_settings_table, &s);

	assert_int_equal(load("tls_cert_file = c.pem\ntls_key_file = k.pem\n", &s, &e), 0);
	conf_free(ks_settings_table, &s);
	assert_int_equal(load("allow_plain_http = yes\n", &s, &e), 0);
	conf_free(ks_settings_table, &s);
	/* One of the two is not enough. */
	assert_int_equal(load("tls_cert_file = c.pem\n", &s, &e), -1);
	assert_string_equal(e.code, "bad_config");
	conf_free(ks_settings_table, &s);
}

/* The server's settings reach the HTTP layer by their shared names (lib/http/http_settings). */
static void test_http_config(void **state)
{
	struct http_config hc;
	struct ks_settings s;
	struct err e;

	assert_int_equal(load("tls_cert_file = c.pem\ntls_key_file = k.pem\nlisten_port = 9443\n"
	                      "http_threads = 3\nrate_limit = 0\nrequest_timeout = 5s\n",
	                      &s, &e),
	                 0);
	assert_int_equal(http_config_from_settings(&hc, ks_settings_table, &s, &e), 0);
	assert_string_equal(hc.listen_addr, "127.0.0.1");
	assert_int_equal(hc.port, 9443);
	assert_string_equal(hc.tls_cert_file, "c.pem");
	assert_string_equal(hc.tls_key_file, "k.pem");
	assert_int_equal(hc.allow_plain_http, 0);
	assert_int_equal(hc.max_body, 64 * 1024);
	assert_int_equal(hc.threads, 3);
	assert_int_equal(hc.max_connections, s.max_connections);
	assert_int_equal(hc.max_connections_per_ip, s.max_connections_per_ip);
	assert_int_equal(hc.conn_timeout, 30);
	assert_int_equal(hc.request_timeout, 5);
	assert_int_equal(hc.tls_ticket_rotation, 3600);
	assert_true(hc.rate_per_sec == 0.0);
	assert_true(hc.rate_burst == (double)s.rate_burst);
	assert_null(hc.dispatch);
	conf_free(ks_settings_table, &s);
}

static void test_operator_token_hash(void **state)
{
	static const char *const bad[] = {
	    "operator_token_hash = "
	    "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
	    "operator_token_hash = 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0",
	    "operator_token_hash = "
	    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a081",
	    "operator_token_hash = "
	    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0g",
	    "operator_token_hash = secret",
	};
	struct ks_settings s;
	struct err e;

	assert_int_equal(load("allow_plain_http = yes\noperator_token_hash = " HASH "\n", &s, &e),
	                 0);
	assert_string_equal(s.operator_token_hash, HASH);
	conf_free(ks_settings_table, &s);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text), "allow_plain_http = yes\n%s\n", bad[i]);
		if (load(text, &s, &e) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(e.kind, ERR_INPUT);
		assert_string_equal(e.code, "bad_config");
		assert_non_null(
		    strstr(e.msg, "operator_token_hash must be 64 lowercase hex digits"));
		conf_free(ks_settings_table, &s);
	}
}

static void test_log_level(void **state)
{
	static const char *const good[] = {"error", "warning", "info", "debug"};
	struct ks_settings s;
	struct err e;
	char text[128];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "allow_plain_http = yes\nlog_level = %s\n", good[i]);
		assert_int_equal(load(text, &s, &e), 0);
		conf_free(ks_settings_table, &s);
	}
	assert_int_equal(load("allow_plain_http = yes\nlog_level = loud\n", &s, &e), -1);
	assert_string_equal(e.code, "bad_config");
	assert_string_equal(e.msg, "log_level = loud: must be error, warning, info or debug");
	conf_free(ks_settings_table, &s);
}

/* Bounds come from the table; the file loader reports them with file and line. */
static void test_bounds(void **state)
{
	static const struct {
		const char *line;
		int ok;
	} cases[] = {
	    {"db_pool_size = 0", 0},
	    {"db_pool_size = 256", 1},
	    {"db_pool_size = 257", 0},
	    {"listen_port = 0", 1},
	    {"listen_port = 65536", 0},
	    {"max_body = 1k", 1},
	    {"max_body = 1023", 0},
	    {"max_body = 16m", 1},
	    {"max_body = 17m", 0},
	    {"cert_days = 825", 1},
	    {"cert_days = 826", 0},
	    {"cache_max_age = 1d", 1},
	    {"cache_max_age = 2d", 0},
	    {"rate_limit = 0", 1},
	    {"rate_burst = 0", 0},
	    {"webhook_max_attempts = 0", 0},
	    {"no_such_setting = 1", 0},
	    {"renew_window = 825d", 1},
	    {"renew_window = 826d", 0},
	    {"renew_window = -1", 0},
	    {"renew_min_interval = 0", 1},
	    {"renew_min_interval = 366d", 0},
	    {"renew_max_lifetime = 826d", 0},
	};
	struct ks_settings s;
	struct err e;
	char text[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "allow_plain_http = yes\n%s\n", cases[i].line);
		int rc = load(text, &s, &e);
		if (cases[i].ok ? rc != 0 : rc != -1)
			fail_msg("%s: rc %d (%s)", cases[i].line, rc, e.msg);
		if (!cases[i].ok) {
			assert_int_equal(e.kind, ERR_INPUT);
			assert_int_equal(strncmp(e.msg, "ks.conf:2: ", 11), 0);
		}
		conf_free(ks_settings_table, &s);
	}
}

/* A renewed certificate lives whole days: under a day is refused, 0 means cert_days. */
static void test_renew_max_lifetime(void **state)
{
	struct ks_settings s;
	struct err e;

	assert_int_equal(load("allow_plain_http = yes\nrenew_max_lifetime = 12h\n", &s, &e), -1);
	assert_string_equal(e.code, "bad_config");
	assert_non_null(strstr(e.msg, "renew_max_lifetime"));
	conf_free(ks_settings_table, &s);
	assert_int_equal(load("allow_plain_http = yes\nrenew_max_lifetime = 1d\n", &s, &e), 0);
	assert_int_equal(s.renew_max_lifetime, 86400);
	conf_free(ks_settings_table, &s);
	assert_int_equal(load("allow_plain_http = yes\nrenew_max_lifetime = 0\n", &s, &e), 0);
	conf_free(ks_settings_table, &s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),           cmocka_unit_test(test_operator_token_hash),
	    cmocka_unit_test(test_log_level),          cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_renew_max_lifetime), cmocka_unit_test(test_http_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
