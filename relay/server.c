/*
 * server.c - the SMTP listeners: accepting connections within the limits
 * (max_connections, max_connections_per_ip), handing each to conn.c with its
 * side's callbacks, and the STARTTLS server context.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "core/hash.h"
#include "core/log.h"
#include "pki/tls_policy.h"
#include "relayd.h"

static void sockaddr_ip(const struct sockaddr *sa, char *out, size_t size)
{
	const void *addr = sa->sa_family == AF_INET6
	                       ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
	                       : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (inet_ntop(sa->sa_family, addr, out, (socklen_t)size) == NULL)
		snprintf(out, size, "unknown");
}

/* Over a limit: a one-line 421 written directly, then close (RFC 5321 §3.8). */
static void refuse_fd(evutil_socket_t fd, const char *text)
{
	ssize_t w = send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);

	(void)w;
	evutil_closesocket(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg, enum relayd_side side)
{
	struct relayd *d = arg;
	struct relayd_conn *c;
	char ip[64];

	(void)l;
	(void)salen;
	sockaddr_ip(sa, ip, sizeof(ip));
	d->st.connections++;
	if (d->stopping || d->nconns >= (unsigned)d->s->max_connections) {
		log_info(NULL, "%s: too many connections (%u), refused", ip, d->nconns);
		refuse_fd(fd, "421 4.7.0 Too many connections, try again later\r\n");
		return;
	}
	if (side == RELAYD_INBOUND) {
		if (relayd_ip_claim(d, ip) < 0) {
			log_info(NULL, "%s: over max_connections_per_ip (%lld), refused", ip,
			         d->s->max_connections_per_ip);
			refuse_fd(fd, "421 4.7.0 Too many connections from your address\r\n");
			return;
		}
	}
	c = relayd_conn_new(d, side, fd, ip,
	                    side == RELAYD_INBOUND ? &relayd_inbound_callbacks
	                                           : &relayd_submission_callbacks);
	if (c == NULL) {
		if (side == RELAYD_INBOUND)
			relayd_ip_release(d, ip);
		log_err(NULL, "%s: out of memory for a connection", ip);
		return;
	}
	log_debug(NULL, "conn %lu: %s connected (%s)", c->id, ip,
	          side == RELAYD_INBOUND ? "inbound" : "submission");
	if (side == RELAYD_INBOUND)
		relayd_inbound_connected(c); /* greets once the reputation check is done */
	else
		relayd_conn_greet(c, NULL);
}

static void on_accept_in(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
	on_accept(l, fd, sa, salen, arg, RELAYD_INBOUND);
}

static void on_accept_sub(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
	on_accept(l, fd, sa, salen, arg, RELAYD_SUBMISSION);
}

/* ------------------------------------------------------------------ listeners */

/* "ADDRESS:PORT" or "[V6]:PORT"; port 0 (any free port, for tests) is allowed, which
 * evutil_parse_sockaddr_port() refuses. */
static int parse_listen(const char *text, struct sockaddr_storage *ss, int *sslen, struct err *e)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	const char *colon = strrchr(text, ':');
	char host[64], *end;
	long port;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (colon == NULL)
		goto bad;
	port = strtol(colon + 1, &end, 10);
	hl = (size_t)(colon - text);
	if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535 || hl == 0 ||
	    hl >= sizeof(host))
		goto bad;
	if (text[0] == '[') {
		if (hl < 3 || text[hl - 1] != ']')
			goto bad;
		memcpy(host, text + 1, hl - 2);
		host[hl - 2] = '\0';
		if (inet_pton(AF_INET6, host, &v6->sin6_addr) != 1)
			goto bad;
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*sslen = (int)sizeof(*v6);
		return 0;
	}
	memcpy(host, text, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, &v4->sin_addr) != 1)
		goto bad;
	v4->sin_family = AF_INET;
	v4->sin_port = htons((uint16_t)port);
	*sslen = (int)sizeof(*v4);
	return 0;
bad:
	return err_set(e, ERR_INPUT, "bad_config",
	               "cannot parse listen address '%s' (ADDRESS:PORT or [V6]:PORT)", text);
}

static int bound_port(struct evconnlistener *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &len) < 0)
		return -1;
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                      : ((struct sockaddr_in *)&ss)->sin_port);
}

static struct evconnlistener *listen_on(struct relayd *d, const char *addr, evconnlistener_cb cb,
                                        int *port, struct err *e)
{
	struct sockaddr_storage ss;
	int sslen;
	struct evconnlistener *l;

	if (parse_listen(addr, &ss, &sslen, e) < 0)
		return NULL;
	l = evconnlistener_new_bind(
	    d->base, cb, d, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 512,
	    (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		err_set(e, ERR_INTERNAL, "listen_failed", "cannot listen on %s: %s", addr,
		        strerror(errno));
		return NULL;
	}
	*port = bound_port(l);
	return l;
}

int relayd_listen(struct relayd *d, struct err *e)
{
	if (d->s->inbound_listen != NULL && *d->s->inbound_listen != '\0') {
		d->lin = listen_on(d, d->s->inbound_listen, on_accept_in, &d->port_in, e);
		if (d->lin == NULL)
			return -1;
	}
	if (d->s->submission_listen != NULL && *d->s->submission_listen != '\0') {
		d->lsub = listen_on(d, d->s->submission_listen, on_accept_sub, &d->port_sub, e);
		if (d->lsub == NULL)
			return -1;
	}
	return 0;
}

void relayd_listen_stop(struct relayd *d)
{
	if (d->lin != NULL)
		evconnlistener_free(d->lin);
	if (d->lsub != NULL)
		evconnlistener_free(d->lsub);
	d->lin = d->lsub = NULL;
}

/* OpenSSL, at each step of a STARTTLS handshake: a completed one is counted.  In TLS
 * 1.3 OpenSSL reports "done" once per handshake, not again for the tickets sent after
 * it. */
static void relayd_tls_info(const SSL *ssl, int where, int ret)
{
	(void)ret;
	if ((where & SSL_CB_HANDSHAKE_DONE) != 0)
		metrics_tls_handshake(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)), SSL_version(ssl),
		                      SSL_session_reused(ssl));
}

SSL_CTX *relayd_tls_server_ctx(const struct relay_settings *s, struct metrics_tls *hs,
                               struct err *e)
{
	struct tls_policy policy;
	SSL_CTX *ctx;

	if (s->tls_cert_file == NULL)
		return NULL;
	if (tls_policy_make(&policy, &s->tls, e) < 0)
		return NULL;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		err_set(e, ERR_INTERNAL, "tls", "cannot create a TLS context");
		return NULL;
	}
	if (tls_policy_apply_openssl(&policy, ctx, e) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* The chain file's certificates after the first are sent with it: the leaf and
	 * its issuer, so that a client holding only the root can build the path. */
	if (SSL_CTX_use_certificate_chain_file(ctx, s->tls_cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, s->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		err_set(e, ERR_INPUT, "bad_config", "cannot load %s / %s: %s", s->tls_cert_file,
		        s->tls_key_file, ERR_reason_error_string(ERR_get_error()));
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_app_data(ctx, hs);
	SSL_CTX_set_info_callback(ctx, relayd_tls_info);
	return ctx;
}
