/*
 * signer_client.c - the relay's side of the signer: a small pool of Unix
 * socket connections shared by the worker threads.
 *
 * The client does the work on the message (body hash, canonical header
 * data, the unsigned DKIM-Signature field, the JWS signing input) and sends
 * the signer only what the key must sign.  A connection that breaks is
 * replaced (the signer may have been restarted); a call that cannot finish
 * within CLIENT_TIMEOUT_MS fails with ERR_TEMP.
 *
 * Signatures come back as "<domain signature>\r\n<user signature>\r\n": the
 * domain's signature on top, where stock verifiers (dkimpy verifies the
 * first field only) find the one whose key is in DNS.  The user signature
 * has d= the user's domain, s=anchor-user and i= the address: its key comes
 * from the key server's /v1/addresses/{i}, not from DNS.
 */
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

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pki/name.h"
#include "pki/jws.h"
#include "relay.h"
#include "signer_proto.h"

#define CLIENT_POOL_MAX 8
#define CLIENT_TIMEOUT_MS 5000

struct relay_signer_client {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a connection came back */
	int idle[CLIENT_POOL_MAX];
	int nidle, nopen;
};

struct relay_signer_client *relay_signer_client_new(const char *socket_path, struct err *e)
{
	struct relay_signer_client *c;
	pthread_condattr_t ca;

	if (socket_path == NULL || strlen(socket_path) >= sizeof(c->path)) {
		err_set(e, ERR_INPUT, "bad_setting",
		        "the signer's socket path is missing or too long");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	snprintf(c->path, sizeof(c->path), "%s", socket_path);
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	return c;
}

void relay_signer_client_free(struct relay_signer_client *c)
{
	if (c == NULL)
		return;
	for (int k = 0; k < c->nidle; k++)
		close(c->idle[k]);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

/* ---------------------------------------------------------------- connections */

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int conn_open(struct relay_signer_client *c, struct err *e)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	err_set(e, ERR_TEMP, "signer_unavailable", "cannot reach the signer at %s: %s", c->path,
	        strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* A connection: an idle one, a new one, or the next one given back before deadline. */
static int conn_get(struct relay_signer_client *c, long long deadline, int *reused, struct err *e)
{
	int fd;

	pthread_mutex_lock(&c->mu);
	while (c->nidle == 0 && c->nopen >= CLIENT_POOL_MAX) {
		long long left = deadline - now_ms();
		struct timespec until;
		if (left <= 0) {
			pthread_mutex_unlock(&c->mu);
			return err_set(e, ERR_TEMP, "signer_busy",
			               "every signer connection is busy");
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
static void conn_put(struct relay_signer_client *c, int fd, int healthy)
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

/* A pooled connection broke: the signer restarted, so every idle one is stale too. */
static void conn_drop_idle(struct relay_signer_client *c)
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

/* Outcome of an exchange, to decide on a retry. */
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
	if (signer_frame_len(hdr, blen, e) < 0 || (*body = malloc(*blen)) == NULL)
		return IO_BROKEN;
	if ((r = recv_all(fd, *body, *blen, deadline)) != IO_OK) {
		free(*body);
		*body = NULL;
	}
	return r;
}

/* The signer's error answer as ours. */
static int answer_error(const struct signer_msg *m, struct err *e)
{
	char code[ERR_CODE_MAX] = "signer_error", msg[ERR_MSG_MAX] = "the signer refused";
	enum err_kind kind = m->type <= ERR_INTERNAL ? (enum err_kind)m->type : ERR_INTERNAL;
	struct err ignore = {0};

	if (m->n == 2) {
		(void)signer_field_str(&m->f[0], code, sizeof(code), &ignore);
		(void)signer_field_str(&m->f[1], msg, sizeof(msg), &ignore);
	}
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	for (char *p = code; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			*p = '_';
	return err_set(e, kind, code, "%s", msg);
}

/*
 * One request and its answer: 0 with *ans (whose fields point into *buf,
 * free it) holding nfields fields, or -1.  A pooled connection that turns out
 * broken (the signer restarted) is replaced once.
 */
static int call(struct relay_signer_client *c, enum signer_op op, const struct signer_field *f,
                int n, int nfields, struct signer_msg *ans, uint8_t **buf, struct err *e)
{
	long long deadline = now_ms() + CLIENT_TIMEOUT_MS;
	size_t reqlen = 0, blen = 0;
	uint8_t *req = signer_msg_encode((uint8_t)op, f, n, &reqlen, e);
	enum io_result r = IO_BROKEN;
	int fd, reused = 0, rc = -1;

	*buf = NULL;
	if (req == NULL)
		return -1;
	for (int attempt = 0; attempt < 2; attempt++) {
		if ((fd = conn_get(c, deadline, &reused, e)) < 0)
			goto out;
		r = exchange(fd, req, reqlen, deadline, buf, &blen, e);
		if (r == IO_OK && signer_msg_parse(*buf, blen, ans, e) == 0) {
			conn_put(c, fd, 1);
			if (ans->type != SIGNER_OK) {
				answer_error(ans, e);
			} else if (ans->n != nfields) {
				err_set(e, ERR_TEMP, "signer_garbage",
				        "the signer's answer has %d "
				        "fields, not %d",
				        ans->n, nfields);
			} else {
				rc = 0;
			}
			goto out;
		}
		conn_put(c, fd, 0);
		free(*buf);
		*buf = NULL;
		if (r != IO_BROKEN || !reused)
			break;
		conn_drop_idle(c);
	}
	if (r == IO_TIMEOUT)
		err_set(e, ERR_TEMP, "signer_timeout", "the signer did not answer in time");
	else if (r == IO_OK)
		err_set(e, ERR_TEMP, "signer_garbage", "the signer's answer is garbled");
	else
		err_set(e, ERR_TEMP, "signer_unavailable", "the connection to the signer broke");
out:
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
	}
	free(req);
	return rc;
}

/* ---------------------------------------------------------------- the API */

/* name lowercased into out, then checked as a domain (user 0) or an address. */
static int lower_name(const char *name, int user, char *out, size_t cap, struct err *e)
{
	size_t k;

	if (name == NULL || strlen(name) >= cap)
		return err_set(e, ERR_INPUT, "bad_name", "a missing or too long name");
	for (k = 0; name[k]; k++)
		out[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + 32 : name[k]);
	out[k] = '\0';
	if (user && strchr(out, '/') != NULL)
		return err_set(e, ERR_INPUT, "bad_name", "an address with '/'");
	return user ? name_check_address(out, e) : name_check_domain(out, e);
}

/* The selector and algorithm of domain's key. */
static int domain_info(struct relay_signer_client *c, const char *domain, char *sel,
                       enum dkim_alg *alg, struct err *e)
{
	struct signer_field f = signer_str(domain);
	struct signer_msg ans;
	uint8_t *buf;
	char a[32];
	int rc = -1;

	if (call(c, SIGNER_OP_DOMAIN, &f, 1, 2, &ans, &buf, e) < 0)
		return -1;
	if (signer_field_str(&ans.f[0], sel, DKIM_SELECTOR_MAX, e) == 0 &&
	    signer_field_str(&ans.f[1], a, sizeof(a), e) == 0 && dkim_alg_parse(a, alg) == 0)
		rc = 0;
	else
		err_set(e, ERR_TEMP, "signer_garbage", "the signer's key description is garbled");
	free(buf);
	return rc;
}

int relay_signer_has_domain(struct relay_signer_client *c, const char *domain, struct err *e)
{
	char dom[DKIM_DOMAIN_MAX], sel[DKIM_SELECTOR_MAX];
	enum dkim_alg alg;
	struct err why = {0};

	if (lower_name(domain, 0, dom, sizeof(dom), &why) < 0)
		return 0; /* not a domain name: the signer holds no key for it */
	if (domain_info(c, dom, sel, &alg, e) == 0)
		return 1;
	if (e->kind != ERR_NOTFOUND)
		return -1;
	err_clear(e);
	return 0;
}

/* The algorithm of the user's key; ERR_NOTFOUND when the signer has none. */
static int user_info(struct relay_signer_client *c, const char *addr, enum dkim_alg *alg,
                     struct err *e)
{
	struct signer_field f = signer_str(addr);
	struct signer_msg ans;
	uint8_t *buf;
	char a[32];
	int rc = -1;

	if (call(c, SIGNER_OP_USER, &f, 1, 1, &ans, &buf, e) < 0)
		return -1;
	if (signer_field_str(&ans.f[0], a, sizeof(a), e) == 0 && dkim_alg_parse(a, alg) == 0)
		rc = 0;
	else
		err_set(e, ERR_TEMP, "signer_garbage", "the signer's key description is garbled");
	free(buf);
	return rc;
}

/* One DKIM-Signature field: prepared here, signed by the signer (op, name), finished here. */
static char *sign_one(struct relay_signer_client *c, enum signer_op op, const char *name,
                      const char *msg, size_t len, const struct dkim_sign_opts *o,
                      enum dkim_alg alg, struct err *e)
{
	struct dkim_sign_prep p = {0};
	struct signer_field f[3];
	struct signer_msg ans;
	uint8_t *buf = NULL;
	char *out = NULL;

	if (dkim_sign_prepare(msg, len, o, alg, &p, e) < 0)
		goto out;
	if (p.datalen > SIGNER_MAX_DATA) {
		err_set(e, ERR_TOOBIG, "headers_too_big", "the signed header fields are too large");
		goto out;
	}
	f[0] = signer_str(name);
	f[1] = signer_str(dkim_alg_name(alg));
	f[2].p = (const uint8_t *)p.data;
	f[2].len = p.datalen;
	if (call(c, op, f, 3, 1, &ans, &buf, e) < 0)
		goto out;
	out = dkim_sign_finish(&p, ans.f[0].p, ans.f[0].len, e);
out:
	free(buf);
	dkim_sign_prep_clear(&p);
	return out;
}

/* The user's signature, or NULL with *e clear when the signer has no usable key for user. */
static char *sign_user(struct relay_signer_client *c, const char *user, const char *msg, size_t len,
                       time_t now, struct err *e)
{
	char addr[SIGNER_NAME_MAX];
	struct dkim_sign_opts o = {.s = SIGNER_USER_SELECTOR, .now = now};
	enum dkim_alg alg;
	struct err why = {0};

	if (lower_name(user, 1, addr, sizeof(addr), &why) < 0)
		return NULL; /* no key file can be named after it */
	if (user_info(c, addr, &alg, &why) < 0) {
		/* No key, or one the signer will not use (it logs why): the domain signature
		 * stands. */
		if (why.kind == ERR_NOTFOUND || why.kind == ERR_UNPROC ||
		    why.kind == ERR_FORBIDDEN || why.kind == ERR_INPUT)
			return NULL;
		*e = why;
		return NULL;
	}
	o.d = strchr(addr, '@') + 1;
	o.i = addr;
	return sign_one(c, SIGNER_OP_SIGN_USER, addr, msg, len, &o, alg, e);
}

int relay_signer_sign(struct relay_signer_client *c, const char *msg, size_t len,
                      const char *domain, const char *user, char **fields, struct err *e)
{
	char dom[DKIM_DOMAIN_MAX], sel[DKIM_SELECTOR_MAX];
	struct dkim_sign_opts o = {.now = time(NULL)};
	char *dsig = NULL, *usig = NULL;
	struct err why = {0};
	enum dkim_alg alg;
	int rc = -1;

	*fields = NULL;
	if (lower_name(domain, 0, dom, sizeof(dom), &why) < 0)
		return err_set(e, ERR_NOTFOUND, "no_signing_key", "no signing key for %.100s: %s",
		               domain ? domain : "(none)", why.msg);
	if (domain_info(c, dom, sel, &alg, e) < 0)
		return -1; /* ERR_NOTFOUND no_signing_key from the signer */
	o.d = dom;
	o.s = sel;
	if ((dsig = sign_one(c, SIGNER_OP_SIGN_DOMAIN, dom, msg, len, &o, alg, e)) == NULL)
		goto out;
	if (user != NULL && *user) {
		usig = sign_user(c, user, msg, len, o.now, e);
		if (usig == NULL && e->kind != ERR_NONE)
			goto out;
	}
	if (asprintf(fields, "%s\r\n%s%s", dsig, usig ? usig : "", usig ? "\r\n" : "") < 0) {
		*fields = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(dsig);
	free(usig);
	return rc;
}

/* The report chain the signer holds. */
static int report_chain(struct relay_signer_client *c, X509 **chain, int *n, struct err *e)
{
	struct signer_msg ans;
	uint8_t *buf;
	BIO *bio;
	X509 *x;

	*n = 0;
	if (call(c, SIGNER_OP_REPORT_CHAIN, NULL, 0, 1, &ans, &buf, e) < 0)
		return -1;
	bio = BIO_new_mem_buf(ans.f[0].p, (int)ans.f[0].len);
	while (bio != NULL && *n < JWS_MAX_CHAIN &&
	       (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		chain[(*n)++] = x;
	BIO_free(bio);
	free(buf);
	if (*n == 0)
		return err_set(e, ERR_TEMP, "signer_garbage",
		               "the signer's report chain is garbled");
	return 0;
}

int relay_signer_sign_jws(struct relay_signer_client *c, const char *payload, const char *typ,
                          char **jws, struct err *e)
{
	X509 *chain[JWS_MAX_CHAIN];
	struct signer_field f;
	struct signer_msg ans;
	uint8_t *buf = NULL;
	char *in = NULL;
	int n = 0, rc = -1;

	*jws = NULL;
	if (payload == NULL)
		return err_set(e, ERR_INPUT, "bad_request", "no payload");
	if (report_chain(c, chain, &n, e) < 0)
		return -1;
	in = jws_signing_input(payload, strlen(payload), jws_alg_name(X509_get0_pubkey(chain[0])),
	                       chain, n, typ, e);
	if (in == NULL)
		goto out;
	if (strlen(in) > SIGNER_MAX_DATA) {
		err_set(e, ERR_TOOBIG, "payload_too_big", "the object to sign is too large");
		goto out;
	}
	f = signer_str(in);
	if (call(c, SIGNER_OP_SIGN_REPORT, &f, 1, 1, &ans, &buf, e) < 0)
		goto out;
	if ((*jws = jws_assemble(in, ans.f[0].p, ans.f[0].len, e)) != NULL)
		rc = 0;
out:
	for (int k = 0; k < n; k++)
		X509_free(chain[k]);
	free(in);
	free(buf);
	return rc;
}
