/*
 * dnszone_tcp.c - the DNS zone over TCP (RFC 7766): one thread, one epoll set,
 * many connections at once.  Each connection has an input buffer (queries with
 * their two-octet length) and an output buffer (answers waiting for the socket);
 * a slow reader only fills its own output buffer, and while that is full its
 * further queries wait in the kernel (the connection stops being read), so no
 * client holds up another.  A connection silent for REP_DNSZONE_TCP_IDLE_MS is
 * closed; when REP_DNSZONE_TCP_MAX_CONNS are open, the longest idle makes room.
 */
#include "dnszone_tcp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "dnszone_wire.h"

#define OUT_MAX (4 * (2 + REP_DNSZONE_ANSWER_MAX))

struct conn {
	int fd;
	unsigned events; /* what epoll watches now */
	long long last;  /* ms, monotonic: the last read or write */
	struct sockaddr_storage from;
	size_t inlen, outoff, outlen;
	uint8_t in[2 + REP_DNSZONE_TCP_QUERY_MAX];
	uint8_t out[OUT_MAX];
};

struct loop {
	int ep, lfd;
	rep_dnszone_answer_fn answer;
	void *ctx;
	struct conn *conns[REP_DNSZONE_TCP_MAX_CONNS];
	int n;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct loop *l, int i)
{
	struct conn *c = l->conns[i];

	close(c->fd); /* leaves the epoll set with it */
	free(c);
	l->conns[i] = l->conns[--l->n];
	l->conns[l->n] = NULL;
}

static int conn_index(const struct loop *l, const struct conn *c)
{
	for (int i = 0; i < l->n; i++)
		if (l->conns[i] == c)
			return i;
	return -1;
}

/* Watch for input while there is room to take a query, for output while answers wait. */
static int conn_watch(struct loop *l, struct conn *c)
{
	unsigned want =
	    (c->inlen < sizeof(c->in) ? EPOLLIN : 0) | (c->outlen > c->outoff ? EPOLLOUT : 0);
	struct epoll_event ev = {.events = want, .data.ptr = c};

	if (want == c->events)
		return 0;
	c->events = want;
	return epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Answer every complete query in the input while the output has room for one more
 * answer; -1 when a query is empty or too long (the connection goes). */
static int conn_answer(struct loop *l, struct conn *c)
{
	size_t used = 0;

	while (c->inlen - used >= 2) {
		size_t qlen = (size_t)(c->in[used] << 8 | c->in[used + 1]), alen;

		if (qlen == 0 || qlen > REP_DNSZONE_TCP_QUERY_MAX)
			return -1;
		if (c->inlen - used < 2 + qlen)
			break;
		if (c->outoff > 0) { /* make room in front of what still waits */
			memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
			c->outlen -= c->outoff;
			c->outoff = 0;
		}
		if (sizeof(c->out) - c->outlen < 2 + REP_DNSZONE_ANSWER_MAX)
			break; /* the client is not reading its answers: wait for it */
		alen = l->answer(l->ctx, c->in + used + 2, qlen, &c->from, c->out + c->outlen + 2,
		                 REP_DNSZONE_ANSWER_MAX);
		used += 2 + qlen;
		if (alen == 0)
			continue; /* a query we do not answer (a response, say) */
		c->out[c->outlen] = (uint8_t)(alen >> 8);
		c->out[c->outlen + 1] = (uint8_t)alen;
		c->outlen += 2 + alen;
	}
	if (used > 0) {
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
	}
	return 0;
}

/* Write what waits; -1 when the peer is gone. */
static int conn_flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);

		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
		c->outoff += (size_t)w;
	}
	c->outoff = c->outlen = 0;
	return 0;
}

/* One readiness event on a connection; -1 when it is to be closed. */
static int conn_event(struct loop *l, struct conn *c, unsigned events)
{
	int eof = 0;

	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN))
		return -1;
	if ((events & EPOLLIN) && c->inlen < sizeof(c->in)) {
		ssize_t r = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);

		if (r == 0)
			eof = 1;
		else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		else if (r > 0)
			c->inlen += (size_t)r;
	}
	c->last = now_ms();
	/* Answer and write until a query is incomplete or the socket takes no more (then
	 * EPOLLOUT brings us back). */
	for (;;) {
		size_t before = c->inlen;

		if (conn_answer(l, c) < 0 || conn_flush(c) < 0)
			return -1;
		if (c->inlen == before || c->outlen > 0)
			break;
	}
	if (eof)
		return -1; /* the client sent all it will; its answers are written or lost */
	return conn_watch(l, c);
}

/* The connection silent longest, to make room for a new one. */
static int longest_idle(const struct loop *l)
{
	int best = 0;

	for (int i = 1; i < l->n; i++)
		if (l->conns[i]->last < l->conns[best]->last)
			best = i;
	return best;
}

static void accept_all(struct loop *l)
{
	for (;;) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		int fd =
		    accept4(l->lfd, (struct sockaddr *)&from, &flen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = {.events = EPOLLIN};
		struct conn *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_debug(NULL, "dnszone: accept: %s", strerror(errno));
			return;
		}
		if (l->n == REP_DNSZONE_TCP_MAX_CONNS)
			conn_close(l, longest_idle(l));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->from = from;
		c->events = EPOLLIN;
		c->last = now_ms();
		ev.data.ptr = c;
		if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		l->conns[l->n++] = c;
	}
}

static void close_idle(struct loop *l)
{
	long long cut = now_ms() - REP_DNSZONE_TCP_IDLE_MS;

	for (int i = l->n - 1; i >= 0; i--)
		if (l->conns[i]->last < cut)
			conn_close(l, i);
}

static void loop_run(struct loop *l, atomic_int *stop)
{
	struct epoll_event evs[64];

	while (!atomic_load(stop)) {
		int n = epoll_wait(l->ep, evs, 64, 200);

		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int k;

			if (c == NULL) {
				accept_all(l);
				continue;
			}
			/* An earlier event of this round may have closed it to make room. */
			if ((k = conn_index(l, c)) >= 0 && conn_event(l, c, evs[i].events) < 0)
				conn_close(l, k);
		}
		close_idle(l);
	}
}

int rep_dnszone_tcp_serve(int lfd, atomic_int *stop, rep_dnszone_answer_fn answer, void *ctx)
{
	struct loop *l = calloc(1, sizeof(*l));
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

	if (l == NULL || (l->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    epoll_ctl(l->ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		log_err(NULL, "dnszone: cannot serve TCP: %s", strerror(errno));
		if (l != NULL && l->ep >= 0)
			close(l->ep);
		free(l);
		return -1;
	}
	l->lfd = lfd;
	l->answer = answer;
	l->ctx = ctx;
	loop_run(l, stop);
	while (l->n > 0)
		conn_close(l, l->n - 1);
	close(l->ep);
	free(l);
	return 0;
}
