/* test_ks_route.c - unit tests for the key server's route body check (keyserver/route_json.c,
 * ks_route_parse, ks_route_payload): what an admin's PUT of a route may hold, how it is
 * normalised, and the payload the signer signs from a stored route. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "route_json.h"

/* A well-formed pin: "sha256:" and the base64 of 32 bytes. */
#define PIN "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

static json_t *body_of(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);

	if (j == NULL)
		fail_msg("bad test JSON %s: %s", text, je.text);
	return j;
}

/* Parse text for self; on success return the route, else check the error. */
static int parse(const char *text, const char *self, int domain_scope, struct ks_route *rt,
                 struct err *e)
{
	json_t *body = body_of(text);
	int rc;

	err_clear(e);
	rc = ks_route_parse(body, self, domain_scope, rt, e);
	json_decref(body);
	return rc;
}

static void expect_refused(const char *text, const char *self, int domain_scope, const char *code,
                           const char *msg_part)
{
	struct ks_route rt;
	struct err e;

	if (parse(text, self, domain_scope, &rt, &e) != -1)
		fail_msg("accepted: %s", text);
	if (e.kind != ERR_INPUT || strcmp(e.code, code) != 0 || strstr(e.msg, msg_part) == NULL)
		fail_msg("%s: want %s \"...%s...\", got kind %d %s \"%s\"", text, code, msg_part,
		         e.kind, e.code, e.msg);
	ks_route_free(&rt);
}

static void test_servers_normalised(void **state)
{
	struct ks_route rt;
	struct err e;
	char *dump;

	/* The host is lowercased, every member made explicit with its default. */
	assert_int_equal(parse("{\"servers\": [{\"host\": \"MX.Example.COM\", \"pin\": \"" PIN
	                       "\"},"
	                       " {\"host\": \"mx2.example.com\", \"port\": 2525, \"priority\": 20,"
	                       " \"weight\": 0, \"pin\": \"" PIN "\"}], \"ttl\": 600}",
	                       "alice@example.com", 0, &rt, &e),
	                 0);
	assert_null(rt.alias);
	assert_int_equal(rt.ttl, 600);
	dump = json_dumps(rt.servers, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(dump, "[{\"host\":\"mx.example.com\",\"pin\":\"" PIN
	                          "\",\"port\":25,\"priority\":10,\"weight\":1},"
	                          "{\"host\":\"mx2.example.com\",\"pin\":\"" PIN
	                          "\",\"port\":2525,\"priority\":20,\"weight\":0}]");
	free(dump);
	ks_route_free(&rt);
	assert_null(rt.servers);
}

static void test_alias(void **state)
{
	struct ks_route rt;
	struct err e;

	assert_int_equal(parse("{\"alias\": \"Bob@Example.org\"}", "alice@example.com", 0, &rt, &e),
	                 0);
	assert_string_equal(rt.alias, "bob@example.org");
	assert_null(rt.servers);
	assert_int_equal(rt.ttl, 3600); /* the default */
	ks_route_free(&rt);

	/* A domain's default route aliases to a domain, not an address. */
	assert_int_equal(
	    parse("{\"alias\": \"example.net\", \"ttl\": 60}", "example.com", 1, &rt, &e), 0);
	assert_string_equal(rt.alias, "example.net");
	assert_int_equal(rt.ttl, 60);
	ks_route_free(&rt);
	expect_refused("{\"alias\": \"bob@example.net\"}", "example.com", 1, "bad_route",
	               "alias bob@example.net: ");
	expect_refused("{\"alias\": \"example.net\"}", "alice@example.com", 0, "bad_route",
	               "alias example.net: the address has no '@'");

	/* An alias of itself is a loop, in any case of letters. */
	expect_refused("{\"alias\": \"Alice@example.com\"}", "alice@example.com", 0, "route_loop",
	               "alice@example.com cannot be an alias of itself");
	expect_refused("{\"alias\": \"EXAMPLE.COM\"}", "example.com", 1, "route_loop",
	               "cannot be an alias of itself");
}

static void test_shape_refused(void **state)
{
	const char *self = "alice@example.com";

	expect_refused("{}", self, 0, "bad_route", "either \"servers\" or \"alias\"");
	expect_refused("{\"alias\": \"b@example.com\", \"servers\": []}", self, 0, "bad_route",
	               "not both or neither");
	expect_refused("{\"alias\": 5}", self, 0, "bad_request", "\"alias\" must be a string");
	expect_refused("{\"alias\": \"b@example.com\", \"via\": 1}", self, 0, "bad_route",
	               "a route has no member \"via\"");
	/* The members of a user's signed request are known only with its type. */
	expect_refused("{\"alias\": \"b@example.com\", \"issued\": 1}", self, 0, "bad_route",
	               "no member \"issued\"");
	expect_refused("{\"servers\": []}", self, 0, "bad_route", "must list 1 to 32 servers");
	expect_refused("{\"servers\": {}}", self, 0, "bad_route", "must list 1 to 32 servers");
	expect_refused("{\"servers\": [1]}", self, 0, "bad_route", "servers[0] must be an object");
}

static void test_ttl_bounds(void **state)
{
	static const char *const bad[] = {"59",       "86401",  "-1",   "0",
	                                  "\"3600\"", "3600.0", "null", "true"};
	struct ks_route rt;
	struct err e;
	char text[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "{\"alias\": \"b@example.com\", \"ttl\": %s}", bad[i]);
		expect_refused(text, "alice@example.com", 0, "bad_route",
		               "\"ttl\" must be a whole number of seconds from 60 to 86400");
	}
	assert_int_equal(
	    parse("{\"alias\": \"b@example.com\", \"ttl\": 86400}", "a@example.com", 0, &rt, &e),
	    0);
	assert_int_equal(rt.ttl, 86400);
	ks_route_free(&rt);
}

static void test_server_members_refused(void **state)
{
	static const struct {
		const char *server, *msg;
	} cases[] = {
	    {"{\"pin\": \"" PIN "\"}", "servers[0] needs a \"host\" name"},
	    {"{\"host\": 7, \"pin\": \"" PIN "\"}", "servers[0] needs a \"host\" name"},
	    {"{\"host\": \"mx.example.com\"}", "servers[0].pin must be sha256:"},
	    {"{\"host\": \"mx.example.com\", \"pin\": \"sha1:AAAA\"}", "servers[0].pin must be"},
	    /* 31 bytes of base64: the length of the digest is checked too */
	    {"{\"host\": \"mx.example.com\", \"pin\": "
	     "\"sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuA==\"}",
	     "servers[0].pin must be"},
	    {"{\"host\": \"mx.example.com\", \"pin\": \"" PIN "\", \"port\": 0}",
	     "servers[0].port must be a whole number from 1 to 65535"},
	    {"{\"host\": \"mx.example.com\", \"pin\": \"" PIN "\", \"port\": 65536}",
	     "servers[0].port must be a whole number from 1 to 65535"},
	    {"{\"host\": \"mx.example.com\", \"pin\": \"" PIN "\", \"port\": \"25\"}",
	     "servers[0].port must be"},
	    {"{\"host\": \"mx.example.com\", \"pin\": \"" PIN "\", \"priority\": -1}",
	     "servers[0].priority must be a whole number from 0 to 65535"},
	    {"{\"host\": \"mx.example.com\", \"pin\": \"" PIN "\", \"weight\": 65536}",
	     "servers[0].weight must be a whole number from 0 to 65535"},
	    {"{\"host\": \"mx.example.com\", \"pin\": \"" PIN "\", \"tls\": false}",
	     "servers[0] has an unknown member \"tls\""},
	};
	char text[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "{\"servers\": [%s]}", cases[i].server);
		expect_refused(text, "alice@example.com", 0, "bad_route", cases[i].msg);
	}
	/* The index names the offending entry. */
	expect_refused("{\"servers\": [{\"host\": \"mx.example.com\", \"pin\": \"" PIN "\"},"
	               " {\"host\": \"mx.example.com\", \"pin\": \"" PIN "\", \"port\": 0}]}",
	               "alice@example.com", 0, "bad_route", "servers[1].port");
}

/* A bad host is reported as the route's error, with the name check's reason after it:
 * "servers[0].host: <why>", once, and the reason intact. */
static void test_server_host_reason(void **state)
{
	struct ks_route rt;
	struct err e;

	assert_int_equal(parse("{\"servers\": [{\"host\": \"localhost\", \"pin\": \"" PIN "\"}]}",
	                       "alice@example.com", 0, &rt, &e),
	                 -1);
	assert_string_equal(e.code, "bad_route");
	assert_string_equal(e.msg, "servers[0].host: the domain name must have at least two labels "
	                           "(like example.com)");
	ks_route_free(&rt);

	assert_int_equal(parse("{\"alias\": \"not an address\"}", "alice@example.com", 0, &rt, &e),
	                 -1);
	assert_string_equal(e.code, "bad_route");
	assert_string_equal(e.msg, "alias not an address: the address has no '@'; write it as "
	                           "local@domain");
	ks_route_free(&rt);
}

static void test_too_many_servers(void **state)
{
	json_t *body = json_object(), *arr = json_array();
	struct ks_route rt;
	struct err e = {0};

	for (int i = 0; i < 33; i++)
		json_array_append_new(
		    arr, json_pack("{s:s, s:s}", "host", "mx.example.com", "pin", PIN));
	json_object_set_new(body, "servers", arr);
	assert_int_equal(ks_route_parse(body, "alice@example.com", 0, &rt, &e), -1);
	assert_string_equal(e.code, "bad_route");
	ks_route_free(&rt);

	json_array_remove(arr, 0); /* 32 is the limit, and allowed */
	err_clear(&e);
	assert_int_equal(ks_route_parse(body, "alice@example.com", 0, &rt, &e), 0);
	assert_int_equal(json_array_size(rt.servers), 32);
	ks_route_free(&rt);
	json_decref(body);
}

/* The signed answer's payload: scope from the route's own name, expiry a grace hour past
 * the TTL, and the route's content (servers or alias) as stored. */
static void test_payload(void **state)
{
	struct ks_domain d = {.name = "example.com"};
	struct ks_route rt = {.alias = "bob@example.com", .ttl = 600};
	json_t *p;
	const char *issued, *expires;
	struct tm ti = {0}, te = {0};

	(void)state;
	snprintf(rt.scope_name, sizeof(rt.scope_name), "%s", "alice@example.com");
	snprintf(rt.updated, sizeof(rt.updated), "%s", "2026-01-02T03:04:05Z");
	p = ks_route_payload(&d, "alice@example.com", &rt);
	assert_non_null(p);
	assert_string_equal(json_string_value(json_object_get(p, "type")), "anchor-route");
	assert_string_equal(json_string_value(json_object_get(p, "scope")), "address");
	assert_string_equal(json_string_value(json_object_get(p, "alias")), "bob@example.com");
	assert_null(json_object_get(p, "servers"));
	assert_int_equal(json_integer_value(json_object_get(p, "ttl")), 600);
	issued = json_string_value(json_object_get(p, "issued"));
	expires = json_string_value(json_object_get(p, "expires"));
	assert_non_null(strptime(issued, "%Y-%m-%dT%H:%M:%SZ", &ti));
	assert_non_null(strptime(expires, "%Y-%m-%dT%H:%M:%SZ", &te));
	assert_int_equal((long long)(timegm(&te) - timegm(&ti)), 600 + 3600);
	json_decref(p);

	/* The domain's default, asked for an address of it. */
	snprintf(rt.scope_name, sizeof(rt.scope_name), "%s", "example.com");
	p = ks_route_payload(&d, "carol@example.com", &rt);
	assert_string_equal(json_string_value(json_object_get(p, "scope")), "domain");
	assert_string_equal(json_string_value(json_object_get(p, "name")), "carol@example.com");
	json_decref(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_servers_normalised),
	    cmocka_unit_test(test_alias),
	    cmocka_unit_test(test_shape_refused),
	    cmocka_unit_test(test_ttl_bounds),
	    cmocka_unit_test(test_server_members_refused),
	    cmocka_unit_test(test_server_host_reason),
	    cmocka_unit_test(test_too_many_servers),
	    cmocka_unit_test(test_payload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
