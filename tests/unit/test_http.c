/*
 * test_http.c - the HTTP layer, driven over loopback by libcurl: dispatch and
 * path segments, request ids, body limits and checks, rate limiting, /healthz,
 * /metrics, keep-alive, IPv6 and one TLS round trip with a fresh P-256 cert.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "http/http.h"
#include "core/log.h"

struct app {
	int healthy;
};

static struct app app = {.healthy = 1};

/* Echo what the layer handed over, so that the tests can check it. */
static void dispatch(const struct http_request *req, struct http_response *resp, void *arg)
{
	json_t *segs, *o;

	if (req->nseg == 2 && strcmp(req->seg[1], "nobody") == 0) {
		resp->status = 200; /* forgets the body: the layer must answer 500 */
		return;
	}
	if (req->nseg == 2 && strcmp(req->seg[1], "notmod") == 0 && req->if_none_match != NULL &&
	    strcmp(req->if_none_match, "\"v1-abc\"") == 0) {
		resp->status = 304; /* no body is fine for 304 */
		http_add_header(resp, "ETag", "%s", req->if_none_match);
		return;
	}
	if (req->nseg == 2 && strcmp(req->seg[1], "etag") == 0) {
		http_add_header(resp, "ETag", "\"%s\"", "v1-abc");
		http_add_header(resp, "Cache-Control", "public, max-age=%d", 60);
	}
	if (req->nseg == 2 && strcmp(req->seg[1], "fail") == 0) {
		http_reply_errorf(resp, ERR_CONFLICT, "token_used", "The token was used at %s.",
		                  "noon");
		resp->route = "fail";
		return;
	}
	segs = json_array();
	for (int i = 0; i < req->nseg; i++)
		json_array_append_new(segs, json_string(req->seg[i]));
	o = json_pack("{s:s, s:o, s:i, s:O?, s:s?, s:s?, s:s, s:I}", "method", req->method, "seg",
	              segs, "nseg", req->nseg, "json", req->json, "bearer", http_bearer_token(req),
	              "x", http_query_arg(req, "x"), "ip", req->client_ip, "body_len",
	              (json_int_t)req->body_len);
	resp->route = "echo";
	http_reply_json(resp, 200, o);
}

static int health(void *arg, struct err *e)
{
	struct app *a = arg;

	if (a->healthy)
		return 0;
	return err_set(e, ERR_TEMP, "unavailable", "The database is unreachable.");
}

static size_t app_metrics(char *buf, size_t len, void *arg)
{
	int n = snprintf(buf, len, "anchor_test_gauge 7\n");

	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

static struct http_config base_config(void)
{
	struct http_config cfg = {
	    .listen_addr = "127.0.0.1",
	    .port = 0,
	    .allow_plain_http = 1,
	    .max_body = 1024,
	    .threads = 2,
	    .max_connections = 64,
	    .conn_timeout = 10,
	    .dispatch = dispatch,
	    .metrics = app_metrics,
	    .health = health,
	    .app = &app,
	};
	return cfg;
}

/* ---- a tiny libcurl client ----------------------------------------------- */

struct reply {
	long status;
	CURLcode rc;
	char body[16384];
	size_t len;
	char hdr[8192];
	size_t hlen;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct reply *r = ud;
	size_t take = sz * n;

	if (take > sizeof(r->body) - 1 - r->len)
		take = sizeof(r->body) - 1 - r->len;
	memcpy(r->body + r->len, p, take);
	r->len += take;
	r->body[r->len] = '\0';
	return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct reply *r = ud;
	size_t take = sz * n;

	if (take > sizeof(r->hdr) - 1 - r->hlen)
		take = sizeof(r->hdr) - 1 - r->hlen;
	memcpy(r->hdr + r->hlen, p, take);
	r->hlen += take;
	r->hdr[r->hlen] = '\0';
	return sz * n;
}

/* The value of a response header, or NULL. */
static const char *header(const struct reply *r, const char *name, char *out, size_t len)
{
	size_t nlen = strlen(name);

	for (const char *line = r->hdr; *line != '\0';) {
		const char *end = strstr(line, "\r\n");

		if (end == NULL)
			break;
		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;

			while (*v == ' ')
				v++;
			snprintf(out, len, "%.*s", (int)(end - v), v);
			return out;
		}
		line = end + 2;
	}
	return NULL;
}

struct req_opts {
	const char *method;
	const char *ctype;
	const char *body;
	long body_len;
	const char *extra; /* one more request header */
	const char *cafile;
	int chunked;
};

static size_t chunk_left;

static size_t read_chunks(char *buf, size_t sz, size_t n, void *ud)
{
	size_t take = sz * n < chunk_left ? sz * n : chunk_left;

	memset(buf, ' ', take);
	if (take > 0)
		buf[0] = '{';
	chunk_left -= take;
	return take;
}

static void perform(CURL *c, const char *url, const struct req_opts *o, struct reply *r)
{
	struct curl_slist *h = NULL;
	char ct[128];

	memset(r, 0, sizeof(*r));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	if (o != NULL && o->method != NULL)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, o->method);
	if (o != NULL && o->body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, o->body_len);
	}
	if (o != NULL && o->chunked) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, read_chunks);
		h = curl_slist_append(h, "Transfer-Encoding: chunked");
	}
	if (o != NULL && o->ctype != NULL) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", o->ctype);
		h = curl_slist_append(h, ct);
	}
	if (o != NULL && o->extra != NULL)
		h = curl_slist_append(h, o->extra);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (o != NULL && o->cafile != NULL) {
		curl_easy_setopt(c, CURLOPT_CAINFO, o->cafile);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	}
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
}

static void fetch(int port, const char *path, const struct req_opts *o, struct reply *r)
{
	CURL *c = curl_easy_init();
	char url[256];

	assert_non_null(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	perform(c, url, o, r);
	curl_easy_cleanup(c);
}

static void assert_error_body(const struct reply *r, long status, const char *code)
{
	json_t *j;
	json_error_t je;

	if (r->status != status)
		fail_msg("want %ld, got %ld (%s): %s", status, r->status, curl_easy_strerror(r->rc),
		         r->body);
	j = json_loads(r->body, 0, &je);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "error")), code);
	assert_non_null(json_string_value(json_object_get(j, "message")));
	json_decref(j);
}

/* ---- the shared server ---------------------------------------------------- */

static struct http_server *srv;
static int port;

static int group_setup(void **state)
{
	struct http_config cfg = base_config();
	struct err e;

	log_init("test_http", LOG_LVL_WARN, 0);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	srv = http_server_start(&cfg, &e);
	if (srv == NULL) {
		fprintf(stderr, "start: %s\n", e.msg);
		return -1;
	}
	port = http_server_port(srv);
	return port > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	http_server_stop(srv);
	curl_global_cleanup();
	return 0;
}

static void test_segments_and_reqid(void **state)
{
	struct reply r;
	char v[64];
	json_t *j;

	fetch(port, "/v1/keys/a%40b.example", NULL, &r);
	assert_int_equal(r.status, 200);
	j = json_loads(r.body, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "nseg")), 3);
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "seg"), 2)),
	                    "a@b.example");
	assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
	assert_string_equal(json_string_value(json_object_get(j, "ip")), "127.0.0.1");
	assert_true(json_is_null(json_object_get(j, "json")));
	json_decref(j);
	assert_non_null(header(&r, "X-Request-Id", v, sizeof(v)));
	assert_int_equal(strlen(v), 16);
	assert_int_equal(strspn(v, "0123456789abcdef"), 16);
	assert_non_null(header(&r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "application/json");
}

static void test_reqids_differ(void **state)
{
	struct reply a, b;
	char va[64], vb[64];

	fetch(port, "/x", NULL, &a);
	fetch(port, "/x", NULL, &b);
	assert_non_null(header(&a, "X-Request-Id", va, sizeof(va)));
	assert_non_null(header(&b, "X-Request-Id", vb, sizeof(vb)));
	assert_string_not_equal(va, vb);
}

static void test_too_many_segments(void **state)
{
	struct reply r;
	char v[64];

	fetch(port, "/1/2/3/4/5/6/7/8", NULL, &r);
	assert_int_equal(r.status, 200);
	fetch(port, "/1/2/3/4/5/6/7/8/9", NULL, &r);
	assert_error_body(&r, 404, "not_found");
	assert_non_null(header(&r, "X-Request-Id", v, sizeof(v)));
}

static void test_query_and_bearer(void **state)
{
	struct req_opts o = {.extra = "Authorization: bearer  tok-123"};
	struct reply r;
	json_t *j;

	fetch(port, "/v1/q?x=hello%20there&y=2", &o, &r);
	assert_int_equal(r.status, 200);
	j = json_loads(r.body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "x")), "hello there");
	assert_string_equal(json_string_value(json_object_get(j, "bearer")), "tok-123");
	json_decref(j);

	o.extra = "Authorization: Basic dXNlcjpwYXNz";
	fetch(port, "/v1/q", &o, &r);
	j = json_loads(r.body, 0, NULL);
	assert_true(json_is_null(json_object_get(j, "bearer")));
	assert_true(json_is_null(json_object_get(j, "x")));
	json_decref(j);
}

static void test_json_body(void **state)
{
	static const char body[] = "{\"token\":\"t\",\"n\":[1,2]}";
	struct req_opts o = {
	    .ctype = "application/json; charset=utf-8", .body = body, .body_len = sizeof(body) - 1};
	struct reply r;
	json_t *j;

	fetch(port, "/v1/domains/example.com/enroll", &o, &r);
	assert_int_equal(r.status, 200);
	j = json_loads(r.body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "json"), "token")),
	                    "t");
	assert_int_equal(json_integer_value(json_object_get(j, "body_len")), sizeof(body) - 1);
	json_decref(j);
}

static void test_body_too_large(void **state)
{
	char big[1025];
	struct req_opts o = {.ctype = "application/json", .body = big, .body_len = sizeof(big)};
	struct reply r;
	char v[64];

	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[sizeof(big) - 1] = '}';
	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 413, "body_too_large");
	assert_non_null(header(&r, "X-Request-Id", v, sizeof(v)));

	/* exactly max_body is fine */
	o.body_len = 1024;
	big[1023] = '}';
	fetch(port, "/v1/x", &o, &r);
	assert_int_equal(r.status, 200);
}

static void test_chunked_too_large(void **state)
{
	struct req_opts o = {.ctype = "application/json", .chunked = 1};
	struct reply r;

	/* no Content-Length: a body a little past max_body is drained and refused */
	chunk_left = 3000;
	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 413, "body_too_large");

	/* far past it, the connection is closed before the upload ends */
	chunk_left = 4 * 1024 * 1024;
	fetch(port, "/v1/x", &o, &r);
	assert_int_not_equal(r.rc, CURLE_OK);
	assert_true(chunk_left > 1024 * 1024);

	chunk_left = 300; /* a small chunked body is read and checked as JSON */
	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 400, "bad_json");
}

static void test_wrong_media_type(void **state)
{
	struct req_opts o = {.ctype = "text/plain", .body = "{}", .body_len = 2};
	struct reply r;

	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 415, "unsupported_media_type");
	o.ctype = "application/json; charset=latin1";
	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 415, "unsupported_media_type");
	o.ctype = "application/jsonx";
	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 415, "unsupported_media_type");
	o.ctype = NULL; /* curl's default form type */
	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 415, "unsupported_media_type");
}

static void test_bad_json(void **state)
{
	struct req_opts o = {.ctype = "application/json", .body = "{\"a\": ", .body_len = 6};
	struct reply r;

	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 400, "bad_json");
	assert_non_null(strstr(r.body, "line 1"));

	o.body = "{\"a\":1,\"a\":2}";
	o.body_len = (long)strlen(o.body);
	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 400, "bad_json");
	assert_non_null(strstr(r.body, "duplicate"));

	o.body = "{} {}";
	o.body_len = 5;
	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 400, "bad_json");
}

static void test_bad_utf8(void **state)
{
	struct req_opts o = {.ctype = "application/json", .body = "{\"a\":\"\xff\xfe\"}"};
	struct reply r;

	o.body_len = (long)strlen(o.body);
	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 400, "bad_json");
	assert_non_null(strstr(r.body, "UTF-8"));
}

static void test_not_an_object(void **state)
{
	struct req_opts o = {.ctype = "application/json", .body = "[1,2]", .body_len = 5};
	struct reply r;

	fetch(port, "/v1/x", &o, &r);
	assert_error_body(&r, 400, "bad_request");
}

static void test_handler_errors(void **state)
{
	struct reply r;
	char v[96];

	fetch(port, "/v1/nobody", NULL, &r);
	assert_error_body(&r, 500, "internal");
	fetch(port, "/v1/fail", NULL, &r);
	assert_error_body(&r, 409, "token_used");
	assert_non_null(strstr(r.body, "The token was used at noon."));
	fetch(port, "/v1/etag", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(header(&r, "ETag", v, sizeof(v)));
	assert_string_equal(v, "\"v1-abc\"");
	assert_non_null(header(&r, "Cache-Control", v, sizeof(v)));
	assert_string_equal(v, "public, max-age=60");

	struct req_opts o = {.extra = "If-None-Match: \"v1-abc\""};
	fetch(port, "/v1/notmod", &o, &r);
	assert_int_equal(r.status, 304);
	assert_int_equal(r.len, 0);
	assert_non_null(header(&r, "ETag", v, sizeof(v)));
	assert_non_null(header(&r, "X-Request-Id", v, sizeof(v)));
}

static void test_healthz(void **state)
{
	struct reply r;

	fetch(port, "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"status\":\"ok\"}");
	app.healthy = 0;
	fetch(port, "/healthz", NULL, &r);
	app.healthy = 1;
	assert_error_body(&r, 503, "unavailable");
	assert_non_null(strstr(r.body, "unreachable"));
}

static void test_metrics(void **state)
{
	struct req_opts post = {.method = "POST"};
	struct reply r;
	char v[96];

	fetch(port, "/v1/counted", NULL, &r);
	assert_int_equal(r.status, 200);
	fetch(port, "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(header(&r, "Content-Type", v, sizeof(v)));
	assert_non_null(strstr(v, "text/plain; version=0.0.4"));
	assert_non_null(strstr(r.body, "anchor_http_requests_total{route=\"echo\",code=\"200\"} "));
	assert_non_null(
	    strstr(r.body, "anchor_http_requests_total{route=\"fail\",code=\"409\"} 1\n"));
	assert_non_null(strstr(r.body, "anchor_http_request_duration_seconds_bucket{le=\"+Inf\"}"));
	assert_non_null(strstr(r.body, "anchor_http_request_duration_seconds_count "));
	assert_non_null(strstr(r.body, "anchor_http_rate_limited_total 0\n"));
	assert_non_null(strstr(r.body, "anchor_test_gauge 7\n"));

	fetch(port, "/metrics", &post, &r);
	assert_int_equal(r.status, 405);
}

static void test_keep_alive(void **state)
{
	CURL *c = curl_easy_init();
	struct reply r;
	char url[128];
	long connects = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/ka", port);
	perform(c, url, NULL, &r);
	assert_int_equal(r.status, 200);
	perform(c, url, NULL, &r);
	assert_int_equal(r.status, 200);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
	assert_int_equal(connects, 0); /* the second request reused the connection */
	curl_easy_cleanup(c);
}

/* ---- servers of their own ------------------------------------------------ */

static void test_rate_limit(void **state)
{
	struct http_config cfg = base_config();
	struct http_server *s;
	struct reply r;
	struct err e;
	char v[32];
	int p;

	cfg.rate_per_sec = 0.1;
	cfg.rate_burst = 3;
	s = http_server_start(&cfg, &e);
	assert_non_null(s);
	p = http_server_port(s);
	for (int i = 0; i < 3; i++) {
		fetch(p, "/v1/x", NULL, &r);
		assert_int_equal(r.status, 200);
	}
	fetch(p, "/v1/x", NULL, &r);
	assert_error_body(&r, 429, "rate_limited");
	assert_non_null(header(&r, "Retry-After", v, sizeof(v)));
	assert_true(atoi(v) >= 9 && atoi(v) <= 10); /* one token at 0.1/s */
	/* operations endpoints are never limited */
	fetch(p, "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	fetch(p, "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "anchor_http_rate_limited_total 1\n"));
	assert_non_null(
	    strstr(r.body, "anchor_http_requests_total{route=\"rate_limited\",code=\"429\"} 1\n"));
	http_server_stop(s);
}

static void test_ipv6(void **state)
{
	struct http_config cfg = base_config();
	struct http_server *s;
	struct reply r;
	struct err e;
	char url[128];
	CURL *c;
	json_t *j;

	cfg.listen_addr = "::1";
	s = http_server_start(&cfg, &e);
	assert_non_null(s);
	c = curl_easy_init();
	snprintf(url, sizeof(url), "http://[::1]:%d/v6", http_server_port(s));
	perform(c, url, NULL, &r);
	curl_easy_cleanup(c);
	assert_int_equal(r.status, 200);
	j = json_loads(r.body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "ip")), "::1");
	json_decref(j);
	http_server_stop(s);

	/* "::" is dual stack; an IPv4 client shows as itself, not as ::ffff:... */
	cfg.listen_addr = "::";
	s = http_server_start(&cfg, &e);
	assert_non_null(s);
	fetch(http_server_port(s), "/v4", NULL, &r);
	assert_int_equal(r.status, 200);
	j = json_loads(r.body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "ip")), "127.0.0.1");
	json_decref(j);
	http_server_stop(s);
}

static void test_start_errors(void **state)
{
	struct http_config cfg = base_config();
	struct err e;

	cfg.allow_plain_http = 0;
	assert_null(http_server_start(&cfg, &e));
	assert_string_equal(e.code, "tls_required");

	cfg = base_config();
	cfg.listen_addr = "localhost"; /* an address, not a name */
	assert_null(http_server_start(&cfg, &e));
	assert_string_equal(e.code, "bad_listen");

	cfg = base_config();
	cfg.tls_cert_file = "/nonexistent/cert.pem";
	cfg.tls_key_file = "/nonexistent/key.pem";
	assert_null(http_server_start(&cfg, &e));
	assert_string_equal(e.code, "tls_file");

	cfg = base_config();
	cfg.port = port; /* taken by the shared server */
	assert_null(http_server_start(&cfg, &e));
	assert_string_equal(e.code, "listen_failed");
}

/* A self-signed P-256 certificate for 127.0.0.1 and localhost. */
static int make_cert(const char *dir, char *cert_path, char *key_path, size_t len)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_EXTENSION *ext;
	X509V3_CTX ctx;
	FILE *f;
	int ok = -1;

	if (key == NULL || x == NULL)
		goto out;
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
	if (ext == NULL)
		goto out;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (X509_sign(x, key, EVP_sha256()) == 0)
		goto out;
	snprintf(cert_path, len, "%s/cert.pem", dir);
	snprintf(key_path, len, "%s/key.pem", dir);
	f = fopen(cert_path, "w");
	if (f == NULL)
		goto out;
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key_path, "w");
	if (f == NULL)
		goto out;
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	ok = 0;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return ok;
}

static void test_tls(void **state)
{
	char dir[] = "/tmp/test_http_XXXXXX";
	char cert[128], key[128], url[128];
	struct http_config cfg = base_config();
	struct req_opts o = {0};
	struct http_server *s;
	struct reply r;
	struct err e;
	CURL *c;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(make_cert(dir, cert, key, sizeof(cert)), 0);
	cfg.allow_plain_http = 0;
	cfg.tls_cert_file = cert;
	cfg.tls_key_file = key;
	s = http_server_start(&cfg, &e);
	if (s == NULL)
		fail_msg("TLS start: %s", e.msg);

	o.cafile = cert;
	c = curl_easy_init();
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/tls/ok", http_server_port(s));
	perform(c, url, &o, &r);
	if (r.rc != CURLE_OK)
		fail_msg("https: %s", curl_easy_strerror(r.rc));
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"tls\""));
	curl_easy_cleanup(c);

	/* plain HTTP to the TLS port gets no answer */
	fetch(http_server_port(s), "/v1/x", NULL, &r);
	assert_int_not_equal(r.status, 200);

	http_server_stop(s);
	unlink(cert);
	unlink(key);
	rmdir(dir);
}

/* ---- the pure body check -------------------------------------------------- */

static void test_parse_json_body(void **state)
{
	static const struct {
		const char *ctype, *body;
		int rc;
		const char *code;
	} cases[] = {
	    {NULL, "", 0, NULL},
	    {"text/plain", "", 0, NULL}, /* no body, nothing to check */
	    {"application/json", "{}", 0, NULL},
	    {"Application/JSON", "{}", 0, NULL},
	    {" application/json ;charset=\"UTF-8\"", "{}", 0, NULL},
	    {"application/json; boundary=x; charset=utf8", "{}", 0, NULL},
	    {"application/json;charset=ascii", "{}", -1, "unsupported_media_type"},
	    {"application/json-patch", "{}", -1, "unsupported_media_type"},
	    {"application/jso", "{}", -1, "unsupported_media_type"},
	    {NULL, "{}", -1, "unsupported_media_type"},
	    {"application/json", "{\"a\":", -1, "bad_json"},
	    {"application/json", "\"str\"", -1, "bad_request"},
	    {"application/json", "null", -1, "bad_request"},
	    {"application/json", "{\"k\":\"\xc3\x28\"}", -1, "bad_json"},
	    {"application/json", "{\"k\":\"\xc3\xa9\"}", 0, NULL},
	    {"application/json", "{\"k\":\"\\u0000\"}", -1, "bad_json"},
	};
	json_t *j;
	struct err e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = http_parse_json_body(cases[i].ctype, cases[i].body, strlen(cases[i].body),
		                              64, &j, &e);

		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d (%s)", i, rc, e.msg);
		if (rc == 0) {
			assert_true(cases[i].body[0] == '\0' ? j == NULL : json_is_object(j));
			json_decref(j);
		} else {
			assert_null(j);
			assert_string_equal(e.code, cases[i].code);
		}
	}
	assert_int_equal(
	    http_parse_json_body("application/json", "{\"a\":\"long enough\"}", 20, 10, &j, &e),
	    -1);
	assert_string_equal(e.code, "body_too_large");
	assert_int_equal(e.kind, ERR_TOOBIG);
}

static void test_reply_helpers(void **state)
{
	struct http_response resp;
	struct http_request req;
	struct err e;

	memset(&resp, 0, sizeof(resp));
	err_set(&e, ERR_INTERNAL, "db_bug", "secret detail: table xyz broke");
	http_reply_error(&resp, &e);
	assert_int_equal(resp.status, 500);
	assert_null(strstr(resp.body, "secret")); /* internals stay in the log */
	assert_non_null(strstr(resp.body, "\"error\":\"internal\""));
	err_set(&e, ERR_GONE, "token_expired", "The token expired.");
	http_reply_error(&resp, &e); /* replaces, and frees, the first body */
	assert_int_equal(resp.status, 410);
	assert_string_equal(resp.body,
	                    "{\"error\":\"token_expired\",\"message\":\"The token expired.\"}");
	assert_string_equal(resp.content_type, "application/json");
	for (int i = 0; i < HTTP_MAX_HEADERS + 2; i++)
		http_add_header(&resp, "X-N", "%d", i);
	assert_int_equal(resp.nheaders, HTTP_MAX_HEADERS);
	assert_string_equal(resp.headers[2].value, "2");
	free(resp.body);

	memset(&req, 0, sizeof(req));
	assert_null(http_bearer_token(&req));
	req.authorization = "BEARER abc";
	assert_string_equal(http_bearer_token(&req), "abc");
	req.authorization = "Bearer";
	assert_null(http_bearer_token(&req));
	req.authorization = "Bearerabc";
	assert_null(http_bearer_token(&req));
	req.authorization = "Bearer   ";
	assert_null(http_bearer_token(&req));
	assert_null(http_query_arg(&req, "x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_segments_and_reqid),
	    cmocka_unit_test(test_reqids_differ),
	    cmocka_unit_test(test_too_many_segments),
	    cmocka_unit_test(test_query_and_bearer),
	    cmocka_unit_test(test_json_body),
	    cmocka_unit_test(test_body_too_large),
	    cmocka_unit_test(test_chunked_too_large),
	    cmocka_unit_test(test_wrong_media_type),
	    cmocka_unit_test(test_bad_json),
	    cmocka_unit_test(test_bad_utf8),
	    cmocka_unit_test(test_not_an_object),
	    cmocka_unit_test(test_handler_errors),
	    cmocka_unit_test(test_healthz),
	    cmocka_unit_test(test_metrics),
	    cmocka_unit_test(test_keep_alive),
	    cmocka_unit_test(test_rate_limit),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_start_errors),
	    cmocka_unit_test(test_tls),
	    cmocka_unit_test(test_parse_json_body),
	    cmocka_unit_test(test_reply_helpers),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
