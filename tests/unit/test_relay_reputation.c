/*
 * Tests of the relay's reputation client (relay/reputation.c) against an
 * in-process fake anchor-reputation: lib/http over TLS with a self-signed
 * certificate made here.  The fake answers by client IP: a canned block
 * verdict with CSA, a trusted one, garbage, an HTTP error, or a slow answer
 * (past the client's timeout).  It counts the requests, so that cache hits
 * and the failure backoff show.  Reports are signed with a real JWS (the
 * test's key, through the signing seam) and the fake reads their payload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/crypto.h"
#include "http/http.h"
#include "pki/jws.h"
#include "core/log.h"
#include "relay.h"
#include "mail/repverdict.h"

#define SLOW_MS 700

static atomic_int nqueries, nreports;
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_query[512];
static char *last_typ;
static json_t *last_payload;

static EVP_PKEY *key;
static X509 *cert;
static char dir[] = "/tmp/test_relay_rep_XXXXXX";
static char cert_path[128], key_path[128];
static struct http_server *srv;
static int port;

/* ------------------------------------------------------------------ the fake service */

static void answer_query(const struct http_request *req, struct http_response *resp)
{
	const char *ip = http_query_arg(req, "ip");
	char q[512] = "";

	atomic_fetch_add(&nqueries, 1);
	http_query_string(req, q, sizeof(q));
	pthread_mutex_lock(&last_lock);
	snprintf(last_query, sizeof(last_query), "%s", q);
	pthread_mutex_unlock(&last_lock);
	if (ip == NULL)
		ip = "";
	if (strcmp(ip, "192.0.2.7") == 0) {
		http_reply_json(
		    resp, 200,
		    json_pack("{s:s, s:[{s:s, s:s, s:[]}, {s:s, s:s}], s:{s:s, s:s}, s:[]}",
		              "verdict", "block", "reasons", "code", "listed", "text",
		              "listed: 10 independent reporting domains\r\nreported it", "evidence",
		              "code", "csa_fail", "text", "second", "csa", "result", "fail", "code",
		              "fail_mismatch", "subjects"));
	} else if (strcmp(ip, "192.0.2.8") == 0) {
		http_reply_json(resp, 200,
		                json_pack("{s:s, s:[]}", "verdict", "trusted", "reasons"));
	} else if (strcmp(ip, "192.0.2.66") == 0) {
		http_reply_text(resp, 200, "text/html", strdup("<html>oops</html>"), 17);
	} else if (strcmp(ip, "192.0.2.67") == 0) {
		http_reply_json(resp, 200, json_pack("{s:s}", "verdict", "maybe"));
	} else if (strcmp(ip, "192.0.2.40") == 0) {
		http_reply_errorf(resp, ERR_INPUT, "bad_subject", "helo: not a host name");
	} else if (strcmp(ip, "192.0.2.50") == 0) {
		http_reply_errorf(resp, ERR_TEMP, "unavailable", "the store is down");
	} else if (strcmp(ip, "192.0.2.99") == 0) {
		usleep(SLOW_MS * 1000);
		http_reply_json(resp, 200, json_pack("{s:s}", "verdict", "known"));
	} else {
		http_reply_json(resp, 200, json_pack("{s:s}", "verdict", "unknown"));
	}
}

/* Reads the JWS's protected header and payload (no signature check: that is the real
 * service's business and its tests'). */
static void answer_report(const struct http_request *req, struct http_response *resp)
{
	const char *prot = json_string_value(json_object_get(req->json, "protected"));
	const char *pay = json_string_value(json_object_get(req->json, "payload"));
	uint8_t *hraw = NULL, *praw = NULL;
	size_t hlen = 0, plen = 0;
	json_t *hdr = NULL, *payload = NULL;

	atomic_fetch_add(&nreports, 1);
	if (prot == NULL || pay == NULL ||
	    json_string_value(json_object_get(req->json, "signature")) == NULL ||
	    (hraw = crypto_b64url_decode(prot, &hlen)) == NULL ||
	    (praw = crypto_b64url_decode(pay, &plen)) == NULL ||
	    (hdr = json_loadb((char *)hraw, hlen, 0, NULL)) == NULL ||
	    (payload = json_loadb((char *)praw, plen, 0, NULL)) == NULL) {
		http_reply_errorf(resp, ERR_INPUT, "bad_jws", "not a JWS");
		goto out;
	}
	pthread_mutex_lock(&last_lock);
	free(last_typ);
	last_typ = strdup(json_string_value(json_object_get(hdr, "typ")) ?: "");
	json_decref(last_payload);
	last_payload = json_incref(payload);
	pthread_mutex_unlock(&last_lock);
	if (strcmp(json_string_value(json_object_get(payload, "reporter")) ?: "",
	           "unanchored.example") == 0)
		http_reply_errorf(resp, ERR_FORBIDDEN, "reporter_not_anchored",
		                  "unanchored.example publishes no _anchor records");
	else
		http_reply_json(resp, 201, json_pack("{s:b, s:b}", "accepted", 1, "duplicate", 0));
out:
	json_decref(hdr);
	json_decref(payload);
	free(hraw);
	free(praw);
}

static void dispatch(const struct http_request *req, struct http_response *resp, void *app)
{
	if (strcmp(req->method, "GET") == 0 && http_seg_is(req, 0, "v1") &&
	    http_seg_is(req, 1, "query") && req->nseg == 2)
		answer_query(req, resp);
	else if (strcmp(req->method, "POST") == 0 && http_seg_is(req, 0, "v1") &&
	         http_seg_is(req, 1, "reports") && req->nseg == 2)
		answer_report(req, resp);
	else
		http_reply_errorf(resp, ERR_NOTFOUND, "not_found", "no such resource");
}

/* A self-signed P-256 certificate for 127.0.0.1, written with its key under dir. */
static int make_cert(void)
{
	X509_EXTENSION *ext;
	X509V3_CTX ctx;
	FILE *f;

	key = EVP_EC_gen("P-256");
	cert = X509_new();
	if (key == NULL || cert == NULL)
		return -1;
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), -60);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
	if (ext == NULL)
		return -1;
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	if (X509_sign(cert, key, EVP_sha256()) == 0)
		return -1;
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	if ((f = fopen(cert_path, "w")) == NULL)
		return -1;
	PEM_write_X509(f, cert);
	fclose(f);
	if ((f = fopen(key_path, "w")) == NULL)
		return -1;
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	return 0;
}

static int group_setup(void **state)
{
	struct http_config cfg = {
	    .listen_addr = "127.0.0.1",
	    .max_body = 65536,
	    .threads = 4,
	    .max_connections = 64,
	    .conn_timeout = 10,
	    .dispatch = dispatch,
	};
	struct err e;

	log_set_level(LOG_LVL_WARN);
	if (mkdtemp(dir) == NULL || make_cert() < 0)
		return -1;
	cfg.tls_cert_file = cert_path;
	cfg.tls_key_file = key_path;
	if ((srv = http_server_start(&cfg, &e)) == NULL) {
		fprintf(stderr, "fake service: %s\n", e.msg);
		return -1;
	}
	port = http_server_port(srv);
	return 0;
}

static int group_teardown(void **state)
{
	http_server_stop(srv);
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	X509_free(cert);
	EVP_PKEY_free(key);
	free(last_typ);
	json_decref(last_payload);
	return 0;
}

/* ------------------------------------------------------------------ helpers */

static char url[64];

static struct relay_settings settings(long long ttl, long long timeout_ms)
{
	struct relay_settings s;

	memset(&s, 0, sizeof(s));
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
	s.hostname = "mx.relay.example";
	s.reputation_url = url;
	s.reputation_cacert = cert_path;
	s.reputation_timeout_ms = timeout_ms;
	s.reputation_cache_ttl = ttl;
	s.reporter_domain = "relay.example";
	return s;
}

static struct relay_rep *rep_new(long long ttl, long long timeout_ms)
{
	struct relay_settings s = settings(ttl, timeout_ms);
	struct err e = {0};
	struct relay_rep *r = relay_rep_new(&s, &e);

	if (r == NULL)
		fail_msg("relay_rep_new: %s", e.msg);
	return r;
}

/* ------------------------------------------------------------------ queries */

static void test_disabled_and_bad_url(void **state)
{
	struct relay_settings s = settings(60, 1000);
	struct relay_rep_answer a;
	struct relay_rep *r;
	struct err e = {0};

	s.reputation_url = NULL;
	r = relay_rep_new(&s, &e);
	assert_non_null(r);
	assert_false(relay_rep_enabled(r));
	assert_int_equal(relay_rep_query(r, "192.0.2.8", "", "", &a, &e), -1);
	relay_rep_free(r);
	assert_false(relay_rep_enabled(NULL));

	s.reputation_url = "http://127.0.0.1:1";
	assert_null(relay_rep_new(&s, &e));
	assert_string_equal(e.code, "bad_config");
	relay_rep_free(NULL);
}

static void test_verdicts(void **state)
{
	struct relay_rep *r = rep_new(60, 2000);
	struct relay_rep_answer a;
	struct err e = {0};

	assert_true(relay_rep_enabled(r));
	assert_int_equal(relay_rep_query(r, "192.0.2.7", "MX.Spam.Example", "", &a, &e), 0);
	assert_int_equal(a.verdict, RELAY_REP_BLOCK);
	assert_string_equal(a.csa, "fail");
	/* the first reason, reduced to printable ASCII */
	assert_string_equal(a.reason, "listed: 10 independent reporting domains  reported it");
	pthread_mutex_lock(&last_lock);
	assert_string_equal(last_query, "ip=192.0.2.7&helo=mx.spam.example");
	pthread_mutex_unlock(&last_lock);

	assert_int_equal(relay_rep_query(r, "192.0.2.8", NULL, "Example.COM", &a, &e), 0);
	assert_int_equal(a.verdict, RELAY_REP_TRUSTED);
	assert_string_equal(a.csa, "");
	assert_string_equal(a.reason, "");
	pthread_mutex_lock(&last_lock);
	assert_string_equal(last_query, "ip=192.0.2.8&domain=example.com");
	pthread_mutex_unlock(&last_lock);

	assert_int_equal(relay_rep_query(r, "192.0.2.9", "", "", &a, &e), 0);
	assert_int_equal(a.verdict, RELAY_REP_UNKNOWN);

	assert_int_equal(relay_rep_query(r, "", "", "", &a, &e), -1);
	assert_string_equal(e.code, "bad_request");
	relay_rep_free(r);
}

static void test_cache_hits(void **state)
{
	struct relay_rep *r = rep_new(60, 2000), *nocache = rep_new(0, 2000);
	struct relay_rep_answer a;
	struct err e = {0};
	int before = atomic_load(&nqueries);

	for (int i = 0; i < 5; i++) {
		assert_int_equal(relay_rep_query(r, "192.0.2.7", "mx.spam.example", "", &a, &e), 0);
		assert_int_equal(a.verdict, RELAY_REP_BLOCK);
	}
	/* the HELO's case does not make another question */
	assert_int_equal(relay_rep_query(r, "192.0.2.7", "MX.SPAM.EXAMPLE", "", &a, &e), 0);
	assert_int_equal(atomic_load(&nqueries), before + 1);
	/* another subject set is another question */
	assert_int_equal(relay_rep_query(r, "192.0.2.7", "", "", &a, &e), 0);
	assert_int_equal(atomic_load(&nqueries), before + 2);

	before = atomic_load(&nqueries);
	for (int i = 0; i < 3; i++)
		assert_int_equal(relay_rep_query(nocache, "192.0.2.8", "", "", &a, &e), 0);
	assert_int_equal(atomic_load(&nqueries), before + 3);
	relay_rep_free(r);
	relay_rep_free(nocache);
}

/* Many entries: the cache stays bounded and still answers. */
static void test_cache_bounded(void **state)
{
	struct relay_rep *r = rep_new(60, 2000);
	struct relay_rep_answer a;
	struct err e = {0};
	char helo[64];
	int before = atomic_load(&nqueries);

	for (int i = 0; i < 2100; i++) {
		snprintf(helo, sizeof(helo), "h%d.example", i);
		assert_int_equal(relay_rep_query(r, "192.0.2.9", helo, "", &a, &e), 0);
	}
	assert_int_equal(atomic_load(&nqueries), before + 2100);
	/* the newest are still there */
	assert_int_equal(relay_rep_query(r, "192.0.2.9", "h2099.example", "", &a, &e), 0);
	assert_int_equal(atomic_load(&nqueries), before + 2100);
	relay_rep_free(r);
}

static void test_garbage(void **state)
{
	struct relay_rep *r = rep_new(60, 2000);
	struct relay_rep_answer a;
	struct err e = {0};
	int before;

	relay_rep_set_backoff(r, 0);
	assert_int_equal(relay_rep_query(r, "192.0.2.66", "", "", &a, &e), -1);
	assert_string_equal(e.code, "bad_answer");
	assert_int_equal(relay_rep_query(r, "192.0.2.67", "", "", &a, &e), -1);
	assert_string_equal(e.code, "bad_answer");
	assert_int_equal(relay_rep_query(r, "192.0.2.50", "", "", &a, &e), -1);
	assert_string_equal(e.code, "unavailable");
	assert_int_equal(e.kind, ERR_TEMP);
	assert_non_null(strstr(e.msg, "503"));
	/* failures are not cached */
	before = atomic_load(&nqueries);
	assert_int_equal(relay_rep_query(r, "192.0.2.66", "", "", &a, &e), -1);
	assert_int_equal(atomic_load(&nqueries), before + 1);
	relay_rep_free(r);
}

static void test_timeout_and_backoff(void **state)
{
	struct relay_rep *r = rep_new(60, 200);
	struct relay_rep_answer a;
	struct err e = {0};
	struct timespec t0, t1;
	int before;

	relay_rep_set_backoff(r, 1);
	/* a cached answer survives the outage */
	assert_int_equal(relay_rep_query(r, "192.0.2.8", "", "", &a, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(relay_rep_query(r, "192.0.2.99", "", "", &a, &e), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_string_equal(e.code, "timeout");
	assert_int_equal(e.kind, ERR_TEMP);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < SLOW_MS);

	before = atomic_load(&nqueries);
	assert_int_equal(relay_rep_query(r, "192.0.2.9", "", "", &a, &e), -1);
	assert_string_equal(e.code, "backoff");
	assert_int_equal(atomic_load(&nqueries), before);
	assert_int_equal(relay_rep_query(r, "192.0.2.8", "", "", &a, &e), 0);
	assert_int_equal(a.verdict, RELAY_REP_TRUSTED);

	usleep(1100 * 1000);
	assert_int_equal(relay_rep_query(r, "192.0.2.9", "", "", &a, &e), 0);
	assert_int_equal(atomic_load(&nqueries), before + 1);
	relay_rep_free(r);
}

/* A question the service refuses (400) is a failure, but not an outage: no backoff. */
static void test_refused_question_no_backoff(void **state)
{
	struct relay_rep *r = rep_new(60, 2000);
	struct relay_rep_answer a;
	struct err e = {0};

	relay_rep_set_backoff(r, 60);
	assert_int_equal(relay_rep_query(r, "192.0.2.40", "x_y", "", &a, &e), -1);
	assert_string_equal(e.code, "bad_subject");
	assert_int_equal(e.kind, ERR_INPUT);
	assert_int_equal(relay_rep_query(r, "192.0.2.8", "", "", &a, &e), 0);
	assert_int_equal(a.verdict, RELAY_REP_TRUSTED);
	/* while a 503 is an outage */
	assert_int_equal(relay_rep_query(r, "192.0.2.50", "", "", &a, &e), -1);
	assert_int_equal(relay_rep_query(r, "192.0.2.9", "", "", &a, &e), -1);
	assert_string_equal(e.code, "backoff");
	relay_rep_free(r);
}

static void test_unreachable(void **state)
{
	struct relay_settings s = settings(60, 500);
	struct relay_rep_answer a;
	struct relay_rep *r;
	struct err e = {0};

	s.reputation_url = "https://127.0.0.1:1";
	r = relay_rep_new(&s, &e);
	assert_non_null(r);
	assert_int_equal(relay_rep_query(r, "192.0.2.8", "", "", &a, &e), -1);
	assert_string_equal(e.code, "unreachable");
	relay_rep_free(r);
}

/* The wrong CA: TLS is verified.  The refusal comes at the handshake, long before the
 * limit; the limit is generous because loading the system's CA bundle under the
 * sanitizers on a busy machine took over a second (a "timeout" instead). */
static void test_untrusted_certificate(void **state)
{
	struct relay_settings s = settings(60, 15000);
	struct relay_rep_answer a;
	struct relay_rep *r;
	struct err e = {0};

	s.reputation_cacert = "/etc/ssl/certs/ca-certificates.crt";
	r = relay_rep_new(&s, &e);
	assert_non_null(r);
	assert_int_equal(relay_rep_query(r, "192.0.2.8", "", "", &a, &e), -1);
	assert_string_equal(e.code, "unreachable");
	relay_rep_free(r);
}

struct thread_arg {
	struct relay_rep *r;
	int failures;
};

static void *query_thread(void *arg)
{
	struct thread_arg *t = arg;
	struct relay_rep_answer a;
	struct err e;
	char ip[32];

	for (int i = 0; i < 40; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i % 10);
		if (relay_rep_query(t->r, ip, "", "", &a, &e) < 0 || a.verdict != RELAY_REP_UNKNOWN)
			t->failures++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct relay_rep *r = rep_new(60, 3000);
	struct thread_arg args[6];
	pthread_t th[6];

	for (int i = 0; i < 6; i++) {
		args[i] = (struct thread_arg){r, 0};
		assert_int_equal(pthread_create(&th[i], NULL, query_thread, &args[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	relay_rep_free(r);
}

/* ------------------------------------------------------------------ reports */

static const char message[] =
    "Received: from mx.other.example by mailbox.relay.example; Tue, 1 Jan 2030 00:00:00 +0000\r\n"
    "Authentication-Results: mailbox.relay.example; dkim=pass header.d=other.example\r\n"
    "Received: from MX.Spam.Example. (MX.Spam.Example. [192.0.2.7])\r\n"
    "\tby mx.relay.example (anchor-relay) with ESMTPS;\r\n"
    "\tTue, 1 Jan 2030 00:00:00 +0000\r\n"
    "Authentication-Results: mx.relay.example;\r\n"
    "\tdkim=fail (bad signature) header.d=forged.example;\r\n"
    "\tdkim=pass (anchored key) header.d=Signer.Example header.i=@signer.example\r\n"
    "\t header.b=abcd1234;\r\n"
    "\tdkim=pass header.d=signer.example header.i=bob@signer.example\r\n"
    "Received: from fake (fake [203.0.113.1]) by mx.relay.example; Tue, 1 Jan 2030\r\n"
    "Authentication-Results: mx.relay.example; dkim=pass header.d=forged-below.example\r\n"
    "From: \"Spammer, Inc.\" <Bob@Mail.Signer.Example>\r\n"
    "Message-ID: <abc.123@sender.example>\r\n"
    "Subject: buy\r\n"
    "\r\n"
    "body\r\n";

static int subjects_are(json_t *payload, const char *const *want, size_t n)
{
	json_t *arr = json_object_get(payload, "subjects");

	if (json_array_size(arr) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(json_string_value(json_array_get(arr, i)) ?: "", want[i]) != 0)
			return 0;
	return 1;
}

static void test_payload(void **state)
{
	struct relay_rep *r = rep_new(60, 2000);
	static const char *const want[] = {"ip:192.0.2.7", "helo:mx.spam.example",
	                                   "signer:signer.example", "domain:mail.signer.example"};
	struct err e = {0};
	char *text = relay_rep_report_payload(r, message, strlen(message), "spam", 1893456000, &e);
	json_t *p;

	if (text == NULL)
		fail_msg("payload: %s", e.msg);
	p = json_loads(text, 0, NULL);
	assert_non_null(p);
	assert_string_equal(json_string_value(json_object_get(p, "type")), "anchor-report");
	assert_string_equal(json_string_value(json_object_get(p, "reporter")), "relay.example");
	assert_string_equal(json_string_value(json_object_get(p, "category")), "spam");
	assert_string_equal(json_string_value(json_object_get(p, "observed")),
	                    "2030-01-01T00:00:00Z");
	assert_true(json_is_true(json_object_get(p, "verified_identity")));
	assert_string_equal(json_string_value(json_object_get(p, "evidence")),
	                    "Message-ID: <abc.123@sender.example>");
	assert_int_equal(strncmp(json_string_value(json_object_get(p, "id")), "relay-", 6), 0);
	if (!subjects_are(p, want, 4))
		fail_msg("subjects: %s", text);
	json_decref(p);
	free(text);
	relay_rep_free(r);
}

static void test_payload_unverified(void **state)
{
	struct relay_rep *r = rep_new(60, 2000);
	static const char *const want[] = {"ip:2001:db8::7", "helo:[192.0.2.1]"};
	static const char msg[] =
	    "Received: from [192.0.2.1] ([192.0.2.1] [IPv6:2001:DB8:0::7])\n"
	    "\tby MX.relay.example (anchor-relay) with ESMTP;\n\tTue, 1 Jan 2030\n"
	    "Authentication-Results: mx.relay.example; dkim=none\n"
	    "From: a@b.example\n\nbody\n";
	static const char nothing[] =
	    "Received: from x (x [192.0.2.1]) by someone.else.example; date\r\n"
	    "Authentication-Results: other.example; dkim=pass header.d=x.example\r\n\r\n";
	struct err e = {0};
	char *text = relay_rep_report_payload(r, msg, strlen(msg), "abuse", time(NULL), &e);
	json_t *p;

	if (text == NULL)
		fail_msg("payload: %s", e.msg);
	p = json_loads(text, 0, NULL);
	assert_non_null(p);
	if (!subjects_are(p, want, 2))
		fail_msg("subjects: %s", text);
	assert_true(json_is_false(json_object_get(p, "verified_identity")));
	assert_null(json_object_get(p, "evidence"));
	json_decref(p);
	free(text);

	assert_null(relay_rep_report_payload(r, nothing, strlen(nothing), "spam", 0, &e));
	assert_string_equal(e.code, "no_subjects");
	assert_null(relay_rep_report_payload(r, msg, strlen(msg), "ham", 0, &e));
	assert_string_equal(e.code, "bad_category");
	relay_rep_free(r);
}

/* The source is the first hop outside our own servers (own_networks, our submission
 * port, own_hosts' fields), and no name of ours is ever a subject. */
static const char loop_head[] =
    "Received: from mx.relay.example (mx.relay.example [127.0.0.1])\r\n"
    "\tby mx.relay.example (anchor-relay) with ESMTPS;\r\n\tTue, 1 Jan 2030\r\n"
    "Authentication-Results: mx.relay.example; dkim=pass header.d=relay.example;\r\n"
    "\tcsa=pass smtp.helo=mx.relay.example policy.iprev=127.0.0.1%s\r\n"
    "Received: from mail.relay.example ([127.0.0.1])\r\n"
    "\tby mx.relay.example (anchor-relay) with ESMTP;\r\n\tTue, 1 Jan 2030\r\n"
    "Received: by mail.relay.example (Postfix, from userid 1000) id 4F; Tue, 1 Jan 2030\r\n"
    "Received: from evil (evil [192.0.2.99]) by mail.relay.example; Tue, 1 Jan 2030\r\n"
    "From: a@relay.example\r\nMessage-ID: <x@relay.example>\r\n\r\nbody\r\n";

static char *own_payload(struct relay_rep *r, const char *msg, struct err *e)
{
	return relay_rep_report_payload(r, msg, strlen(msg), "spam", time(NULL), e);
}

static void test_payload_own_hops(void **state)
{
	struct relay_settings s = settings(60, 2000);
	static const char *const want_foreign[] = {"signer:signer.example"};
	static const char *const want_front[] = {"ip:192.0.2.9", "helo:mx.ext.example"};
	static const char *const want_claim[] = {"ip:192.0.2.66"};
	static const char front[] =
	    "Received: from mail.relay.example (localhost [127.0.0.1])\r\n"
	    "\tby mx.relay.example (anchor-relay) with ESMTP; Tue, 1 Jan 2030\r\n"
	    "Authentication-Results: mx.relay.example; dkim=none;\r\n"
	    "\tcsa=pass smtp.helo=mail.relay.example policy.iprev=127.0.0.1\r\n"
	    "Received: from mx.ext.example (mx.ext.example [192.0.2.9])\r\n"
	    "\tby mail.relay.example (Postfix) with ESMTPS id 1; Tue, 1 Jan 2030\r\n"
	    "Received: from forged (forged [192.0.2.1]) by mail.relay.example; x\r\n\r\nb\r\n";
	static const char claim[] =
	    "Received: from MX.relay.example (mx.relay.example [192.0.2.66])\r\n"
	    "\tby mx.relay.example (anchor-relay) with ESMTP; Tue, 1 Jan 2030\r\n"
	    "Authentication-Results: mx.relay.example; dkim=pass header.d=other.example\r\n"
	    "From: a@other.example\r\n\r\nb\r\n";
	char msg[4096], *text;
	struct relay_rep *r;
	struct err e = {0};
	json_t *p;

	(void)state;
	s.own_networks = "127.0.0.1, ::1";
	s.own_hosts = "mail.relay.example";
	s.local_domains = "relay.example, other.example";
	r = relay_rep_new(&s, &e);
	assert_non_null(r);

	/* local submission delivered back to us: every hop is ours, our signature too */
	snprintf(msg, sizeof(msg), loop_head, "");
	assert_null(own_payload(r, msg, &e));
	assert_string_equal(e.code, "no_subjects");
	assert_non_null(strstr(e.msg, "never left our own servers"));

	/* ... carrying a foreign passing signature: that alone; our CSA pass is of our hop */
	snprintf(msg, sizeof(msg), loop_head, ";\r\n\tdkim=pass header.d=signer.example");
	if ((text = own_payload(r, msg, &e)) == NULL)
		fail_msg("payload: %s", e.msg);
	p = json_loads(text, 0, NULL);
	if (!subjects_are(p, want_foreign, 1))
		fail_msg("subjects: %s", text);
	assert_true(json_is_true(json_object_get(p, "verified_identity")));
	json_decref(p);
	free(text);

	/* the local MTA in front (own_networks), its field read (own_hosts): the hop below */
	if ((text = own_payload(r, front, &e)) == NULL)
		fail_msg("payload: %s", e.msg);
	p = json_loads(text, 0, NULL);
	if (!subjects_are(p, want_front, 2))
		fail_msg("subjects: %s", text);
	assert_true(json_is_false(json_object_get(p, "verified_identity")));
	json_decref(p);
	free(text);

	/* a stranger claiming our name as HELO: its address, never our name or our domain */
	if ((text = own_payload(r, claim, &e)) == NULL)
		fail_msg("payload: %s", e.msg);
	p = json_loads(text, 0, NULL);
	if (!subjects_are(p, want_claim, 1))
		fail_msg("subjects: %s", text);
	json_decref(p);
	free(text);
	relay_rep_free(r);
}

/* Against the field the relay really writes (relay_authres_field) and the Received line
 * inbound.c writes: a failing signature's quoted reason cannot smuggle in a signer, and
 * csa=pass alone makes the identity verified. */
static void test_payload_from_authres(void **state)
{
	struct relay_rep *r = rep_new(60, 2000);
	struct relay_sig sigs[2];
	struct relay_auth a;
	static const char *const want_fail[] = {"ip:192.0.2.7", "helo:mx.spam.example"};
	static const char *const want_pass[] = {"ip:192.0.2.7", "helo:mx.spam.example",
	                                        "signer:good.example", "domain:good.example"};
	struct err e = {0};
	char *ar, *msg, *text;
	json_t *p;

	memset(sigs, 0, sizeof(sigs));
	memset(&a, 0, sizeof(a));
	sigs[0].r.status = DKIM_FAIL;
	snprintf(sigs[0].r.d, sizeof(sigs[0].r.d), "evil.example");
	snprintf(sigs[0].r.reason, sizeof(sigs[0].r.reason),
	         "x\" dkim=pass header.d=smuggled.example; dkim=pass header.d=smuggled.example");
	a.sigs = sigs;
	a.nsigs = 1;
	ar =
	    relay_authres_field("mx.relay.example", &a, "192.0.2.7", "mx.spam.example", "pass", &e);
	assert_non_null(ar);
	assert_true(asprintf(&msg,
	                     "Received: from mx.spam.example (mx.spam.example [192.0.2.7])\r\n"
	                     "\tby mx.relay.example (anchor-relay) with ESMTP;\r\n"
	                     "\tTue, 1 Jan 2030 00:00:00 +0000\r\n%s\r\n"
	                     "From: x@good.example\r\n\r\nbody\r\n",
	                     ar) > 0);
	text = relay_rep_report_payload(r, msg, strlen(msg), "spam", time(NULL), &e);
	assert_non_null(text);
	p = json_loads(text, 0, NULL);
	if (!subjects_are(p, want_fail, 2))
		fail_msg("subjects: %s\n%s", text, ar);
	assert_true(json_is_true(json_object_get(p, "verified_identity"))); /* csa=pass */
	json_decref(p);
	free(text);
	free(msg);
	free(ar);

	sigs[1].r.status = DKIM_PASS;
	sigs[1].source = RELAY_KEY_ANCHOR;
	snprintf(sigs[1].r.d, sizeof(sigs[1].r.d), "good.example");
	snprintf(sigs[1].r.i, sizeof(sigs[1].r.i), "@good.example");
	snprintf(sigs[1].r.b, sizeof(sigs[1].r.b), "Jq2b7hUu");
	a.nsigs = 2;
	ar =
	    relay_authres_field("mx.relay.example", &a, "192.0.2.7", "mx.spam.example", "fail", &e);
	assert_non_null(ar);
	assert_true(asprintf(&msg,
	                     "Received: from mx.spam.example (mx.spam.example [192.0.2.7])\r\n"
	                     "\tby mx.relay.example (anchor-relay) with ESMTP;\r\n"
	                     "\tTue, 1 Jan 2030 00:00:00 +0000\r\n%s\r\n"
	                     "From: x@good.example\r\n\r\nbody\r\n",
	                     ar) > 0);
	text = relay_rep_report_payload(r, msg, strlen(msg), "spam", time(NULL), &e);
	assert_non_null(text);
	p = json_loads(text, 0, NULL);
	if (!subjects_are(p, want_pass, 4))
		fail_msg("subjects: %s\n%s", text, ar);
	assert_true(json_is_true(json_object_get(p, "verified_identity")));
	json_decref(p);
	free(text);

	/* a From domain no passing signature vouches for is not reported */
	memcpy(strstr(msg, "x@good.example"), "x@evil.example", 14);
	text = relay_rep_report_payload(r, msg, strlen(msg), "spam", time(NULL), &e);
	assert_non_null(text);
	p = json_loads(text, 0, NULL);
	if (!subjects_are(p, want_pass, 3))
		fail_msg("subjects: %s", text);
	json_decref(p);
	free(text);
	free(msg);
	free(ar);
	relay_rep_free(r);
}

/* The signing seam: a real JWS with the test's key. */
static int sign_with_test_key(void *arg, const char *payload, const char *typ, char **jws,
                              struct err *e)
{
	X509 *chain[1] = {cert};

	*(int *)arg += 1;
	*jws = jws_sign(payload, strlen(payload), key, chain, 1, typ, e);
	return *jws != NULL ? 0 : -1;
}

static int sign_fails(void *arg, const char *payload, const char *typ, char **jws, struct err *e)
{
	return err_set(e, ERR_TEMP, "signer_down", "the signer is not running");
}

static void test_report(void **state)
{
	struct relay_rep *r = rep_new(60, 2000);
	static const char *const want[] = {"ip:192.0.2.7", "helo:mx.spam.example",
	                                   "signer:signer.example", "domain:mail.signer.example"};
	struct err e = {0};
	int signed_n = 0, before = atomic_load(&nreports);

	relay_rep_set_signer(r, sign_with_test_key, &signed_n);
	if (relay_rep_report(r, NULL, message, strlen(message), "spam", NULL, &e) < 0)
		fail_msg("report: %s %s", e.code, e.msg);
	assert_int_equal(signed_n, 1);
	assert_int_equal(atomic_load(&nreports), before + 1);
	pthread_mutex_lock(&last_lock);
	assert_string_equal(last_typ, "anchor-report+jws");
	assert_true(subjects_are(last_payload, want, 4));
	assert_string_equal(json_string_value(json_object_get(last_payload, "category")), "spam");
	pthread_mutex_unlock(&last_lock);

	/* a message of nobody we saw is not reported at all */
	assert_int_equal(relay_rep_report(r, NULL, "Subject: x\r\n\r\nx\r\n", 17, "spam", NULL, &e),
	                 -1);
	assert_string_equal(e.code, "no_subjects");
	assert_int_equal(atomic_load(&nreports), before + 1);

	relay_rep_set_signer(r, sign_fails, NULL);
	assert_int_equal(relay_rep_report(r, NULL, message, strlen(message), "spam", NULL, &e), -1);
	assert_string_equal(e.code, "signer_down");
	assert_int_equal(atomic_load(&nreports), before + 1);
	relay_rep_free(r);
}

static void test_report_refused(void **state)
{
	struct relay_settings s = settings(60, 2000);
	struct relay_rep *r;
	struct err e = {0};
	int signed_n = 0;

	s.reporter_domain = "unanchored.example";
	r = relay_rep_new(&s, &e);
	assert_non_null(r);
	relay_rep_set_signer(r, sign_with_test_key, &signed_n);
	assert_int_equal(relay_rep_report(r, NULL, message, strlen(message), "not-spam", NULL, &e),
	                 -1);
	assert_string_equal(e.code, "reporter_not_anchored");
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	assert_non_null(strstr(e.msg, "publishes no _anchor records"));
	relay_rep_free(r);
}

/* The parser policyd and the relay share. */
static void test_repverdict(void **state)
{
	struct repverdict v;
	struct err e = {0};
	const char *ok = "{\"verdict\":\"known\",\"csa\":{\"result\":\"pass\"},\"reasons\":[]}";
	const char *badcsa = "{\"verdict\":\"known\",\"csa\":7}";

	assert_int_equal(repverdict_parse(ok, strlen(ok), &v, &e), 0);
	assert_string_equal(v.verdict, "known");
	assert_string_equal(v.csa, "pass");
	assert_int_equal(repverdict_parse(badcsa, strlen(badcsa), &v, &e), 0);
	assert_string_equal(v.csa, "");
	assert_int_equal(repverdict_parse("[1]", 3, &v, &e), -1);
	assert_string_equal(e.code, "bad_answer");
	assert_int_equal(repverdict_parse("{\"verdict\":5}", 13, &v, &e), -1);
}

/* A block is explained by the listing that decided it, not by the CSA result the answer
 * lists first; an unknown verdict by the first reason. */
static void test_repverdict_deciding_reason(void **state)
{
	struct repverdict v;
	struct err e = {0};
	const char *block =
	    "{\"verdict\":\"block\",\"reasons\":["
	    "{\"code\":\"csa_unknown\",\"text\":\"CSA unknown: the CSA lookup failed\"},"
	    "{\"code\":\"listed\",\"subject\":\"ip:192.0.2.7\",\"text\":\"listed: 4 reporters\"}]}";
	const char *unknown =
	    "{\"verdict\":\"unknown\",\"reasons\":["
	    "{\"code\":\"csa_fail\",\"text\":\"CSA fail: not authorised\"},"
	    "{\"code\":\"no_reports\",\"subject\":\"ip:192.0.2.7\",\"text\":\"no reports\"}]}";

	assert_int_equal(repverdict_parse(block, strlen(block), &v, &e), 0);
	assert_string_equal(v.reason, "listed: 4 reporters");
	assert_int_equal(repverdict_parse(unknown, strlen(unknown), &v, &e), 0);
	assert_string_equal(v.reason, "CSA fail: not authorised");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_disabled_and_bad_url),
	    cmocka_unit_test(test_verdicts),
	    cmocka_unit_test(test_cache_hits),
	    cmocka_unit_test(test_cache_bounded),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_timeout_and_backoff),
	    cmocka_unit_test(test_refused_question_no_backoff),
	    cmocka_unit_test(test_unreachable),
	    cmocka_unit_test(test_untrusted_certificate),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_payload),
	    cmocka_unit_test(test_payload_unverified),
	    cmocka_unit_test(test_payload_own_hops),
	    cmocka_unit_test(test_payload_from_authres),
	    cmocka_unit_test(test_report),
	    cmocka_unit_test(test_report_refused),
	    cmocka_unit_test(test_repverdict),
	    cmocka_unit_test(test_repverdict_deciding_reason),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
