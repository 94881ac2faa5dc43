/*
 * http.h - the HTTPS server layer shared by the daemons, over libmicrohttpd.
 *
 * The layer owns everything that is the same for every resource: TLS, the
 * request gate (http_gate.h: target encoding, NUL, UTF-8, framing), per-address
 * connection limits and the first-request deadline, a request id, body size limits, content-type
 * and JSON/UTF-8 checks, per-client rate limiting (429 + Retry-After), /healthz, Prometheus
 * /metrics, access logging and JSON error bodies {"error": code, "message": sentence}.  The
 * application supplies one dispatch function that sees a complete, checked
 * request and fills a response.
 */
#ifndef ANCHOR_HTTP_H
#define ANCHOR_HTTP_H

#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

#define HTTP_REQID_LEN 17 /* 16 hex digits + NUL */
#define HTTP_MAX_SEGMENTS 8

struct http_request {
	const char *method;    /* "GET", "POST", ... */
	const char *path;      /* URL path, percent-decoded, no query string; valid UTF-8
	                        * without NUL (the gate refused anything else) */
	const char *reqid;     /* random id, also sent back as X-Request-Id */
	const char *client_ip; /* textual client address */
	const char *content_type;
	const char *authorization; /* the Authorization header or NULL */
	const char *if_none_match;
	const char *host; /* the Host header or NULL (ACME builds its absolute URLs on it) */
	const char *body; /* NUL-terminated copy of the body (may be empty) */
	size_t body_len;
	json_t *json; /* parsed body when it was application/json, else NULL (borrowed) */
	void *conn;   /* struct MHD_Connection *, for query arguments */
	/* The path split on '/', e.g. "/v1/keys/x" -> {"v1","keys","x"}. */
	const char *seg[HTTP_MAX_SEGMENTS];
	int nseg;
};

#define HTTP_MAX_HEADERS 8

struct http_response {
	int status;
	char *body; /* malloc'd, freed by the layer; NULL only with 204/304 */
	size_t body_len;
	const char *content_type; /* static string */
	const char *route;        /* metrics label, static string (e.g. "address_lookup") */
	struct {
		const char *name; /* static */
		char value[320];  /* room for an absolute URL (ACME's Location, Link) or a CSP */
	} headers[HTTP_MAX_HEADERS];
	int nheaders;
};

/* Called from libmicrohttpd worker threads, possibly many at once. */
typedef void (*http_dispatch_fn)(const struct http_request *req, struct http_response *resp,
                                 void *app);
/* Extra Prometheus text appended to /metrics; write at most len bytes into buf,
 * return the number written. */
typedef size_t (*http_metrics_fn)(char *buf, size_t len, void *app);
/* /healthz: return 0 when healthy, -1 with *e filled otherwise. */
typedef int (*http_health_fn)(void *app, struct err *e);

struct tls_policy_conf;

struct http_config {
	const char *listen_addr; /* "127.0.0.1", "::1", "0.0.0.0", "::" */
	int port;
	const char *tls_cert_file; /* PEM; both NULL only when plain HTTP is explicitly allowed */
	const char *tls_key_file;
	int allow_plain_http;     /* for tests behind a TLS terminator; off by default */
	long tls_ticket_rotation; /* seconds each session ticket key seals new tickets
	                           * (accepted one period more); 0: 3600 (http_tls.h) */
	const struct tls_policy_conf *tls_policy; /* pki/tls_policy.h; NULL: the defaults */
	size_t max_body;                          /* bytes */
	int threads;                              /* worker threads */
	int max_connections;
	int max_connections_per_ip; /* from one client address; 0: no limit */
	int conn_timeout;           /* seconds a kept-alive connection may stay idle */
	int request_timeout;        /* seconds a new connection may stay silent (TLS
	                             * handshake included) until its first request's
	                             * headers are in; 0: conn_timeout */
	double rate_per_sec;        /* per-client token bucket refill; 0 disables limiting */
	double rate_burst;          /* bucket size */
	http_dispatch_fn dispatch;
	http_metrics_fn metrics;
	http_health_fn health;
	void *app;
};

struct http_server;

struct http_server *http_server_start(const struct http_config *cfg, struct err *e);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *srv);
void http_server_stop(struct http_server *srv); /* accepts NULL */

/* Response helpers.  They replace any body already set.  An ERR_INTERNAL error
 * is answered 500 "internal" without its message, which is for the log. */
void http_reply_json(struct http_response *resp, int status, json_t *body /* stolen */);
void http_reply_error(struct http_response *resp, const struct err *e);
void http_reply_errorf(struct http_response *resp, enum err_kind kind, const char *code,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void http_reply_text(struct http_response *resp, int status, const char *content_type,
                     char *body /* stolen */, size_t len);
void http_add_header(struct http_response *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Routing helpers: path segment i is s; method is one of a space-separated list. */
int http_seg_is(const struct http_request *req, int i, const char *s);
int http_method_in(const char *method, const char *methods);

/* A query-string argument or NULL. */
const char *http_query_arg(const struct http_request *req, const char *name);

/* The decoded query arguments in arrival order as "a=1&b=2" ("" for none); -1 when they
 * do not fit in len.  For keys that tell requests apart (caches). */
int http_query_string(const struct http_request *req, char *buf, size_t len);

/* Bearer token from the Authorization header, or NULL. */
const char *http_bearer_token(const struct http_request *req);

/* A string member of a JSON body: NULL when absent (ERR_INPUT "bad_request" when required)
 * or not a string (always an error). */
const char *http_json_str(json_t *obj, const char *key, int required, struct err *e);

/* The bearer token is the one whose SHA-256 (hex) is want_hash, compared in constant
 * time; want_hash NULL means the API is disabled (403). */
int http_auth_token_hash(const struct http_request *req, const char *want_hash, struct err *e);

/*
 * The layer's check of a request body, exported for the fuzzer: an empty body
 * gives 0 and *out NULL; otherwise the body must be at most max_body bytes
 * (body_too_large), sent as application/json with no charset but UTF-8
 * (unsupported_media_type), valid UTF-8 JSON without duplicate keys (bad_json)
 * and an object (bad_request).  On success *out is a new reference.
 */
int http_parse_json_body(const char *content_type, const char *body, size_t len, size_t max_body,
                         json_t **out, struct err *e);

#endif
