/*
 * test_relay_control.c - the relay's control API (relay/control.c): signed
 * request verification offline (lib/certauth over a fake network that plays the
 * domain's DNS pins and a key server calling every key current; certauth's own
 * decisions are in test_certauth.c), and the HTTPS server with the admin token.
 * The full user-signed round trip needs DNS discovery: that is in
 * tests/integration/test_relay_control.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/cert.h"
#include "dns/certauth.h"
#include "control.h"
#include "pki/crypto.h"
#include "pki/jws.h"

/* ---- a domain with two users ---- */

struct user {
	EVP_PKEY *key;
	X509 *cert;
};

static EVP_PKEY *root_key, *issuer_key;
static X509 *root, *issuer;
static char pin[CRYPTO_PIN_MAX];
static struct user bob, carol;
static char dir[64];

static void make_user(struct user *u, const char *addr)
{
	struct err e = {0};
	struct cert_issue req = {.purpose = CERT_PURPOSE_SMIME,
	                         .name = addr,
	                         .key_id = "7d0a0c6e-9a43-4c55-8b0e-3f4a1c2b5d6e",
	                         .days = 30};

	u->key = crypto_key_generate(KEY_ED25519, 0, &e);
	assert_non_null(u->key);
	u->cert = cert_issue_leaf(&req, u->key, issuer, issuer_key, &e);
	if (u->cert == NULL)
		fail_msg("leaf: %s", e.msg);
}

static void iso(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A signed request by u for address, as anchorctl makes it. */
static char *sign_req(const struct user *u, const char *address, const char *method,
                      const char *path, json_t *body, time_t issued)
{
	X509 *chain[3] = {u->cert, issuer, root};
	struct err e = {0};
	char when[32], *text, *jws;
	json_t *p;

	iso(issued, when);
	p = json_pack("{s:s, s:s, s:s, s:s, s:O?, s:s}", "type", "anchor-relay-request", "address",
	              address, "method", method, "path", path, "body", body, "issued", when);
	assert_non_null(p);
	text = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(p);
	jws = jws_sign(text, strlen(text), u->key, chain, 3, "anchor-relay-request+jws", &e);
	free(text);
	if (jws == NULL)
		fail_msg("sign: %s", e.msg);
	return jws;
}

/* ---- a TLS certificate for the server ---- */

static void make_tls_cert(char *cert_path, char *key_path, size_t len)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_EXTENSION *ext;
	X509V3_CTX ctx;
	FILE *f;

	assert_non_null(key);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, key, EVP_sha256()) != 0);
	snprintf(cert_path, len, "%s/tls.pem", dir);
	snprintf(key_path, len, "%s/tls.key", dir);
	assert_non_null(f = fopen(cert_path, "w"));
	PEM_write_X509(f, x);
	fclose(f);
	assert_non_null(f = fopen(key_path, "w"));
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
}

static int group_setup(void **state)
{
	struct err e = {0};

	snprintf(dir, sizeof(dir), "/tmp/test_relay_control_XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	issuer_key = crypto_key_generate(KEY_ED25519, 0, &e);
	root = cert_make_root(root_key, "example.com", 30, &e);
	issuer = cert_make_issuer(issuer_key, root, root_key, "example.com", 30, &e);
	if (root == NULL || issuer == NULL || crypto_key_pin(root_key, pin, &e) < 0)
		return -1;
	make_user(&bob, "bob@example.com");
	make_user(&carol, "carol@example.com");
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	EVP_PKEY_free(root_key);
	EVP_PKEY_free(issuer_key);
	X509_free(root);
	X509_free(issuer);
	EVP_PKEY_free(bob.key);
	X509_free(bob.cert);
	EVP_PKEY_free(carol.key);
	X509_free(carol.cert);
	curl_global_cleanup();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- offline verification ---- */

static const char *served_pin; /* the pin the fake DNS publishes for example.com */

static int fake_discover(void *ctx, const char *domain, struct discover_result **out, struct err *e)
{
	struct discover_result *r = calloc(1, sizeof(*r));

	(void)ctx;
	(void)e;
	assert_non_null(r);
	*out = r;
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	r->status = DISCOVER_ANCHORED;
	r->npins = 1;
	snprintf(r->pins[0], sizeof(r->pins[0]), "%s", served_pin);
	return 0;
}

/* The key server: every certificate asked about is current. */
static int fake_keyserver_get(void *ctx, const struct discover_result *d, const char *path,
                              char **body, struct err *e)
{
	const char *prefix = "/v1/fingerprints/";
	json_t *o;

	(void)ctx;
	(void)d;
	(void)e;
	assert_true(strncmp(path, prefix, strlen(prefix)) == 0);
	o = json_pack("{s:s, s:s}", "fingerprint", path + strlen(prefix), "status", "current");
	*body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return 0;
}

static int verify_pinned(const char *jws, const char *method, const char *path, time_t now,
                         const char *with_pin, struct relay_control_signed *r, struct err *e)
{
	struct certauth_net net = {fake_discover, fake_keyserver_get, NULL, NULL};
	struct certauth *a = certauth_new(NULL, NULL, e);
	int rc;

	assert_non_null(a);
	certauth_set_net(a, &net);
	served_pin = with_pin;
	rc = relay_control_verify_request(a, jws, strlen(jws), method, path, now, r, e);
	certauth_free(a);
	return rc;
}

static int verify(const char *jws, const char *method, const char *path, time_t now,
                  struct relay_control_signed *r, struct err *e)
{
	return verify_pinned(jws, method, path, now, pin, r, e);
}

static void test_verify_good(void **state)
{
	time_t now = time(NULL);
	json_t *body = json_pack("{s:s}", "category", "spam");
	char *jws = sign_req(&bob, "Bob@Example.com", "POST", "/v1/complaints", body, now - 10);
	struct relay_control_signed r, r2;
	struct err e = {0};
	char bob_pin[CRYPTO_PIN_MAX];

	if (verify(jws, "POST", "/v1/complaints", now, &r, &e) < 0)
		fail_msg("verify: %s %s", e.code, e.msg);
	assert_string_equal(r.address, "bob@example.com");
	assert_int_equal(r.issued, (long long)now - 10);
	assert_true(json_equal(r.body, body));
	assert_int_equal(crypto_key_pin(bob.key, bob_pin, &e), 0);
	assert_string_equal(r.key_pin, bob_pin);
	/* the same text has the same digest; another request another */
	assert_int_equal(verify(jws, "POST", "/v1/complaints", now, &r2, &e), 0);
	assert_memory_equal(r.digest, r2.digest, 32);
	relay_control_signed_clear(&r2);
	free(jws);
	jws = sign_req(&bob, "bob@example.com", "POST", "/v1/complaints", body, now - 10);
	assert_int_equal(verify(jws, "POST", "/v1/complaints", now, &r2, &e), 0);
	relay_control_signed_clear(&r2);
	relay_control_signed_clear(&r);
	json_decref(body);
	free(jws);
}

static void test_verify_refusals(void **state)
{
	time_t now = time(NULL);
	const char *path = "/v1/lists/bob@example.com/trust/alice@example.org";
	const char *other_pin = "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	struct relay_control_signed r;
	struct err e = {0};
	char *jws = sign_req(&bob, "bob@example.com", "PUT", path, NULL, now);

	/* bound to the method and the path */
	assert_int_equal(verify(jws, "DELETE", path, now, &r, &e), -1);
	assert_string_equal(e.code, "request_mismatch");
	assert_int_equal(
	    verify(jws, "PUT", "/v1/lists/bob@example.com/block/alice@example.org", now, &r, &e),
	    -1);
	assert_string_equal(e.code, "request_mismatch");
	/* and to the time */
	assert_int_equal(verify(jws, "PUT", path, now + RELAY_CONTROL_WINDOW + 5, &r, &e), -1);
	assert_string_equal(e.code, "stale_request");
	assert_int_equal(verify(jws, "PUT", path, now - RELAY_CONTROL_WINDOW - 5, &r, &e), -1);
	assert_string_equal(e.code, "stale_request");
	/* chain to another domain's root */
	assert_int_equal(verify_pinned(jws, "PUT", path, now, other_pin, &r, &e), -1);
	assert_string_equal(e.code, "pin_mismatch");
	free(jws);

	/* carol signing for bob */
	jws = sign_req(&carol, "bob@example.com", "PUT", path, NULL, now);
	assert_int_equal(verify(jws, "PUT", path, now, &r, &e), -1);
	assert_string_equal(e.code, "wrong_signer");
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	free(jws);

	/* tampered */
	jws = sign_req(&bob, "bob@example.com", "PUT", path, NULL, now);
	jws[strlen(jws) - 5] = jws[strlen(jws) - 5] == 'A' ? 'B' : 'A';
	assert_int_equal(verify(jws, "PUT", path, now, &r, &e), -1);
	free(jws);
	assert_int_equal(verify("{\"payload\": 1}", "PUT", path, now, &r, &e), -1);
	assert_string_equal(e.code, "bad_jws");
}

static void test_peek(void **state)
{
	char *jws =
	    sign_req(&bob, "BOB@example.com", "GET", "/v1/lists/bob@example.com", NULL, time(NULL));
	json_t *j = json_loads(jws, 0, NULL);
	char addr[RELAY_ADDR_MAX];
	struct err e = {0};

	assert_int_equal(relay_control_peek_address(j, addr, &e), 0);
	assert_string_equal(addr, "bob@example.com");
	json_decref(j);
	j = json_pack("{s:s, s:s}", "payload", "e30", "signature", "x"); /* {} */
	assert_int_equal(relay_control_peek_address(j, addr, &e), -1);
	assert_string_equal(e.code, "bad_request");
	json_decref(j);
	free(jws);
}

/* ---- the server ---- */

struct reply {
	long status;
	char body[8192];
	size_t len;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct reply *r = ud;
	size_t k = sz * n;

	if (r->len + k >= sizeof(r->body))
		k = sizeof(r->body) - 1 - r->len;
	memcpy(r->body + r->len, p, k);
	r->len += k;
	r->body[r->len] = '\0';
	return sz * n;
}

static char tls_cert[128], tls_key[128];

static void call(int port, const char *method, const char *path, const char *token,
                 const char *body, struct reply *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512], auth[128];

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_CAINFO, tls_cert);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	if (body != NULL) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (curl_easy_perform(c) != CURLE_OK)
		fail_msg("%s %s: no answer", method, path);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static void assert_error(const struct reply *r, long status, const char *code)
{
	json_t *j = json_loads(r->body, 0, NULL);
	const char *got = json_string_value(json_object_get(j, "error"));

	if (r->status != status || got == NULL || strcmp(got, code) != 0)
		fail_msg("want %ld %s, got %ld %s", status, code, r->status, r->body);
	json_decref(j);
}

static json_t *ok_json(const struct reply *r)
{
	json_t *j;

	if (r->status != 200)
		fail_msg("want 200, got %ld %s", r->status, r->body);
	j = json_loads(r->body, 0, NULL);
	assert_non_null(j);
	return j;
}

static struct relay_settings settings(char *hash)
{
	struct relay_settings s = {0};

	s.control_listen = "127.0.0.1:0";
	s.tls_cert_file = tls_cert;
	s.tls_key_file = tls_key;
	s.local_domains = "example.com,example.net";
	s.control_token_hash = hash;
	s.dns_server = "127.0.0.1:9"; /* nothing answers: discovery fails */
	s.lookup_timeout_ms = 300;
	s.max_message_size = 1024 * 1024;
	return s;
}

static void test_server_admin(void **state)
{
	char hash[CRYPTO_HEX256_LEN], lists_dir[128];
	struct relay_settings s;
	struct relay_lists *l;
	struct relay_control *c;
	struct err e = {0};
	struct reply r;
	json_t *j;
	int port;

	make_tls_cert(tls_cert, tls_key, sizeof(tls_cert));
	crypto_token_hash("s3cret", hash);
	s = settings(hash);
	snprintf(lists_dir, sizeof(lists_dir), "%s/lists", dir);
	assert_non_null(l = relay_lists_open(lists_dir, &e));
	c = relay_control_start(&s, l, NULL, NULL, NULL, NULL, NULL, &e);
	if (c == NULL)
		fail_msg("start: %s", e.msg);
	port = relay_control_port(c);
	assert_true(port > 0);

	call(port, "GET", "/v1/lists/bob@example.com", NULL, NULL, &r);
	assert_error(&r, 401, "unauthorized");
	call(port, "GET", "/v1/lists/bob@example.com", "wrong", NULL, &r);
	assert_error(&r, 401, "unauthorized");

	call(port, "PUT", "/v1/lists/Bob@example.com/trust/Alice@example.org", "s3cret", NULL, &r);
	j = ok_json(&r);
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "trust"), 0)),
	                    "alice@example.org");
	json_decref(j);
	call(port, "PUT", "/v1/lists/bob@example.com/block/spam.example", "s3cret", NULL, &r);
	json_decref(ok_json(&r));
	assert_int_equal(relay_lists_check(l, "bob@example.com", "", "spam.example"),
	                 RELAY_LIST_BLOCK);
	call(port, "GET", "/v1/lists/bob@example.com", "s3cret", NULL, &r);
	j = ok_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "address")), "bob@example.com");
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "block"), 0)),
	                    "@spam.example");
	json_decref(j);
	call(port, "DELETE", "/v1/lists/bob@example.com/trust/alice@example.org", "s3cret", NULL,
	     &r);
	j = ok_json(&r);
	assert_int_equal(json_array_size(json_object_get(j, "trust")), 0);
	json_decref(j);
	call(port, "DELETE", "/v1/lists/bob@example.com/trust/alice@example.org", "s3cret", NULL,
	     &r);
	assert_error(&r, 404, "not_listed");

	/* refusals */
	call(port, "PUT", "/v1/lists/bob@example.com/friends/x@example.org", "s3cret", NULL, &r);
	assert_error(&r, 400, "bad_list");
	call(port, "PUT", "/v1/lists/bob@example.com/trust/not%20an%20entry", "s3cret", NULL, &r);
	assert_error(&r, 400, "bad_entry");
	call(port, "GET", "/v1/lists/bob@elsewhere.org", "s3cret", NULL, &r);
	assert_error(&r, 404, "unknown_domain");
	call(port, "GET", "/v1/lists/no-at-sign", "s3cret", NULL, &r);
	assert_error(&r, 400, "bad_name");
	call(port, "POST", "/v1/lists/bob@example.com", "s3cret", NULL, &r);
	assert_error(&r, 405, "method_not_allowed");
	call(port, "GET", "/v1/lists/bob@example.com/trust", "s3cret", NULL, &r);
	assert_error(&r, 404, "not_found");
	call(port, "GET", "/v2/anything", "s3cret", NULL, &r);
	assert_error(&r, 404, "not_found");

	/* complaints: checked, then refused without a reputation service */
	call(port, "POST", "/v1/complaints", "s3cret",
	     "{\"category\": \"ham\", \"message\": \"eA==\"}", &r);
	assert_error(&r, 400, "bad_category");
	call(port, "POST", "/v1/complaints", "s3cret",
	     "{\"category\": \"spam\", \"message\": \"!\"}", &r);
	assert_error(&r, 400, "bad_message");
	call(port, "POST", "/v1/complaints", "s3cret", "{\"category\": \"spam\"}", &r);
	assert_error(&r, 400, "bad_request");
	call(port, "POST", "/v1/complaints", "s3cret",
	     "{\"category\": \"spam\", \"message\": \"U3ViamVjdDogeA0KDQp4DQo=\"}", &r);
	assert_error(&r, 503, "reputation_disabled");
	call(port, "POST", "/v1/complaints", NULL,
	     "{\"category\": \"spam\", \"message\": \"U3ViamVjdDogeA0KDQp4DQo=\"}", &r);
	assert_error(&r, 401, "unauthorized");

	relay_control_stop(c);
	relay_lists_free(l);
}

static void test_server_signed(void **state)
{
	const char *path = "/v1/lists/bob@example.com";
	struct relay_settings s = settings(NULL);
	struct relay_lists *l;
	struct relay_control *c;
	struct err e = {0};
	struct reply r;
	char lists_dir[128], *jws;
	json_t *j;
	const char *code;

	snprintf(lists_dir, sizeof(lists_dir), "%s/lists2", dir);
	assert_non_null(l = relay_lists_open(lists_dir, &e));
	assert_non_null(c = relay_control_start(&s, l, NULL, NULL, NULL, NULL, NULL, &e));

	/* no admin token configured: a bearer token is refused as such */
	call(relay_control_port(c), "GET", path, "s3cret", NULL, &r);
	assert_error(&r, 403, "forbidden");

	/* a signed request for a recipient of another domain stops before any lookup */
	jws = sign_req(&bob, "bob@elsewhere.org", "GET", "/v1/lists/bob@elsewhere.org", NULL,
	               time(NULL));
	call(relay_control_port(c), "GET", "/v1/lists/bob@elsewhere.org", NULL, jws, &r);
	assert_error(&r, 404, "unknown_domain");
	free(jws);

	/* a local one needs its domain's pins from DNS, which cannot be had here */
	jws = sign_req(&bob, "bob@example.com", "GET", path, NULL, time(NULL));
	call(relay_control_port(c), "GET", path, NULL, jws, &r);
	j = json_loads(r.body, 0, NULL);
	code = json_string_value(json_object_get(j, "error"));
	assert_non_null(code);
	if (!((r.status == 503 && strcmp(code, "discovery_failed") == 0) ||
	      (r.status == 403 && strcmp(code, "not_anchored") == 0)))
		fail_msg("got %ld %s", r.status, r.body);
	json_decref(j);
	free(jws);

	relay_control_stop(c);
	relay_lists_free(l);
}

static void test_start_errors(void **state)
{
	struct relay_settings s = settings(NULL);
	struct relay_lists *l;
	struct err e = {0};
	char lists_dir[128];

	snprintf(lists_dir, sizeof(lists_dir), "%s/lists3", dir);
	assert_non_null(l = relay_lists_open(lists_dir, &e));
	s.control_listen = "127.0.0.1";
	assert_null(relay_control_start(&s, l, NULL, NULL, NULL, NULL, NULL, &e));
	assert_string_equal(e.code, "bad_config");
	s.control_listen = "127.0.0.1:99999";
	assert_null(relay_control_start(&s, l, NULL, NULL, NULL, NULL, NULL, &e));
	s.control_listen = "[::1]:0";
	s.tls_cert_file = NULL;
	assert_null(relay_control_start(&s, l, NULL, NULL, NULL, NULL, NULL, &e));
	assert_string_equal(e.code, "bad_config");
	relay_control_stop(NULL);
	relay_lists_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verify_good),   cmocka_unit_test(test_verify_refusals),
	    cmocka_unit_test(test_peek),          cmocka_unit_test(test_server_admin),
	    cmocka_unit_test(test_server_signed), cmocka_unit_test(test_start_errors),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
