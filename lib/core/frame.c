/*
 * frame.c - framing and strict parsing of frames, and the pooled client;
 * see frame.h for the format.
 */
#include "core/frame.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FRAME_CLIENT_POOL 8

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int frame_len(const uint8_t hdr[4], size_t *len, struct err *e)
{
	uint32_t n = get32(hdr);

	if (n == 0)
		return err_set(e, ERR_INPUT, "bad_frame", "an empty frame");
	if (n > FRAME_MAX)
		return err_set(e, ERR_TOOBIG, "frame_too_big", "a frame of %u bytes (at most %d)",
		               n, FRAME_MAX);
	*len = n;
	return 0;
}

int frame_parse(const uint8_t *body, size_t len, struct frame_msg *m, struct err *e)
{
	size_t p = 2;
	int k;

	memset(m, 0, sizeof(*m));
	if (len < 2 || len > FRAME_MAX)
		return err_set(e, ERR_INPUT, "bad_frame", "a frame body of %zu bytes", len);
	m->type = body[0];
	m->n = body[1];
	if (m->n > FRAME_MAX_FIELDS)
		return err_set(e, ERR_INPUT, "bad_frame", "%d fields (at most %d)", m->n,
		               FRAME_MAX_FIELDS);
	for (k = 0; k < m->n; k++) {
		uint32_t flen;
		if (len - p < 4)
			return err_set(e, ERR_INPUT, "bad_frame", "field %d has no length", k);
		flen = get32(body + p);
		p += 4;
		if (flen > len - p)
			return err_set(e, ERR_INPUT, "bad_frame", "field %d runs past the frame",
			               k);
		m->f[k].p = body + p;
		m->f[k].len = flen;
		p += flen;
	}
	if (p != len)
		return err_set(e, ERR_INPUT, "bad_frame", "%zu bytes after the last field",
		               len - p);
	return 0;
}

uint8_t *frame_encode(uint8_t type, const struct frame_field *f, int n, size_t *outlen,
                      struct err *e)
{
	size_t body = 2, p;
	uint8_t *out;
	int k;

	if (n < 0 || n > FRAME_MAX_FIELDS) {
		err_set(e, ERR_INTERNAL, "internal", "%d fields", n);
		return NULL;
	}
	for (k = 0; k < n; k++) {
		if (f[k].len > FRAME_MAX) {
			err_set(e, ERR_TOOBIG, "frame_too_big", "a field of %zu bytes", f[k].len);
			return NULL;
		}
		body += 4 + f[k].len;
	}
	if (body > FRAME_MAX) {
		err_set(e, ERR_TOOBIG, "frame_too_big", "a frame of %zu bytes (at most %d)", body,
		        FRAME_MAX);
		return NULL;
	}
	if ((out = malloc(4 + body)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	put32(out, (uint32_t)body);
	out[4] = type;
	out[5] = (uint8_t)n;
	p = 6;
	for (k = 0; k < n; k++) {
		put32(out + p, (uint32_t)f[k].len);
		p += 4;
		if (f[k].len > 0)
			memcpy(out + p, f[k].p, f[k].len);
		p += f[k].len;
	}
	*outlen = p;
	return out;
}

struct frame_field frame_str(const char *s)
{
	struct frame_field f = {(const uint8_t *)s, s ? strlen(s) : 0};
	return f;
}

int frame_field_str(const struct frame_field *f, char *out, size_t cap, struct err *e)
{
	if (f->len == 0 || f->len >= cap || memchr(f->p, '\0', f->len) != NULL)
		return err_set(e, ERR_INPUT, "bad_request",
		               "a text field is empty, too long or holds a NUL");
	memcpy(out, f->p, f->len);
	out[f->len] = '\0';
	return 0;
}

uint8_t *frame_encode_error(const struct err *why, size_t *outlen)
{
	struct frame_field f[2] = {frame_str(why->code[0] ? why->code : "internal"),
	                           frame_str(why->msg[0] ? why->msg : "internal error")};
	struct err e = {0};
	uint8_t kind = (uint8_t)(why->kind == ERR_NONE ? ERR_INTERNAL : why->kind);

	return frame_encode(kind, f, 2, outlen, &e);
}

int frame_answer_error(const struct frame_msg *m, struct err *e)
{
	char code[ERR_CODE_MAX] = "peer_error", msg[ERR_MSG_MAX] = "the peer refused";
	enum err_kind kind =
	    m->type <= ERR_INTERNAL && m->type != ERR_NONE ? (enum err_kind)m->type : ERR_INTERNAL;
	struct err ignore = {0};

	if (m->n == 2) {
		(void)frame_field_str(&m->f[0], code, sizeof(code), &ignore);
		(void)frame_field_str(&m->f[1], msg, sizeof(msg), &ignore);
	}
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	for (char *p = code; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			*p = '_';
	return err_set(e, kind, code, "%s", msg);
}

/* ---------------------------------------------------------------- client */

struct frame_client {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char what[32];
	int timeout_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a connection came back */
	int idle[FRAME_CLIENT_POOL];
	int nidle, nopen;
};

struct frame_client *frame_client_new(const char *path, const char *what, int timeout_ms,
                                      struct err *e)
{
	struct frame_client *c;
	pthread_condattr_t ca;

	if (path == NULL || strlen(path) >= sizeof(c->path)) {
		err_set(e, ERR_INPUT, "bad_setting", "the %s socket path is missing or too long",
		        what);
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(c->what, sizeof(c->what), "%s", what);
	c->timeout_ms = timeout_ms;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	return c;
}

void frame_client_free(struct frame_client *c)
{
	if (c == NULL)
		return;
	for (int k = 0; k < c->nidle; k++)
		close(c->idle[k]);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int conn_open(struct frame_client *c, struct err *e)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	err_set(e, ERR_TEMP, "signer_unavailable", "cannot reach the %s: %s", c->what,
	        strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* A connection: an idle one, a new one, or the next one given back before deadline. */
static int conn_get(struct frame_client *c, long long deadline, int *reused, struct err *e)
{
	int fd;

	pthread_mutex_lock(&c->mu);
	while (c->nidle == 0 && c->nopen >= FRAME_CLIENT_POOL) {
		long long left = deadline - now_ms();
		struct timespec until;
		if (left <= 0) {
			pthread_mutex_unlock(&c->mu);
			return err_set(e, ERR_TEMP, "signer_busy", "every %s connection is busy",
			               c->what);
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += left / 1000;
		until.tv_nsec += (left % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &until);
	}
	if (c->nidle > 0) {
		fd = c->idle[--c->nidle];
		pthread_mutex_unlock(&c->mu);
		*reused = 1;
		return fd;
	}
	c->nopen++;
	pthread_mutex_unlock(&c->mu);
	*reused = 0;
	if ((fd = conn_open(c, e)) < 0) {
		pthread_mutex_lock(&c->mu);
		c->nopen--;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
	return fd;
}

/* Give a connection back: to the idle ones when it is still in step, else closed. */
static void conn_put(struct frame_client *c, int fd, int healthy)
{
	pthread_mutex_lock(&c->mu);
	if (healthy) {
		c->idle[c->nidle++] = fd;
	} else {
		close(fd);
		c->nopen--;
	}
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* A pooled connection broke: the server restarted, so every idle one is stale too. */
static void conn_drop_idle(struct frame_client *c)
{
	pthread_mutex_lock(&c->mu);
	while (c->nidle > 0) {
		close(c->idle[--c->nidle]);
		c->nopen--;
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static int wait_io(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int r;
		if (left <= 0)
			return -1;
		r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

enum io_result { IO_OK = 0, IO_BROKEN, IO_TIMEOUT };

static enum io_result send_all(int fd, const uint8_t *p, size_t len, long long deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_io(fd, POLLOUT, deadline) < 0)
				return IO_TIMEOUT;
		} else {
			return IO_BROKEN;
		}
	}
	return IO_OK;
}

static enum io_result recv_all(int fd, uint8_t *p, size_t len, long long deadline)
{
	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_io(fd, POLLIN, deadline) < 0)
				return IO_TIMEOUT;
		} else {
			return IO_BROKEN;
		}
	}
	return IO_OK;
}

/* Send a frame and read the answer's body (malloc'd). */
static enum io_result exchange(int fd, const uint8_t *req, size_t reqlen, long long deadline,
                               uint8_t **body, size_t *blen, struct err *e)
{
	uint8_t hdr[4];
	enum io_result r;

	*body = NULL;
	if ((r = send_all(fd, req, reqlen, deadline)) != IO_OK ||
	    (r = recv_all(fd, hdr, sizeof(hdr), deadline)) != IO_OK)
		return r;
	if (frame_len(hdr, blen, e) < 0 || (*body = malloc(*blen)) == NULL)
		return IO_BROKEN;
	if ((r = recv_all(fd, *body, *blen, deadline)) != IO_OK) {
		free(*body);
		*body = NULL;
	}
	return r;
}

int frame_client_call(struct frame_client *c, uint8_t op, const struct frame_field *f, int n,
                      int nfields, struct frame_msg *ans, uint8_t **buf, struct err *e)
{
	long long deadline = now_ms() + c->timeout_ms;
	size_t reqlen = 0, blen = 0;
	uint8_t *req = frame_encode(op, f, n, &reqlen, e);
	enum io_result r = IO_BROKEN;
	int fd, reused = 0, rc = -1;

	*buf = NULL;
	if (req == NULL)
		return -1;
	for (int attempt = 0; attempt < 2; attempt++) {
		if ((fd = conn_get(c, deadline, &reused, e)) < 0)
			goto out;
		r = exchange(fd, req, reqlen, deadline, buf, &blen, e);
		if (r == IO_OK && frame_parse(*buf, blen, ans, e) == 0) {
			conn_put(c, fd, 1);
			if (ans->type != FRAME_OK)
				frame_answer_error(ans, e);
			else if (ans->n != nfields)
				err_set(e, ERR_TEMP, "signer_garbage",
				        "the %s's answer has %d fields, not %d", c->what, ans->n,
				        nfields);
			else
				rc = 0;
			goto out;
		}
		conn_put(c, fd, 0);
		free(*buf);
		*buf = NULL;
		/* A pooled connection found dead (the server restarted) is replaced once.
		 * Should the old server have done the request before dying, the repeat is
		 * checked afresh by the new one (a token is consumed only once). */
		if (r != IO_BROKEN || !reused)
			break;
		conn_drop_idle(c);
	}
	if (r == IO_TIMEOUT)
		err_set(e, ERR_TEMP, "signer_timeout", "the %s did not answer in time", c->what);
	else if (r == IO_OK)
		err_set(e, ERR_TEMP, "signer_garbage", "the %s's answer is garbled", c->what);
	else
		err_set(e, ERR_TEMP, "signer_unavailable", "the connection to the %s broke",
		        c->what);
out:
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
	}
	free(req);
	return rc;
}
