/*
 * frame_server.c - the serving side of frame.h: a 0600 Unix socket, one
 * thread per connection, and a watch on the parent's pipe so that the server
 * ends with the process that started it.
 */
#include "core/frame.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/log.h"

#define FRAME_MAX_CONN_LIMIT 256
#define FRAME_IO_TIMEOUT_MS 10000 /* a started frame must arrive within this */

struct server {
	frame_handler fn;
	void *ctx;
	int max_conn;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int conns[FRAME_MAX_CONN_LIMIT];
	int nconn;
	int stopping;
};

/* len bytes; the first may wait forever when idle (between requests).
 * 1 on a clean end before the first byte, -1 on error or timeout. */
static int read_full(int fd, uint8_t *buf, size_t len, int idle)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, idle && got == 0 ? -1 : FRAME_IO_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		n = read(fd, buf + got, len - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return n == 0 && got == 0 && idle ? 1 : -1;
		got += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A frame too big to read: say so, then hang up (the stream cannot be resynchronised). */
static void refuse_frame(int fd, const struct err *why)
{
	size_t len = 0;
	uint8_t *out = frame_encode_error(why, &len);

	log_warn(NULL, "%s; closing the connection", why->msg);
	if (out != NULL)
		(void)write_full(fd, out, len);
	free(out);
}

static void serve_conn(struct server *sv, int fd)
{
	uint8_t hdr[4], *body = NULL, *out;
	size_t len, outlen = 0;
	struct err e = {0};

	for (;;) {
		if (read_full(fd, hdr, sizeof(hdr), 1) != 0)
			break;
		if (frame_len(hdr, &len, &e) < 0) {
			refuse_frame(fd, &e);
			break;
		}
		if ((body = malloc(len)) == NULL || read_full(fd, body, len, 0) != 0)
			break;
		out = sv->fn(sv->ctx, body, len, &outlen);
		OPENSSL_cleanse(body, len); /* requests may carry tokens and keys */
		free(body);
		body = NULL;
		if (out == NULL || write_full(fd, out, outlen) < 0) {
			free(out);
			break;
		}
		free(out);
	}
	free(body);
}

struct conn {
	struct server *sv;
	int fd;
};

static void conn_end(struct server *sv, int fd)
{
	pthread_mutex_lock(&sv->mu);
	for (int k = 0; k < sv->nconn; k++)
		if (sv->conns[k] == fd) {
			sv->conns[k] = sv->conns[--sv->nconn];
			break;
		}
	close(fd);
	pthread_cond_broadcast(&sv->cv);
	pthread_mutex_unlock(&sv->mu);
}

static void *conn_main(void *arg)
{
	struct conn c = *(struct conn *)arg;

	free(arg);
	serve_conn(c.sv, c.fd);
	/* Free this thread's OpenSSL state (its error queue) now: conn_end lets
	 * conns_stop return, and the process may exit before a detached thread's
	 * own exit would have freed it. */
	OPENSSL_thread_stop();
	conn_end(c.sv, c.fd);
	return NULL;
}

static void conn_start(struct server *sv, int fd)
{
	struct conn *c = malloc(sizeof(*c));
	pthread_attr_t attr;
	pthread_t t;
	int full;

	pthread_mutex_lock(&sv->mu);
	full = sv->nconn >= sv->max_conn || sv->stopping || c == NULL;
	if (!full)
		sv->conns[sv->nconn++] = fd;
	pthread_mutex_unlock(&sv->mu);
	if (full) {
		log_warn(NULL, "%d connections already; refusing one more", sv->max_conn);
		free(c);
		close(fd);
		return;
	}
	c->sv = sv;
	c->fd = fd;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, conn_main, c) != 0) {
		log_warn(NULL, "cannot start a connection thread");
		free(c);
		conn_end(sv, fd);
	}
	pthread_attr_destroy(&attr);
}

/* Hang up on every client and wait (a while) for their threads; 0 when all ended. */
static int conns_stop(struct server *sv)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&sv->mu);
	sv->stopping = 1;
	for (int k = 0; k < sv->nconn; k++)
		shutdown(sv->conns[k], SHUT_RDWR);
	while (sv->nconn > 0 && rc == 0)
		rc = pthread_cond_timedwait(&sv->cv, &sv->mu, &until);
	rc = sv->nconn == 0 ? 0 : -1;
	pthread_mutex_unlock(&sv->mu);
	return rc;
}

static int listen_on(const char *path, struct err *e)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)], *slash;
	struct stat st;
	mode_t old;
	int fd, rc;

	if (strlen(path) + 12 >= sizeof(sa.sun_path))
		return err_set(e, ERR_INPUT, "bad_setting", "the socket path %s is too long", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%d", path, (int)getpid());
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return err_set(e, ERR_INTERNAL, "io", "cannot make %s: %s", dir,
			               strerror(errno));
	}
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return err_set(e, ERR_INPUT, "bad_setting", "%s exists and is not a socket", path);
	unlink(sa.sun_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return err_set(e, ERR_INTERNAL, "io", "socket: %s", strerror(errno));
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(sa.sun_path, 0600) < 0 || listen(fd, 64) < 0 ||
	    rename(sa.sun_path, path) < 0) {
		err_set(e, ERR_INTERNAL, "io", "cannot listen on %s: %s", path, strerror(errno));
		unlink(sa.sun_path);
		close(fd);
		return -1;
	}
	return fd;
}

/* True when the parent's end of the pipe has closed. */
static int parent_gone(int fd)
{
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf));

	return n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN);
}

int frame_serve(const char *path, int parent_fd, int max_conn, frame_handler fn, void *ctx,
                struct err *e)
{
	struct server *sv = calloc(1, sizeof(*sv));
	int lfd;

	if (sv == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	sv->fn = fn;
	sv->ctx = ctx;
	sv->max_conn = max_conn < 1                      ? 1
	               : max_conn > FRAME_MAX_CONN_LIMIT ? FRAME_MAX_CONN_LIMIT
	                                                 : max_conn;
	pthread_mutex_init(&sv->mu, NULL);
	pthread_cond_init(&sv->cv, NULL);
	if ((lfd = listen_on(path, e)) < 0) {
		free(sv);
		return -1;
	}
	for (;;) {
		struct pollfd p[2] = {{.fd = lfd, .events = POLLIN},
		                      {.fd = parent_fd, .events = POLLIN}};
		int r = poll(p, parent_fd >= 0 ? 2 : 1, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (parent_fd >= 0 && p[1].revents != 0 && parent_gone(parent_fd))
			break;
		if (p[0].revents & POLLIN) {
			int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (cfd >= 0)
				conn_start(sv, cfd);
		}
	}
	close(lfd);
	unlink(path);
	/* A thread that did not end may still use sv (and ctx): then both are left. */
	if (conns_stop(sv) < 0)
		return 1;
	pthread_mutex_destroy(&sv->mu);
	pthread_cond_destroy(&sv->cv);
	free(sv);
	return 0;
}
