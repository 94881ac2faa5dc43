/*
 * server.c - the policy socket: TCP or a Unix socket, one libevent bufferevent
 * per Postfix connection.  A connection carries one request at a time (Postfix
 * waits for each answer), so while a query is out its further lines simply
 * stay buffered.  A request that is malformed is answered DUNNO and logged,
 * as Postfix's own policy servers do; a line longer than max_line, or a
 * connection idle for idle_timeout, is closed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "mail/csa.h"
#include "core/log.h"
#include "policyd.h"

#define OUTPUT_MAX 65536 /* answers not yet read by the client */

struct conn {
	struct policy_server *srv;
	struct bufferevent *bev;
	struct policy_request req;
	int pending; /* a query to anchor-reputation is out */
	struct timespec started;
	char id[24];
	char key[64 + POLICY_DOMAIN_MAX + POLICY_VALUE_MAX + 4]; /* address|domain|helo, whole;
	                                                          a longer one is not cached */
	struct conn *next;
};

struct policy_server {
	struct event_base *base;
	const struct policy_settings *s;
	const struct policy_actions *a;
	struct policy_client *client;
	struct policy_cache *cache;
	struct evconnlistener *listener;
	struct conn *conns;
	int nconns;
	unsigned long long seq;
	int port;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void conn_process(struct conn *c);

static void conn_close(struct conn *c)
{
	struct conn **p;

	for (p = &c->srv->conns; *p != NULL; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->pending)
		policy_client_cancel(c->srv->client, c);
	c->srv->nconns--;
	bufferevent_free(c->bev);
	free(c);
}

static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Send the answer; the next request may already be buffered. */
static void conn_answer(struct conn *c, const char *line, const char *how)
{
	const struct policy_request *r = &c->req;
	size_t len = strcspn(line, "\n");
	char helo[80], sender[80];

	bufferevent_write(c->bev, line, strlen(line));
	/* the client's text, as printable ASCII: nothing it sends can forge a log line */
	csa_helo_show(r->helo_name, strlen(r->helo_name), helo, sizeof(helo));
	csa_helo_show(r->sender, strlen(r->sender), sender, sizeof(sender));
	log_msg(strncmp(line, "action=DUNNO", 12) == 0 ? LOG_LVL_DEBUG : LOG_LVL_INFO, c->id,
	        "client=%s helo=%s sender=%s state=%s %.*s (%s, %.1f ms)", r->client_address, helo,
	        sender, r->protocol_state, (int)len, line, how, elapsed_ms(&c->started));
	c->pending = 0;
	policy_request_reset(&c->req);
}

static void on_verdict(void *arg, const struct policy_verdict *v, const struct err *e)
{
	struct conn *c = arg;
	char line[640];

	policy_action_line(c->srv->a, c->srv->s->header_name, v, e ? e->msg : "", line,
	                   sizeof(line));
	if (v != NULL) {
		if (v->note[0] != '\0')
			log_warn(c->id, "client=%s: %s", c->req.client_address, v->note);
		policy_cache_put(c->srv->cache, c->key, time(NULL), v);
	} else if (e != NULL && strcmp(e->code, "refused") == 0) {
		log_warn(c->id,
		         "%s (no backoff: the question, not the service, was at fault); "
		         "answering on_error = %s",
		         e->msg, policy_act_name(c->srv->a->on_error));
	} else {
		log_warn(c->id, "anchor-reputation: %s (%s); answering on_error = %s",
		         e ? e->msg : "failed", e ? e->code : "?",
		         policy_act_name(c->srv->a->on_error));
	}
	conn_answer(c, line, v ? "queried" : "error");
	conn_process(c);
}

static void conn_request(struct conn *c)
{
	struct policy_server *srv = c->srv;
	const struct policy_request *r = &c->req;
	char domain[POLICY_DOMAIN_MAX] = "", helo[POLICY_VALUE_MAX] = "", line[640];
	struct policy_verdict v;
	struct err e = {0}, why = {0};

	clock_gettime(CLOCK_MONOTONIC, &c->started);
	if (policy_request_check(r, &e) < 0) {
		log_warn(c->id, "malformed policy request: %s; answering DUNNO", e.msg);
		conn_answer(c, "action=DUNNO\n\n", "malformed");
		return;
	}
	/* The client's HELO and sender are its own text: whatever they hold, the client
	 * address is still asked about. */
	if (srv->s->query_sender_domain &&
	    policy_sender_domain(r, domain, sizeof(domain), &why) < 0)
		log_debug(c->id, "sender domain not asked about (not a host name: %s)", why.msg);
	if (srv->s->query_helo)
		policy_helo_for_query(r->helo_name, helo, sizeof(helo));
	snprintf(c->key, sizeof(c->key), "%s|%s|%s", r->client_address, domain, helo);
	if (policy_cache_get(srv->cache, c->key, time(NULL), &v)) {
		policy_action_line(srv->a, srv->s->header_name, &v, NULL, line, sizeof(line));
		conn_answer(c, line, "cached");
		return;
	}
	if (policy_client_query(srv->client, r->client_address, helo, domain, on_verdict, c, &e) <
	    0) {
		policy_action_line(srv->a, srv->s->header_name, NULL, e.msg, line, sizeof(line));
		conn_answer(c, line, e.code[0] ? e.code : "error");
		return;
	}
	c->pending = 1;
}

/* Read whole lines while no query is out. */
static void conn_process(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (!c->pending) {
		size_t n;

		/* A client that sends and never reads: stop until its answers drain (on_write). */
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > OUTPUT_MAX)
			return;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);

		if (line == NULL) {
			if (evbuffer_get_length(in) > (size_t)c->srv->s->max_line) {
				log_warn(c->id, "a line longer than %lld octets; closing",
				         c->srv->s->max_line);
				conn_close(c);
			}
			return;
		}
		if (n > (size_t)c->srv->s->max_line) {
			free(line);
			log_warn(c->id, "a line longer than %lld octets; closing",
			         c->srv->s->max_line);
			conn_close(c);
			return;
		}
		if (policy_request_line(&c->req, line, n, (int)c->srv->s->max_attrs) == 1)
			conn_request(c);
		free(line);
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	conn_process(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	conn_process(arg); /* the output drained: buffered requests may go on */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_TIMEOUT)
		log_debug(c->id, "idle for %lld s; closing", c->srv->s->idle_timeout);
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		conn_close(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
	struct policy_server *srv = arg;
	struct timeval idle = {(time_t)srv->s->idle_timeout, 0};
	struct conn *c;

	if (srv->nconns >= srv->s->max_connections) {
		log_warn(NULL, "max_connections (%lld) reached; refusing a connection",
		         srv->s->max_connections);
		evutil_closesocket(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->srv = srv;
	snprintf(c->id, sizeof(c->id), "conn%llu", ++srv->seq);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, &idle, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = srv->conns;
	srv->conns = c;
	srv->nconns++;
}

/* ------------------------------------------------------------------ listening */

static int listen_unix(struct policy_server *srv, const char *path, struct err *e)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(sun.sun_path))
		return err_set(e, ERR_INPUT, "bad_listen", "unix socket path %.64s is too long",
		               path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	snprintf(srv->unix_path, sizeof(srv->unix_path), "%s", path);
	unlink(path); /* a socket left by an earlier run */
	srv->listener = evconnlistener_new_bind(srv->base, on_accept, srv,
	                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64,
	                                        (struct sockaddr *)&sun, sizeof(sun));
	if (srv->listener == NULL)
		return err_set(e, ERR_TEMP, "listen", "cannot listen on %s: %s", path,
		               strerror(errno));
	/* Postfix's smtpd runs as its own user: it must be able to connect. */
	chmod(path, 0666);
	return 0;
}

static int listen_tcp(struct policy_server *srv, const char *spec, struct err *e)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	socklen_t sl = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &len) < 0 ||
	    strchr(spec, ':') == NULL)
		return err_set(e, ERR_INPUT, "bad_listen",
		               "listen = %.64s: use ADDRESS:PORT, [IPv6]:PORT or unix:/path", spec);
	srv->listener = evconnlistener_new_bind(srv->base, on_accept, srv,
	                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
	                                            LEV_OPT_CLOSE_ON_EXEC,
	                                        64, (struct sockaddr *)&ss, len);
	if (srv->listener == NULL)
		return err_set(e, ERR_TEMP, "listen", "cannot listen on %s: %s", spec,
		               strerror(errno));
	if (getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&ss, &sl) == 0)
		srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                           : ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

struct policy_server *policy_server_start(struct event_base *base, const struct policy_settings *s,
                                          const struct policy_actions *a,
                                          struct policy_client *client, struct err *e)
{
	struct policy_server *srv = calloc(1, sizeof(*srv));
	int rc;

	if (srv == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	srv->base = base;
	srv->s = s;
	srv->a = a;
	srv->client = client;
	srv->cache = policy_cache_new((size_t)s->cache_size, s->cache_ttl);
	if (s->cache_ttl > 0 && srv->cache == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory for the cache");
		goto fail;
	}
	if (strncmp(s->listen, "unix:", 5) == 0)
		rc = listen_unix(srv, s->listen + 5, e);
	else
		rc = listen_tcp(srv, s->listen, e);
	if (rc < 0)
		goto fail;
	return srv;
fail:
	policy_server_free(srv);
	return NULL;
}

void policy_server_free(struct policy_server *srv)
{
	struct conn *c, *next;

	if (srv == NULL)
		return;
	for (c = srv->conns, srv->conns = NULL; c != NULL; c = next) {
		next = c->next;
		conn_close(c); /* finds nothing to unlink: the list is detached */
	}
	if (srv->listener != NULL)
		evconnlistener_free(srv->listener);
	if (srv->unix_path[0] != '\0')
		unlink(srv->unix_path);
	policy_cache_free(srv->cache);
	free(srv);
}

int policy_server_port(const struct policy_server *srv)
{
	return srv->port;
}
