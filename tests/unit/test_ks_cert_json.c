/* test_ks_cert_json.c - unit tests for the key server's certificate and log entry objects
 * (keyserver/cert_json.c): the members a certificate is published with, the shape an
 * erased one keeps (PROTOCOL.md §10.1), revocation reasons by name, and the log entry
 * with and without the admin's salt and name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cert_json.h"

static void fill(struct ks_cert *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->key_id, sizeof(c->key_id), "0b6f5c0e-4d3a-4c8e-9a57-6a1f1d0e8a11");
	snprintf(c->kind, sizeof(c->kind), "user");
	snprintf(c->purpose, sizeof(c->purpose), "smime");
	snprintf(c->algorithm, sizeof(c->algorithm), "p256");
	snprintf(c->status, sizeof(c->status), "current");
	snprintf(c->fingerprint, sizeof(c->fingerprint), "sha256:00");
	snprintf(c->serial, sizeof(c->serial), "0a");
	snprintf(c->not_before, sizeof(c->not_before), "2026-01-01T00:00:00Z");
	snprintf(c->not_after, sizeof(c->not_after), "2027-01-01T00:00:00Z");
	snprintf(c->issued, sizeof(c->issued), "2026-01-01T00:00:01Z");
	c->name = "alice@example.com";
	c->pem = "-----BEGIN CERTIFICATE-----\n";
	c->log_seq = 3;
	c->domain_id = 7;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Every member in the documented order; none is the store's own (log_seq, domain id). */
static void test_cert_members(void **state)
{
	static const char *const order[] = {"key_id",      "kind",        "purpose", "name",
	                                    "algorithm",   "fingerprint", "serial",  "not_before",
	                                    "not_after",   "status",      "issued",  "superseded",
	                                    "certificate", "revocation"};
	struct ks_cert c;
	const char *key;
	json_t *o, *v;
	size_t i = 0;

	(void)state;
	fill(&c);
	o = ks_cert_json(&c);
	assert_non_null(o);
	json_object_foreach(o, key, v)
	{
		assert_true(i < sizeof(order) / sizeof(order[0]));
		assert_string_equal(key, order[i++]);
	}
	assert_int_equal(i, sizeof(order) / sizeof(order[0]));
	assert_string_equal(str(o, "name"), "alice@example.com");
	assert_true(json_is_null(json_object_get(o, "superseded")));
	assert_true(json_is_null(json_object_get(o, "revocation")));
	json_decref(o);
}

static void test_revocation_reason(void **state)
{
	struct ks_cert c;
	json_t *o, *rv;

	(void)state;
	fill(&c);
	snprintf(c.status, sizeof(c.status), "revoked");
	snprintf(c.superseded, sizeof(c.superseded), "2026-02-01T00:00:00Z");
	c.revocation = (struct ks_cert_revocation){.revoked = 1, .reason = 1};
	snprintf(c.revocation.method, sizeof(c.revocation.method), "secret");
	snprintf(c.revocation.time, sizeof(c.revocation.time), "2026-03-01T00:00:00Z");
	o = ks_cert_json(&c);
	rv = json_object_get(o, "revocation");
	assert_string_equal(str(rv, "reason"), "keyCompromise");
	assert_string_equal(str(rv, "method"), "secret");
	assert_string_equal(str(rv, "time"), "2026-03-01T00:00:00Z");
	assert_string_equal(str(o, "superseded"), "2026-02-01T00:00:00Z");
	json_decref(o);
	/* A code no CRL of ours carries is named, not dropped. */
	c.revocation.reason = 42;
	o = ks_cert_json(&c);
	assert_string_equal(str(json_object_get(o, "revocation"), "reason"), "unspecified");
	json_decref(o);
}

/* Erased: what the CRL and the log need, nothing that names the address. */
static void test_erased_shape(void **state)
{
	static const char *const keep[] = {"key_id", "kind",   "purpose",    "fingerprint",
	                                   "serial", "status", "revocation", "erased"};
	struct ks_cert c;
	json_t *o;

	(void)state;
	fill(&c);
	c.name = NULL;
	c.pem = NULL;
	snprintf(c.erased, sizeof(c.erased), "2026-04-01T00:00:00Z");
	o = ks_cert_json(&c);
	assert_int_equal(json_object_size(o), sizeof(keep) / sizeof(keep[0]));
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		assert_non_null(json_object_get(o, keep[i]));
	assert_null(json_object_get(o, "name"));
	assert_null(json_object_get(o, "certificate"));
	assert_string_equal(str(o, "erased"), "2026-04-01T00:00:00Z");
	json_decref(o);
}

static void test_log_entry(void **state)
{
	struct ks_log_entry en = {.seq = 5, .leaf = "{}", .type = "issued"};
	struct ks_log_page page = {.n = 1, .v = &en};
	json_t *o, *arr;

	(void)state;
	snprintf(en.leaf_hash, sizeof(en.leaf_hash), "AAAA");
	o = ks_log_entry_json(&en);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 5);
	assert_null(json_object_get(o, "key_id"));
	assert_null(json_object_get(o, "salt"));
	assert_null(json_object_get(o, "name"));
	json_decref(o);
	snprintf(en.key_id, sizeof(en.key_id), "0b6f5c0e-4d3a-4c8e-9a57-6a1f1d0e8a11");
	en.salt = "00ff";
	en.name = "alice@example.com";
	arr = ks_log_page_json(&page);
	assert_int_equal(json_array_size(arr), 1);
	o = json_array_get(arr, 0);
	assert_string_equal(str(o, "key_id"), en.key_id);
	assert_string_equal(str(o, "salt"), "00ff");
	assert_string_equal(str(o, "name"), "alice@example.com");
	json_decref(arr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cert_members),
	    cmocka_unit_test(test_revocation_reason),
	    cmocka_unit_test(test_erased_shape),
	    cmocka_unit_test(test_log_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
