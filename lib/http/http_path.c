/*
 * http_path.c - the HTTPS server layer over libmicrohttpd: the path of a request,
 * from its connection to its answer; see http.h.  What a handler uses to read
 * the request and fill the reply is http_request.c and http_reply.c; starting
 * and stopping the server, http_server.c.
 *
 * libmicrohttpd calls http_on_request() several times per request: once when
 * the headers are in, once per piece of body, and once more when the request
 * is complete.  For a request with a body, everything that can be decided
 * from the headers (rate limit, Content-Length against max_body,
 * Content-Type) is decided on the first call, so that a refused upload is
 * never read; libmicrohttpd then closes the connection after the answer.
 * A request without a body - every GET - is answered on the second call,
 * which keeps the connection alive, from state on the stack: the hot path
 * allocates nothing but the response body.
 *
 * Before any of that, every request passes the gate (http_gate.h): its target
 * is checked as sent on the request line (by the URI-log callback, which
 * libmicrohttpd calls before it percent-decodes anything) and its framing
 * headers on the first call; a refusal is answered there, with a JSON error,
 * and no handler sees the request.
 *
 * Connections: at most max_connections_per_ip from one address (libmicrohttpd
 * closes the rest at accept), and a connection gets request_timeout seconds of
 * silence, TLS handshake included, until its first request's headers are in;
 * only then is its timeout lifted to conn_timeout, the keep-alive idle limit.
 */
#include "http/http.h"
#include "http/http_priv.h"

#include "pki/crypto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "http/http_gate.h"
#include "http/http_tls.h"
#include "core/utf8.h"
#include "core/log.h"
#include "http/metrics.h"
#include "http/ratelimit.h"

#define HTTP_METRICS_MAX (64 * 1024)
#define HTTP_PATH_MAX 1024 /* protocol paths are < 600 bytes: 253-octet names at most */
#define HTTP_CHUNK_START 4096
/* A chunked body (no Content-Length) found too large is drained this much
 * further so that the client can read its 413; past that, the connection is
 * closed.  libmicrohttpd 0.9.75 cannot queue a response mid-upload. */
#define HTTP_DRAIN_MAX (64 * 1024)

/* Per-request state: on the stack for bodiless requests, on the heap otherwise. */
struct http_ctx {
	double start;
	char reqid[HTTP_REQID_LEN];
	char ip[INET6_ADDRSTRLEN];
	char *body;
	size_t len, cap;
	int too_big; /* the body passed max_body: drain it, then answer 413 */
	int answered;
};

/* *con_cls for a request without a body, between its first and second call. */
static char http_bodiless_marker;
/* *con_cls for a request answered on its first call: later calls just drain. */
static char http_answered_marker;

/* ---- request ids --------------------------------------------------------- */

/* xorshift128+ per thread, seeded from the OpenSSL RNG: ids are unique, not secret. */
static __thread uint64_t http_rng[2];

static uint64_t http_rng_next(void)
{
	uint64_t s1, s0;

	if (http_rng[0] == 0 && http_rng[1] == 0) {
		struct timespec ts;

		if (RAND_bytes((unsigned char *)http_rng, sizeof(http_rng)) != 1 ||
		    (http_rng[0] == 0 && http_rng[1] == 0)) {
			clock_gettime(CLOCK_REALTIME, &ts);
			http_rng[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
			http_rng[1] = (uint64_t)(uintptr_t)&ts | 1;
		}
	}
	s1 = http_rng[0];
	s0 = http_rng[1];
	http_rng[0] = s0;
	s1 ^= s1 << 23;
	http_rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return http_rng[1] + s0;
}

static void http_make_reqid(char out[HTTP_REQID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t v = http_rng_next();

	for (int i = HTTP_REQID_LEN - 2; i >= 0; i--) {
		out[i] = hex[v & 0xf];
		v >>= 4;
	}
	out[HTTP_REQID_LEN - 1] = '\0';
}

/* ---- answering ----------------------------------------------------------- */

/* The path for the log, cut; log_msg() escapes control bytes and invalid UTF-8. */
static void http_log_path(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src);
}

static void http_account(struct http_server *srv, const struct http_ctx *ctx, const char *method,
                         const char *url, int status, size_t bytes, const char *route)
{
	double secs = ratelimit_now() - ctx->start;
	char path[256];

	metrics_observe(srv->metrics, route, status, secs);
	http_log_path(path, sizeof(path), url);
	log_info(ctx->reqid, "%s %s %d %zu bytes %.1fms ip=%s", method, path, status, bytes,
	         secs * 1e3, ctx->ip);
}

/* Hand resp to libmicrohttpd; resp->body is consumed whatever happens. */
static enum MHD_Result http_send(struct http_server *srv, struct MHD_Connection *conn,
                                 const struct http_ctx *ctx, const char *method, const char *url,
                                 struct http_response *resp)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t len = resp->body_len;

	r = MHD_create_response_from_buffer(len, resp->body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(resp->body);
		resp->body = NULL;
		log_err(ctx->reqid, "http: cannot create a response");
		return MHD_NO;
	}
	resp->body = NULL;
	MHD_add_response_header(r, "X-Request-Id", ctx->reqid);
	if (resp->content_type != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
	for (int i = 0; i < resp->nheaders && i < HTTP_MAX_HEADERS; i++) {
		if (MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value) !=
		    MHD_YES)
			log_warn(ctx->reqid, "http: header %s refused", resp->headers[i].name);
	}
	ret = MHD_queue_response(conn, (unsigned)resp->status, r);
	MHD_destroy_response(r);
	http_account(srv, ctx, method, url, resp->status, len, resp->route);
	return ret;
}

static enum MHD_Result http_send_error(struct http_server *srv, struct MHD_Connection *conn,
                                       const struct http_ctx *ctx, const char *method,
                                       const char *url, const struct err *e, const char *route)
{
	struct http_response resp;

	memset(&resp, 0, sizeof(resp));
	http_reply_error(&resp, e);
	resp.route = route;
	return http_send(srv, conn, ctx, method, url, &resp);
}

static void http_health(struct http_server *srv, struct http_response *resp)
{
	struct err e;

	err_clear(&e);
	if (srv->cfg.health != NULL && srv->cfg.health(srv->cfg.app, &e) < 0) {
		/* unhealthy is the expected answer here, not an internal error */
		http_reply_code(resp, 503, e.code[0] ? e.code : "unavailable",
		                e.msg[0] ? e.msg : "The service is unavailable.");
		return;
	}
	http_reply_text(resp, 200, HTTP_JSON, strdup("{\"status\":\"ok\"}"), 15);
}

static void http_metrics(struct http_server *srv, struct http_response *resp)
{
	char *buf = malloc(HTTP_METRICS_MAX);
	size_t off, n = 0;

	if (buf == NULL) {
		http_reply_errorf(resp, ERR_INTERNAL, "internal", "out of memory");
		return;
	}
	off = metrics_render(srv->metrics, buf, HTTP_METRICS_MAX);
	if (srv->cfg.metrics != NULL) {
		n = srv->cfg.metrics(buf + off, HTTP_METRICS_MAX - off, srv->cfg.app);
		if (n > HTTP_METRICS_MAX - off)
			n = HTTP_METRICS_MAX - off;
	}
	http_reply_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8", buf, off + n);
}

/* /healthz and /metrics: answered by the layer, not rate limited. */
static int http_ops_route(const char *url)
{
	if (strcmp(url, "/healthz") == 0)
		return 1;
	if (strcmp(url, "/metrics") == 0)
		return 2;
	return 0;
}

static int http_split_path(char *buf, const char *path, struct http_request *req)
{
	char *p;

	req->nseg = 0;
	size_t len = strlen(path);

	if (len >= HTTP_PATH_MAX)
		return -1;
	memcpy(buf, path, len + 1);
	p = buf[0] == '/' ? buf + 1 : buf;
	if (*p == '\0')
		return 0;
	for (;;) {
		char *slash = strchr(p, '/');

		if (req->nseg == HTTP_MAX_SEGMENTS)
			return -1;
		req->seg[req->nseg++] = p;
		if (slash == NULL)
			return 0;
		*slash = '\0';
		p = slash + 1;
	}
}

static void http_dispatch(struct http_server *srv, struct http_request *req,
                          struct http_response *resp)
{
	char segbuf[HTTP_PATH_MAX];
	int ops = http_ops_route(req->path);

	if (ops != 0) {
		resp->route = ops == 1 ? "healthz" : "metrics";
		if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
			http_reply_errorf(resp, ERR_INPUT, "method_not_allowed",
			                  "%s accepts GET only.", req->path);
			resp->status = 405;
			http_add_header(resp, "Allow", "GET, HEAD");
		} else if (ops == 1) {
			http_health(srv, resp);
		} else {
			http_metrics(srv, resp);
		}
		return;
	}
	if (http_split_path(segbuf, req->path, req) < 0) {
		resp->route = "not_found";
		http_reply_errorf(resp, ERR_NOTFOUND, "not_found", "No such resource.");
		return;
	}
	srv->cfg.dispatch(req, resp, srv->cfg.app);
	if (resp->status < 100 || resp->status > 599 ||
	    (resp->body == NULL && resp->status != 204 && resp->status != 304)) {
		char path[256];

		http_log_path(path, sizeof(path), req->path);
		log_err(req->reqid, "http: %s %s: the handler left no response (status %d)",
		        req->method, path, resp->status);
		resp->nheaders = 0;
		http_reply_errorf(resp, ERR_INTERNAL, "internal", "no response");
	}
}

/* The request is complete (headers and body): check the body, dispatch, reply. */
static enum MHD_Result http_answer(struct http_server *srv, struct MHD_Connection *conn,
                                   struct http_ctx *ctx, const char *url, const char *method)
{
	struct http_request req;
	struct http_response resp;
	json_t *json = NULL;
	enum MHD_Result ret;
	struct err e;

	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	req.method = method;
	req.path = url;
	req.reqid = ctx->reqid;
	req.client_ip = ctx->ip;
	req.content_type =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	req.authorization =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	req.if_none_match =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	req.host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	req.body = ctx->body != NULL ? ctx->body : "";
	req.body_len = ctx->len;
	req.conn = conn;
	if (http_parse_json_body(req.content_type, req.body, req.body_len, srv->cfg.max_body, &json,
	                         &e) < 0)
		return http_send_error(srv, conn, ctx, method, url, &e, "rejected");
	req.json = json;
	http_dispatch(srv, &req, &resp);
	ret = http_send(srv, conn, ctx, method, url, &resp);
	json_decref(json);
	return ret;
}

static void http_client_ip(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

	snprintf(buf, len, "unknown");
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
		          (socklen_t)len);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		/* on a dual-stack socket, IPv4 clients share their IPv4 bucket */
		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t)len);
		else
			inet_ntop(AF_INET6, a, buf, (socklen_t)len);
	}
}

/* 1 when the client may go on; 0 when a 429 was queued (*ret says how that went). */
static int http_rate_ok(struct http_server *srv, struct MHD_Connection *conn,
                        const struct http_ctx *ctx, const char *url, const char *method,
                        enum MHD_Result *ret)
{
	struct http_response resp;
	double retry = 1;
	long secs;

	if (srv->rl == NULL || ratelimit_take(srv->rl, ctx->ip, ctx->start, &retry))
		return 1;
	metrics_rate_limited(srv->metrics);
	secs = (long)ceil(retry);
	if (secs < 1)
		secs = 1;
	memset(&resp, 0, sizeof(resp));
	http_reply_errorf(&resp, ERR_RATE, "rate_limited",
	                  "Too many requests from this address; retry in %ld seconds.", secs);
	http_add_header(&resp, MHD_HTTP_HEADER_RETRY_AFTER, "%ld", secs);
	resp.route = "rate_limited";
	*ret = http_send(srv, conn, ctx, method, url, &resp);
	return 0;
}

static void http_ctx_init(struct http_ctx *ctx, struct MHD_Connection *conn)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->start = ratelimit_now();
	http_make_reqid(ctx->reqid);
	http_client_ip(conn, ctx->ip, sizeof(ctx->ip));
}

/* A request without a body, now complete: limit, dispatch, reply. */
static enum MHD_Result http_bodiless(struct http_server *srv, struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
	struct http_ctx local;
	enum MHD_Result ret;

	http_ctx_init(&local, conn);
	if (http_ops_route(url) == 0 && !http_rate_ok(srv, conn, &local, url, method, &ret))
		return ret;
	return http_answer(srv, conn, &local, url, method);
}

/* The request line and headers are in: from now on the connection may stay idle as long
 * as conn_timeout, not only the shorter request_timeout of a new connection. */
static void http_lift_deadline(struct http_server *srv, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;
	unsigned want = (unsigned)srv->cfg.conn_timeout;

	if (srv->cfg.request_timeout <= 0 || srv->cfg.request_timeout == srv->cfg.conn_timeout)
		return;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_TIMEOUT);
	if (ci != NULL && ci->connection_timeout == want)
		return; /* a later request on a kept-alive connection */
	MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, want);
}

/*
 * Per connection (libmicrohttpd's socket context): the target the URI-log callback saw
 * for the current request.  libmicrohttpd hands it over as a C string, so a raw NUL
 * byte on the request line would cut it short unseen; the first call compares this
 * length with the target's real extent, which ends where the HTTP version starts.
 * Over TLS it also points to the ticket keys, for the handshake hook below.
 */
struct http_conn {
	const char *uri;
	size_t uri_len;
	struct http_tls *tls;   /* the server's ticket keys; NULL: no resumption */
	struct metrics_tls *hs; /* where the handshake is counted */
	int tickets_chosen;     /* a ClientHello has chosen the ticket key */
};

static struct http_conn *http_conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

/* GnuTLS, as the ClientHello comes in: which ticket key the session uses
 * (http_tls_choose()).  A second hello (after a HelloRetryRequest) keeps the first
 * choice, since GnuTLS takes the key once per session.  And once the client's
 * Finished is in (the last handshake message a server receives, full or resumed, TLS
 * 1.2 or 1.3): the handshake is counted by version and resumption.  GnuTLS keeps one
 * hook per session, so this one takes every message and picks these two. */
static int http_on_handshake_msg(gnutls_session_t s, unsigned htype, unsigned when,
                                 unsigned incoming, const gnutls_datum_t *msg)
{
	struct MHD_Connection *conn = gnutls_session_get_ptr(s);
	struct http_conn *hc = conn != NULL ? http_conn_of(conn) : NULL;
	int version;

	if (hc == NULL || !incoming)
		return 0;
	if (htype == GNUTLS_HANDSHAKE_CLIENT_HELLO && when == GNUTLS_HOOK_PRE && hc->tls != NULL &&
	    !hc->tickets_chosen) {
		hc->tickets_chosen = 1;
		(void)http_tls_choose(hc->tls, s, msg->data, msg->size);
	} else if (htype == GNUTLS_HANDSHAKE_FINISHED && when == GNUTLS_HOOK_POST) {
		version = gnutls_protocol_get_version(s) == GNUTLS_TLS1_3   ? 0x0304
		          : gnutls_protocol_get_version(s) == GNUTLS_TLS1_2 ? 0x0303
		                                                            : 0;
		metrics_tls_handshake(hc->hs, version, gnutls_session_is_resumed(s) != 0);
	}
	return 0;
}

/* Session resumption and the handshake count for a new TLS connection: the hook
 * above finds the keys through the connection, which libmicrohttpd keeps as the
 * session's pointer; with a libmicrohttpd that keeps something else there,
 * connections just do full handshakes, uncounted. */
static void http_arm_tickets(struct http_server *srv, struct MHD_Connection *conn,
                             struct http_conn *hc)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t s;

	if (srv->tls == NULL || ci == NULL || ci->tls_session == NULL)
		return;
	s = ci->tls_session;
	if (gnutls_session_get_ptr(s) != conn)
		return;
	hc->tls = srv->tls;
	hc->hs = metrics_tls_of(srv->metrics);
	gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_BOTH,
	                                   http_on_handshake_msg);
}

void http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *srv = cls;
	struct http_conn *hc;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		hc = calloc(1, sizeof(*hc));
		*socket_context = hc;
		if (hc != NULL)
			http_arm_tickets(srv, conn, hc);
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		free(*socket_context);
		*socket_context = NULL;
	}
}

/* Before libmicrohttpd decodes the target: the gate's verdict becomes the request's
 * initial *con_cls (NULL, or the refusal to answer on the first call). */
void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_conn *hc = http_conn_of(conn);
	enum http_gate_verdict v;
	size_t len;

	(void)cls;
	if (uri == NULL) /* a request line without a target: libmicrohttpd refuses it */
		return NULL;
	len = strlen(uri);
	if (hc != NULL) {
		hc->uri = uri;
		hc->uri_len = len;
	}
	v = http_gate_target(uri, len);
	return v == HTTP_GATE_OK ? NULL : (void *)(uintptr_t)http_gate_refusal(v);
}

/* 1 when the target on the request line held a raw NUL: the part the URI-log callback
 * saw ends before the space that precedes the HTTP version.  url and version point into
 * the request line as libmicrohttpd read it. */
static int http_raw_nul(struct MHD_Connection *conn, const char *url, const char *version)
{
	const struct http_conn *hc = http_conn_of(conn);

	if (hc == NULL || hc->uri == NULL || hc->uri != url || version == NULL ||
	    *version == '\0' || version <= url)
		return 0;
	return hc->uri_len < (size_t)(version - 1 - url);
}

static enum MHD_Result http_framing_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                          size_t key_size, const char *value, size_t value_size)
{
	(void)kind;
	return http_gate_framing_field(cls, key, key_size, value, value_size) == HTTP_GATE_OK
	           ? MHD_YES
	           : MHD_NO;
}

/* The gate's refusal, answered with its JSON error; framing refusals close the
 * connection, as the bytes after the headers cannot be told apart any more. */
static enum MHD_Result http_send_refusal(struct http_server *srv, struct MHD_Connection *conn,
                                         const struct http_ctx *ctx, const char *method,
                                         const char *url, const struct http_gate_refusal *r)
{
	struct http_response resp;

	memset(&resp, 0, sizeof(resp));
	http_reply_code(&resp, r->status, r->code, r->message);
	if (r->close)
		http_add_header(&resp, MHD_HTTP_HEADER_CONNECTION, "close");
	resp.route = "rejected";
	log_info(ctx->reqid, "http: refused (%s): %s", r->code, r->message);
	return http_send(srv, conn, ctx, method, url, &resp);
}

/* The gate over a request whose headers are in: the target's verdict (target_cls, from
 * http_on_uri), a raw NUL on the request line, then the framing headers.  NULL when the
 * request may go on; *framing, *has_body and *chunked then describe its body. */
static const struct http_gate_refusal *http_gate_request(struct MHD_Connection *conn,
                                                         const char *url, const char *version,
                                                         const void *target_cls,
                                                         struct http_gate_framing *framing,
                                                         int *has_body, int *chunked)
{
	enum http_gate_verdict v = http_gate_refusal_verdict(target_cls);

	if (v == HTTP_GATE_OK && http_raw_nul(conn, url, version))
		v = HTTP_GATE_NUL;
	if (v == HTTP_GATE_OK) {
		http_gate_framing_init(framing,
		                       version != NULL && strcmp(version, "HTTP/1.0") == 0);
		MHD_get_connection_values_n(conn, MHD_HEADER_KIND, http_framing_field, framing);
		v = http_gate_framing_end(framing, has_body, chunked);
	}
	return http_gate_refusal(v); /* NULL for HTTP_GATE_OK */
}

/*
 * First call for a request: the headers are in, the body (if any) is not.
 * Run the gate, then refuse an upload that can be refused now, before a byte
 * of it is read.
 */
static enum MHD_Result http_first_call(struct http_server *srv, struct MHD_Connection *conn,
                                       const char *url, const char *method, const char *version,
                                       void **con_cls)
{
	const struct http_gate_refusal *refusal;
	struct http_gate_framing framing = {0};
	int has_body = 0, chunked = 0;
	const char *ct;
	struct http_ctx local;
	enum MHD_Result ret;
	struct http_ctx *ctx;
	struct err e;

	http_lift_deadline(srv, conn);
	refusal = http_gate_request(conn, url, version, *con_cls, &framing, &has_body, &chunked);
	if (refusal == NULL && !has_body) {
		*con_cls = &http_bodiless_marker;
		return MHD_YES;
	}

	http_ctx_init(&local, conn);
	*con_cls = &http_answered_marker; /* unless the body is to be read after all */
	if (refusal != NULL)
		return http_send_refusal(srv, conn, &local, method, url, refusal);
	if (http_ops_route(url) == 0 && !http_rate_ok(srv, conn, &local, url, method, &ret))
		return ret;
	if (!chunked && framing.length > srv->cfg.max_body) {
		err_set(&e, ERR_TOOBIG, "body_too_large",
		        "The body exceeds the limit of %zu bytes.", srv->cfg.max_body);
		return http_send_error(srv, conn, &local, method, url, &e, "rejected");
	}
	ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!chunked && !http_is_json_type(ct)) {
		err_set(&e, ERR_MEDIA, "unsupported_media_type",
		        "A body must be sent as application/json (UTF-8).");
		return http_send_error(srv, conn, &local, method, url, &e, "rejected");
	}

	ctx = malloc(sizeof(*ctx));
	if (ctx == NULL)
		return MHD_NO;
	*ctx = local;
	if (!chunked) {
		ctx->body = malloc((size_t)framing.length + 1);
		if (ctx->body == NULL) {
			free(ctx);
			return MHD_NO;
		}
		ctx->cap = (size_t)framing.length + 1;
	}
	*con_cls = ctx;
	return MHD_YES;
}

/* A piece of body: keep it, or drop it once the body has grown past max_body. */
static enum MHD_Result http_take_body(struct http_server *srv, struct http_ctx *ctx,
                                      const char *data, size_t *size)
{
	size_t n = *size, need;

	*size = 0;
	if (ctx->too_big || n > srv->cfg.max_body - ctx->len) {
		if (!ctx->too_big) {
			ctx->too_big = 1;
			free(ctx->body);
			ctx->body = NULL;
			ctx->cap = 0;
		}
		ctx->len += n;
		if (ctx->len - srv->cfg.max_body > HTTP_DRAIN_MAX) {
			log_info(ctx->reqid, "http: body past %zu bytes, connection closed",
			         srv->cfg.max_body + HTTP_DRAIN_MAX);
			return MHD_NO;
		}
		return MHD_YES;
	}
	need = ctx->len + n + 1;
	if (need > ctx->cap) {
		size_t cap = ctx->cap < HTTP_CHUNK_START ? HTTP_CHUNK_START : ctx->cap;
		char *grown;

		while (cap < need)
			cap *= 2;
		if (cap > srv->cfg.max_body + 1)
			cap = srv->cfg.max_body + 1;
		grown = realloc(ctx->body, cap);
		if (grown == NULL)
			return MHD_NO;
		ctx->body = grown;
		ctx->cap = cap;
	}
	memcpy(ctx->body + ctx->len, data, n);
	ctx->len += n;
	ctx->body[ctx->len] = '\0';
	return MHD_YES;
}

/* The body is complete. */
static enum MHD_Result http_body_done(struct http_server *srv, struct MHD_Connection *conn,
                                      struct http_ctx *ctx, const char *url, const char *method)
{
	struct err e;

	if (ctx->answered)
		return MHD_YES;
	ctx->answered = 1;
	if (ctx->too_big) {
		err_set(&e, ERR_TOOBIG, "body_too_large",
		        "The body exceeds the limit of %zu bytes.", srv->cfg.max_body);
		return http_send_error(srv, conn, ctx, method, url, &e, "rejected");
	}
	return http_answer(srv, conn, ctx, url, method);
}

enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	void *state = *con_cls;

	if (state == NULL)
		return http_first_call(srv, conn, url, method, version, con_cls);
	if (state == &http_answered_marker || state == &http_bodiless_marker) {
		if (*upload_data_size > 0) {
			*upload_data_size = 0; /* answered already, or not expected: drop */
			return MHD_YES;
		}
		if (state == &http_answered_marker)
			return MHD_YES;
		*con_cls = &http_answered_marker;
		return http_bodiless(srv, conn, url, method);
	}
	if (http_gate_refusal_verdict(state) != HTTP_GATE_OK) /* refused target: first call */
		return http_first_call(srv, conn, url, method, version, con_cls);
	if (*upload_data_size > 0)
		return http_take_body(srv, state, upload_data, upload_data_size);
	return http_body_done(srv, conn, state, url, method);
}

void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode toe)
{
	struct http_ctx *ctx = *con_cls;

	if (ctx != NULL && (void *)ctx != &http_answered_marker &&
	    (void *)ctx != &http_bodiless_marker &&
	    http_gate_refusal_verdict(ctx) == HTTP_GATE_OK) {
		free(ctx->body);
		free(ctx);
	}
	*con_cls = NULL;
}

void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_warn(NULL, "microhttpd: %s", line);
}
