/*
 * https_client.h - the one HTTPS client of every program that asks a key server
 * or another service (libcurl): GET of a path at host:port or at a base URL, POST
 * of a body to a base URL, and any method (PUT, DELETE, ...) to a whole URL.
 *
 * The TLS peer is always verified (the system store or the configured CA file,
 * host name included); nothing turns that off.  Replies are owned by the caller
 * and released with https_reply_clear().
 */
#ifndef ANCHOR_HTTPS_CLIENT_H
#define ANCHOR_HTTPS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct https_opts {
	const char *cacert;     /* NULL: system store */
	const char *token;      /* bearer token or NULL (never logged) */
	const char *resolve_ip; /* connect to this address instead of resolving the host */
	int connect_timeout_ms;
	int timeout_ms;
	int want_peer_cert;         /* fill peer_cert_pem */
	const char *user_agent;     /* NULL: "anchormail/1" */
	int allow_http;             /* https_easy_setup: also plain http:// (a local service) */
	const char *const *headers; /* more "Name: value" lines, NULL-terminated, or NULL */
	int any_status; /* a non-2xx answer is returned (0, status and body) for the caller
	                 * to judge, instead of the fetch_status error */
	const char
	    *resolve;      /* "HOST:PORT:ADDR" as curl --resolve (checked by the caller), or NULL */
	long max_response; /* the largest answer taken, in octets (0: 4 MiB) */
	int hide_url;      /* errors say "the request", not the URL (it may carry a secret) */
};

struct https_reply {
	long status;
	char *body; /* NUL-terminated */
	size_t len;
	char *peer_cert_pem; /* leaf certificate of the TLS peer, when asked */
	char request_id[64]; /* the answer's X-Request-Id (control bytes as '?'), or "" */
};

/* curl_global_init once per process (thread-safe). */
int https_init(struct err *e);
/* GET https://host:port/path.  Errors: fetch_connect, fetch_tls, fetch_timeout, fetch_failed,
 * fetch_status (non-2xx; message from the server's error body), fetch_too_big. */
int https_get(const char *host, uint16_t port, const char *path, const struct https_opts *o,
              struct https_reply *out, struct err *e);
/* GET http://host:port/path, in plain HTTP (o->allow_http must be set): what ACME's
 * http-01 validation fetches; errors as https_get's. */
int https_get_plain(const char *host, uint16_t port, const char *path, const struct https_opts *o,
                    struct https_reply *out, struct err *e);
/* Same for a base URL ("https://127.0.0.1:8443"). */
int https_get_url(const char *base_url, const char *path, const struct https_opts *o,
                  struct https_reply *out, struct err *e);
/* POST body (len octets of content_type) to base_url + path; the answer as above.
 * Transport errors as https_get's. */
int https_post_url(const char *base_url, const char *path, const struct https_opts *o,
                   const char *content_type, const char *body, size_t len, struct https_reply *out,
                   struct err *e);
/* method ("GET", "POST", "PUT", "DELETE", ...) to a whole URL (https://, or http:// with
 * allow_http), with body (len octets of content_type, "application/json" when NULL) or
 * none (body NULL).  The answer and errors as https_get's. */
int https_request(const char *method, const char *url, const struct https_opts *o,
                  const char *content_type, const char *body, size_t len, struct https_reply *out,
                  struct err *e);
/* Releases and wipes (answers can carry tokens) the reply's members; accepts NULL. */
void https_reply_clear(struct https_reply *r);

/*
 * The settings every libcurl handle of the tree gets, for the clients that drive their
 * own handles (a multi loop, a pool of kept connections): https only (unless allow_http),
 * the peer and its host name verified against cacert or the system store, the two
 * timeouts, no signals, the user agent, the peer certificate when asked.  The caller
 * sets the URL, the sink and its headers.  easy is a CURL *.
 */
void https_easy_setup(void *easy, const struct https_opts *o);

#endif
