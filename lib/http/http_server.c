/*
 * http_server.c - starting and stopping the HTTPS server: its TLS certificate
 * and key, the listening address, and libmicrohttpd's options (connection
 * limits, the first-request deadline, threads); see http.h.
 *
 * The request path itself - the callbacks registered here - is http_path.c.
 */
#include "http/http.h"
#include "http/http_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "core/log.h"
#include "http/http_tls.h"

#define HTTP_PEM_MAX (1024 * 1024)
#define HTTP_TICKET_ROTATION_DEFAULT 3600L
#define HTTP_RL_ENTRIES 65536 /* client buckets kept; bounded memory under address floods */

/* ---- server lifecycle ---------------------------------------------------- */

static int http_read_pem(const char *path, char **out, size_t *outlen, struct err *e)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len;

	if (f == NULL) {
		err_set(e, ERR_INPUT, "tls_file", "Cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(HTTP_PEM_MAX + 1);
	if (buf == NULL) {
		err_set(e, ERR_INTERNAL, "no_memory", "out of memory");
		goto fail;
	}
	len = fread(buf, 1, HTTP_PEM_MAX + 1, f);
	if (ferror(f) || len == 0 || len > HTTP_PEM_MAX) {
		err_set(e, ERR_INPUT, "tls_file", "%s: unreadable, empty or too large", path);
		goto fail;
	}
	buf[len] = '\0';
	fclose(f);
	*out = buf;
	*outlen = len;
	return 0;
fail:
	if (buf != NULL)
		OPENSSL_cleanse(buf, HTTP_PEM_MAX + 1);
	free(buf);
	fclose(f);
	return -1;
}

static int http_load_tls(struct http_server *srv, const struct http_config *cfg, struct err *e)
{
	size_t len;

	if (cfg->tls_cert_file == NULL && cfg->tls_key_file == NULL) {
		if (cfg->allow_plain_http)
			return 0;
		return err_set(e, ERR_INPUT, "tls_required",
		               "A TLS certificate and key are required (plain HTTP is not "
		               "allowed).");
	}
	if (cfg->tls_cert_file == NULL || cfg->tls_key_file == NULL)
		return err_set(e, ERR_INPUT, "tls_required",
		               "Both the TLS certificate and the TLS key must be set.");
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return err_set(e, ERR_INTERNAL, "tls_unsupported",
		               "libmicrohttpd was built without TLS support.");
	if (tls_policy_make(&srv->policy, cfg->tls_policy, e) < 0 ||
	    http_read_pem(cfg->tls_cert_file, &srv->tls_cert, &len, e) < 0 ||
	    http_read_pem(cfg->tls_key_file, &srv->tls_key, &srv->tls_key_len, e) < 0)
		return -1;
	srv->tls = http_tls_new(cfg->tls_ticket_rotation > 0 ? cfg->tls_ticket_rotation
	                                                     : HTTP_TICKET_ROTATION_DEFAULT,
	                        NULL, e);
	return srv->tls != NULL ? 0 : -1;
}

static int http_parse_addr(const char *addr, int port, struct sockaddr_storage *ss, unsigned *flags,
                           struct err *e)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (port < 0 || port > 65535)
		return err_set(e, ERR_INPUT, "bad_listen", "Port %d is out of range.", port);
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		/* "::" takes IPv4 clients too */
		*flags |=
		    IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
		return 0;
	}
	return err_set(e, ERR_INPUT, "bad_listen", "\"%s\" is not an IPv4 or IPv6 address.", addr);
}

#define HTTP_CONN_MEMORY (16 * 1024)
#define HTTP_OPTS_MAX 16

/* libmicrohttpd's options for srv, ending with MHD_OPTION_END; ss is the listening address. */
static void http_server_options(struct http_server *srv, const struct http_config *cfg,
                                struct sockaddr_storage *ss,
                                struct MHD_OptionItem opts[HTTP_OPTS_MAX])
{
	int n = 0;

#define HTTP_OPT(o, v, p) (opts[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)})
	HTTP_OPT(MHD_OPTION_SOCK_ADDR, 0, ss);
	/* MHD_OPTION_LISTENING_ADDRESS_REUSE stays at its default (0), which on POSIX sets
	 * SO_REUSEADDR: a restart binds its port again while the connections a killed
	 * predecessor closed sit in TIME_WAIT (test_restart_time_wait.py).  1 would add
	 * SO_REUSEPORT, and a second daemon started by mistake would share the port silently
	 * instead of failing. */
	HTTP_OPT(MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, srv);
	if (cfg->max_connections > 0)
		HTTP_OPT(MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, NULL);
	HTTP_OPT(MHD_OPTION_NOTIFY_CONNECTION, http_on_connection, srv);
	HTTP_OPT(MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, srv);
	if (cfg->max_connections_per_ip > 0)
		HTTP_OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_ip, NULL);
	/* A new connection has request_timeout until its first request is in; see
	 * http_lift_deadline(). */
	if (cfg->request_timeout > 0)
		HTTP_OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg->request_timeout, NULL);
	else if (cfg->conn_timeout > 0)
		HTTP_OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg->conn_timeout, NULL);
	if (cfg->threads > 1)
		HTTP_OPT(MHD_OPTION_THREAD_POOL_SIZE, cfg->threads, NULL);
	/* Every request resets (and zeroes) its connection's pool: keep it no larger than a
	 * request's headers need, bodies are copied out as they arrive. */
	HTTP_OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY, NULL);
	if (srv->tls_cert != NULL) {
		HTTP_OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert);
		HTTP_OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key);
		HTTP_OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, srv->policy.gnutls);
	}
	HTTP_OPT(MHD_OPTION_END, 0, NULL);
#undef HTTP_OPT
}

struct http_server *http_server_start(const struct http_config *cfg, struct err *e)
{
	struct http_server *srv = calloc(1, sizeof(*srv));
	const char *addr = cfg->listen_addr != NULL ? cfg->listen_addr : "127.0.0.1";
	struct sockaddr_storage ss;
	struct MHD_OptionItem opts[HTTP_OPTS_MAX];
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (srv == NULL) {
		err_set(e, ERR_INTERNAL, "no_memory", "out of memory");
		return NULL;
	}
	srv->cfg = *cfg;
	srv->cfg.listen_addr = NULL; /* not kept: the caller's string */
	if (cfg->dispatch == NULL) {
		err_set(e, ERR_INTERNAL, "bad_config", "http: no dispatch function");
		goto fail;
	}
	if (http_parse_addr(addr, cfg->port, &ss, &flags, e) < 0 || http_load_tls(srv, cfg, e) < 0)
		goto fail;
	srv->metrics = metrics_new();
	if (srv->metrics == NULL ||
	    (cfg->rate_per_sec > 0 && (srv->rl = ratelimit_new(cfg->rate_per_sec, cfg->rate_burst,
	                                                       HTTP_RL_ENTRIES)) == NULL)) {
		err_set(e, ERR_INTERNAL, "no_memory", "out of memory");
		goto fail;
	}
	/* Over TLS, poll(): libmicrohttpd 0.9.75's epoll loop keeps retrying a connection
	 * whose TLS handshake waits for the client instead of waiting for the socket
	 * (measured: ~180 recv() and ~80 epoll_wait() per new connection, against 9 and 2
	 * with poll), which cost a new connection more CPU than the handshake's crypto. */
	flags |= srv->tls_cert == NULL && MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES
	             ? MHD_USE_EPOLL
	             : MHD_USE_POLL;
	if (srv->tls_cert != NULL)
		flags |= MHD_USE_TLS;
	/* No MHD_USE_TURBO: with it, libmicrohttpd 0.9.75 never times out a TLS connection
	 * that has not finished its handshake (measured: a silent TCP connection stayed
	 * open indefinitely), which is the first-request deadline that keeps one client
	 * from holding the daemon.  Turbo only saved a shutdown() per close and an fcntl
	 * per accept. */

	http_server_options(srv, cfg, &ss, opts);

	/* The logger goes first in the argument list, ahead of the array, so that it catches
	 * what the other options say. */
	srv->daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, http_on_request, srv,
	                               MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, srv,
	                               MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (srv->daemon == NULL) {
		err_set(e, ERR_TEMP, "listen_failed",
		        "Cannot serve on %s port %d (address in use, or a bad TLS certificate or "
		        "key; see the microhttpd lines above).",
		        addr, cfg->port);
		goto fail;
	}
	info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info != NULL ? info->port : cfg->port;
	log_info(NULL,
	         "http: listening on %s port %d (%s, %d threads, %d connections, %d per address, "
	         "first request within %ds, idle %ds)",
	         addr, srv->port, srv->tls_cert != NULL ? "https" : "plain http",
	         cfg->threads > 1 ? cfg->threads : 1, cfg->max_connections,
	         cfg->max_connections_per_ip, cfg->request_timeout, cfg->conn_timeout);
	return srv;
fail:
	http_server_stop(srv);
	return NULL;
}

int http_server_port(const struct http_server *srv)
{
	return srv != NULL ? srv->port : -1;
}

void http_server_stop(struct http_server *srv)
{
	if (srv == NULL)
		return;
	if (srv->daemon != NULL)
		MHD_stop_daemon(srv->daemon);
	ratelimit_free(srv->rl);
	metrics_free(srv->metrics);
	http_tls_free(srv->tls);
	if (srv->tls_key != NULL)
		OPENSSL_cleanse(srv->tls_key, srv->tls_key_len);
	free(srv->tls_key);
	free(srv->tls_cert);
	free(srv);
}
