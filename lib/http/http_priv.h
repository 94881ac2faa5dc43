/*
 * http_priv.h - what the files of the HTTPS server layer share, and nobody
 * else: the server's state and the libmicrohttpd callbacks of the request
 * path (http_path.c) that http_server.c registers when it starts the daemon.
 */
#ifndef ANCHOR_HTTP_PRIV_H
#define ANCHOR_HTTP_PRIV_H

#include <stdarg.h>
#include <stddef.h>

#include <microhttpd.h>

#include "http/http.h"
#include "http/metrics.h"
#include "http/ratelimit.h"
#include "pki/tls_policy.h"

struct http_tls;

#define HTTP_JSON "application/json"
#define HTTP_JOSE_JSON "application/jose+json"

struct http_server {
	struct MHD_Daemon *daemon;
	struct http_config cfg;
	struct ratelimit *rl;
	struct metrics *metrics;
	struct http_tls *tls; /* session ticket keys (http_tls.h); NULL without TLS */
	char *tls_cert;
	char *tls_key;
	size_t tls_key_len;
	struct tls_policy policy; /* what the TLS settings map to (gnutls: the priorities) */
	int port;
};

/* A JSON error {"error": code, "message": msg} with status (http_reply.c). */
void http_reply_code(struct http_response *resp, int status, const char *code, const char *msg);
/* "application/json" with optional parameters; a charset, if given, must be UTF-8
 * (http_request.c). */
int http_is_json_type(const char *ct);

/* The request path (http_path.c), as libmicrohttpd calls it; cls is the struct http_server. */
enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls);
void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode toe);
void http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe);
void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
/* libmicrohttpd's own messages, one warning line each. */
__attribute__((format(printf, 2, 0))) void http_mhd_log(void *cls, const char *fmt, va_list ap);

#endif
