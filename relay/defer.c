/*
 * defer.c - the store of messages held for a decision (defer.h, PROTOCOL.md §12.10).
 * One mutex serialises every change: SMTP sessions (status, withdraw) and the control
 * API (decisions) touch the same records, and each change is a few small writes.
 */
#include "defer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/log.h"
#include "pki/crypto.h"

#define DEFER_TOMBSTONE 86400 /* seconds a decided record is kept after its hold */

struct relay_defer {
	const struct relay_settings *s;
	struct queue *qin;
	char dir[4096];
	int dirfd;
	unsigned char key[DEFER_SECRET_LEN];
	pthread_mutex_t mu;
	/* the accept being queued (its queue id is the record's id), "" when none: the
	 * scheduler leaves it alone until its record says it is queued (relay_defer_busy) */
	pthread_mutex_t flight_mu;
	char flight[DEFER_ID_LEN + 1];
};

struct defer_rec {
	char id[DEFER_ID_LEN + 1];
	enum defer_state state;
	char peer[64];
	char sender[QUEUE_ADDR_MAX];
	char rcpt[DEFER_RCPT_MAX];
	long long created, expires;
	char reason[DEFER_REASON_MAX];
	char *msg; /* PENDING; ACCEPTED while being queued (the decision made, the queue's copy
	              not known to be committed) */
	size_t len;
};

/* ---- files ---- */

/* Write name atomically: temporary file, fsync, rename, directory fsync. */
static int write_file(struct relay_defer *df, const char *name, const char *a, size_t alen,
                      const char *b, size_t blen, struct err *e)
{
	char tmp[64];
	int fd;
	ssize_t w1, w2 = 0;

	snprintf(tmp, sizeof(tmp), "t.%s", name);
	if ((fd = openat(df->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return err_set(e, ERR_TEMP, "defer_io", "cannot write %s/%s: %s", df->dir, tmp,
		               strerror(errno));
	w1 = write(fd, a, alen);
	if (blen > 0)
		w2 = write(fd, b, blen);
	if (w1 != (ssize_t)alen || w2 != (ssize_t)blen || fsync(fd) < 0) {
		close(fd);
		unlinkat(df->dirfd, tmp, 0);
		return err_set(e, ERR_TEMP, "defer_io", "cannot write %s/%s", df->dir, tmp);
	}
	close(fd);
	if (renameat(df->dirfd, tmp, df->dirfd, name) < 0 || fsync(df->dirfd) < 0)
		return err_set(e, ERR_TEMP, "defer_io", "cannot commit %s/%s: %s", df->dir, name,
		               strerror(errno));
	return 0;
}

/* A record keeps its message while pending, and once accepted until it is queued. */
static int with_body(const struct defer_rec *r)
{
	return r->state == DEFER_PENDING || (r->state == DEFER_ACCEPTED && r->msg != NULL);
}

static int rec_write(struct relay_defer *df, const struct defer_rec *r, struct err *e)
{
	char *head = NULL;
	int n, rc;

	n = asprintf(&head,
	             "anchor-defer 1\nstate %s\npeer %s\nsender %s\nrcpt %s\ncreated %lld\n"
	             "expires %lld\nreason %s\n\n",
	             defer_state_name(r->state), r->peer, r->sender, r->rcpt, r->created,
	             r->expires, r->reason);
	if (n < 0)
		return err_set(e, ERR_INTERNAL, "nomem", "out of memory");
	rc = write_file(df, r->id, head, (size_t)n, with_body(r) ? r->msg : NULL,
	                with_body(r) ? r->len : 0, e);
	free(head);
	return rc;
}

static void rec_clear(struct defer_rec *r)
{
	free(r->msg);
	memset(r, 0, sizeof(*r));
}

/* One "name value" line of the header into r. */
static int rec_field(struct defer_rec *r, const char *name, const char *v)
{
	char *end;

	if (strcmp(name, "state") == 0)
		return defer_state_parse(v, &r->state);
	if (strcmp(name, "peer") == 0)
		return snprintf(r->peer, sizeof(r->peer), "%s", v) < (int)sizeof(r->peer) ? 0 : -1;
	if (strcmp(name, "sender") == 0)
		return snprintf(r->sender, sizeof(r->sender), "%s", v) < (int)sizeof(r->sender)
		           ? 0
		           : -1;
	if (strcmp(name, "rcpt") == 0)
		return snprintf(r->rcpt, sizeof(r->rcpt), "%s", v) < (int)sizeof(r->rcpt) ? 0 : -1;
	if (strcmp(name, "reason") == 0)
		return snprintf(r->reason, sizeof(r->reason), "%s", v), 0;
	if (strcmp(name, "created") == 0 || strcmp(name, "expires") == 0) {
		long long n = strtoll(v, &end, 10);

		if (*end != '\0')
			return -1;
		*(name[0] == 'c' ? &r->created : &r->expires) = n;
		return 0;
	}
	return strcmp(name, "anchor-defer") == 0 && strcmp(v, "1") == 0 ? 0 : -1;
}

static int rec_parse(char *buf, size_t len, struct defer_rec *r)
{
	char *p = buf, *end = buf + len, *nl, *sp;

	while (p < end && *p != '\n') {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			return -1;
		*nl = '\0';
		if ((sp = strchr(p, ' ')) == NULL)
			return -1;
		*sp = '\0';
		if (rec_field(r, p, sp + 1) < 0)
			return -1;
		p = nl + 1;
	}
	if (p >= end || r->rcpt[0] == '\0' || r->peer[0] == '\0')
		return -1;
	p++;
	if (r->state == DEFER_PENDING || (r->state == DEFER_ACCEPTED && p < end)) {
		r->len = (size_t)(end - p);
		if ((r->msg = malloc(r->len + 1)) == NULL)
			return -1;
		memcpy(r->msg, p, r->len);
		r->msg[r->len] = '\0';
	}
	return 0;
}

/* The record id; -1 (ERR_NOTFOUND bad_token) when there is none or it does not parse. */
static int rec_load(struct relay_defer *df, const char *id, struct defer_rec *r, struct err *e)
{
	char *buf = NULL;
	struct stat st;
	int fd, rc = -1;

	memset(r, 0, sizeof(*r));
	if ((fd = openat(df->dirfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return err_set(e, ERR_NOTFOUND, "bad_token", "Unknown or invalid defer token");
	if (fstat(fd, &st) == 0 && st.st_size < 1073741824LL &&
	    (buf = malloc((size_t)st.st_size + 1)) != NULL &&
	    read(fd, buf, (size_t)st.st_size) == st.st_size) {
		snprintf(r->id, sizeof(r->id), "%s", id);
		rc = rec_parse(buf, (size_t)st.st_size, r);
	}
	close(fd);
	free(buf);
	if (rc < 0) {
		log_warn(NULL, "defer: record %s/%s does not parse", df->dir, id);
		rec_clear(r);
		return err_set(e, ERR_NOTFOUND, "bad_token", "Unknown or invalid defer token");
	}
	return 0;
}

/* ---- the store ---- */

static int load_secret(struct relay_defer *df, struct err *e)
{
	int fd = openat(df->dirfd, "secret", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;

	if (fd < 0 && errno == ENOENT) {
		if (crypto_random_bytes(df->key, sizeof(df->key), e) < 0)
			return -1;
		return write_file(df, "secret", (const char *)df->key, sizeof(df->key), NULL, 0, e);
	}
	if (fd < 0 || fstat(fd, &st) < 0 || (st.st_mode & 077) != 0 ||
	    st.st_size != (off_t)sizeof(df->key) ||
	    read(fd, df->key, sizeof(df->key)) != (ssize_t)sizeof(df->key)) {
		if (fd >= 0)
			close(fd);
		return err_set(e, ERR_INPUT, "defer_secret",
		               "%s/secret must be a file of %zu octets, mode 0600", df->dir,
		               sizeof(df->key));
	}
	close(fd);
	return 0;
}

/* Expire what is due: pending past its hold loses its message, anything a day past it goes.
 * 1 when a held message was deleted. */
static int sweep_one(struct relay_defer *df, const char *id, long long now)
{
	struct defer_rec r;
	struct err e = {0};
	int deleted = 0;

	if (rec_load(df, id, &r, &e) < 0)
		return 0;
	if (r.expires + DEFER_TOMBSTONE <= now) {
		deleted = r.state == DEFER_PENDING && unlinkat(df->dirfd, id, 0) == 0;
		if (r.state != DEFER_PENDING)
			unlinkat(df->dirfd, id, 0);
	} else if (r.state == DEFER_PENDING && r.expires <= now) {
		r.state = DEFER_EXPIRED;
		if (rec_write(df, &r, &e) < 0) {
			log_warn(NULL, "defer: %s", e.msg);
		} else {
			log_info(NULL, "defer: %s for <%s> expired without a decision", id, r.rcpt);
			deleted = 1;
		}
	}
	rec_clear(&r);
	return deleted;
}

static unsigned sweep(struct relay_defer *df, long long now)
{
	int fd = dup(df->dirfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	unsigned n = 0;

	if (dir == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	rewinddir(dir);
	while ((de = readdir(dir)) != NULL)
		if (strlen(de->d_name) == DEFER_ID_LEN)
			n += (unsigned)sweep_one(df, de->d_name, now);
	closedir(dir);
	return n;
}

unsigned relay_defer_sweep(struct relay_defer *df)
{
	unsigned n;

	if (df == NULL)
		return 0;
	pthread_mutex_lock(&df->mu); /* a decision or a status may be writing a record */
	n = sweep(df, (long long)time(NULL));
	pthread_mutex_unlock(&df->mu);
	return n;
}

static void accept_resume(struct relay_defer *df);

struct relay_defer *relay_defer_open(const struct relay_settings *s, struct queue *qin,
                                     struct err *e)
{
	struct relay_defer *df = calloc(1, sizeof(*df));

	if (df == NULL) {
		err_set(e, ERR_INTERNAL, "nomem", "out of memory");
		return NULL;
	}
	df->s = s;
	df->qin = qin;
	df->dirfd = -1;
	pthread_mutex_init(&df->mu, NULL);
	pthread_mutex_init(&df->flight_mu, NULL);
	snprintf(df->dir, sizeof(df->dir), "%s/defer", s->state_dir);
	if ((mkdir(df->dir, 0700) < 0 && errno != EEXIST) ||
	    (df->dirfd = open(df->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		err_set(e, ERR_INPUT, "defer_dir", "cannot open %s: %s", df->dir, strerror(errno));
		relay_defer_close(df);
		return NULL;
	}
	if (load_secret(df, e) < 0) {
		relay_defer_close(df);
		return NULL;
	}
	accept_resume(df); /* before the sweep, which may remove old records */
	sweep(df, (long long)time(NULL));
	return df;
}

void relay_defer_close(struct relay_defer *df)
{
	if (df == NULL)
		return;
	if (df->dirfd >= 0)
		close(df->dirfd);
	pthread_mutex_destroy(&df->mu);
	pthread_mutex_destroy(&df->flight_mu);
	explicit_bzero(df->key, sizeof(df->key));
	free(df);
}

int relay_defer_hold(struct relay_defer *df, const char *peer, const char *sender, const char *rcpt,
                     const char *head, const char *body, size_t len, struct defer_offer *o,
                     struct err *e)
{
	struct defer_rec r = {0};
	unsigned char rnd[DEFER_ID_LEN / 2];
	size_t hl = strlen(head), i;
	int rc;

	if (strlen(rcpt) >= sizeof(r.rcpt) || strlen(peer) >= sizeof(r.peer) ||
	    strlen(sender) >= sizeof(r.sender))
		return err_set(e, ERR_INPUT, "defer_too_long", "address too long to hold");
	if (crypto_random_bytes(rnd, sizeof(rnd), e) < 0)
		return -1;
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(r.id + 2 * i, 3, "%02x", rnd[i]);
	snprintf(r.peer, sizeof(r.peer), "%s", peer);
	snprintf(r.sender, sizeof(r.sender), "%s", sender);
	snprintf(r.rcpt, sizeof(r.rcpt), "%s", rcpt);
	r.created = (long long)time(NULL);
	r.expires = r.created + df->s->defer_hold_time;
	if ((r.msg = malloc(hl + len + 1)) == NULL)
		return err_set(e, ERR_INTERNAL, "nomem", "out of memory");
	memcpy(r.msg, head, hl);
	memcpy(r.msg + hl, body, len);
	r.len = hl + len;
	memset(o, 0, sizeof(*o));
	pthread_mutex_lock(&df->mu);
	rc = defer_token_make(df->key, r.id, rcpt, peer, o->token, e) < 0 ? -1
	                                                                  : rec_write(df, &r, e);
	pthread_mutex_unlock(&df->mu);
	snprintf(o->rcpt, sizeof(o->rcpt), "%s", rcpt);
	o->min = (unsigned)df->s->defer_min_interval;
	o->max = (unsigned)df->s->defer_max_interval;
	rec_clear(&r);
	return rc;
}

/* Load the token's record and check its MAC (and, with peer, whose it is); under df->mu. */
static int rec_by_token(struct relay_defer *df, const char *token, const char *peer,
                        struct defer_rec *r, struct err *e)
{
	char id[DEFER_ID_LEN + 1];

	memset(r, 0, sizeof(*r)); /* the callers clear it whatever the outcome */
	if (!defer_token_split(token, id) || rec_load(df, id, r, e) < 0)
		return err_set(e, ERR_NOTFOUND, "bad_token", "Unknown or invalid defer token");
	/* the MAC under the peer it was issued to: a forgery fails whoever presents it */
	if (!defer_token_verify(df->key, token, r->rcpt, r->peer)) {
		rec_clear(r);
		return err_set(e, ERR_NOTFOUND, "bad_token", "Unknown or invalid defer token");
	}
	if (peer != NULL && strcmp(peer, r->peer) != 0) {
		rec_clear(r);
		return err_set(e, ERR_FORBIDDEN, "other_peer",
		               "Defer token was issued to another peer");
	}
	if (r->state == DEFER_PENDING && r->expires <= (long long)time(NULL)) {
		r->state = DEFER_EXPIRED;
		if (rec_write(df, r, e) < 0) {
			rec_clear(r);
			return -1;
		}
	}
	return 0;
}

static void status_of(const struct relay_defer *df, const struct defer_rec *r,
                      struct defer_status *st)
{
	memset(st, 0, sizeof(*st));
	st->state = r->state;
	st->min = (unsigned)df->s->defer_min_interval;
	st->max = (unsigned)df->s->defer_max_interval;
	snprintf(st->reason, sizeof(st->reason), "%s", r->reason);
}

/* A change of a pending record to a final state; ERR_CONFLICT when it is not pending. */
static int rec_finish(struct relay_defer *df, struct defer_rec *r, enum defer_state to,
                      const char *reason, struct err *e)
{
	if (r->state == DEFER_WITHDRAWN)
		return err_set(e, ERR_CONFLICT, "withdrawn", "Already withdrawn");
	if (r->state != DEFER_PENDING)
		return err_set(e, ERR_CONFLICT, "decided", "No longer pending: %s",
		               defer_state_name(r->state));
	r->state = to;
	snprintf(r->reason, sizeof(r->reason), "%s", reason != NULL ? reason : "");
	return rec_write(df, r, e);
}

int relay_defer_query(struct relay_defer *df, const char *peer, enum defer_op op, const char *token,
                      struct defer_status *st, struct err *e)
{
	struct defer_rec r;
	int rc;

	pthread_mutex_lock(&df->mu);
	rc = rec_by_token(df, token, peer, &r, e);
	if (rc == 0 && op == DEFER_OP_WITHDRAW &&
	    (rc = rec_finish(df, &r, DEFER_WITHDRAWN, "", e)) == 0)
		log_info(NULL, "defer: %s for <%s> withdrawn by %s", r.id, r.rcpt, peer);
	if (rc == 0)
		status_of(df, &r, st);
	pthread_mutex_unlock(&df->mu);
	rec_clear(&r);
	return rc;
}

/* ---- decisions ---- */

struct commit_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, ok;
	struct err e;
};

static void on_commit(const char *id, int ok, const struct err *e, void *arg)
{
	struct commit_wait *w = arg;

	(void)id;
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	w->ok = ok;
	if (!ok && e != NULL)
		w->e = *e;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void flight_set(struct relay_defer *df, const char *id)
{
	pthread_mutex_lock(&df->flight_mu);
	snprintf(df->flight, sizeof(df->flight), "%s", id);
	pthread_mutex_unlock(&df->flight_mu);
}

int relay_defer_busy(struct relay_defer *df, const char *queue_id)
{
	int busy;

	if (df == NULL)
		return 0;
	pthread_mutex_lock(&df->flight_mu);
	busy = df->flight[0] != '\0' && strcmp(df->flight, queue_id) == 0;
	pthread_mutex_unlock(&df->flight_mu);
	return busy;
}

/*
 * Queue an accepted record's message (r ACCEPTED, its message still in it) and then drop
 * the message from the record; under df->mu.  Idempotent: the queue's copy has the record's
 * id, so a re-run after a crash (relay_defer_open) finds a committed one instead of queueing
 * a second, and until the record is rewritten the scheduler does not deliver it (flight): a
 * copy missing at a re-run was never committed.
 */
static int queue_accepted(struct relay_defer *df, struct defer_rec *r, struct err *e)
{
	struct commit_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	int rc;

	flight_set(df, r->id);
	rc = queue_submit_as(df->qin, r->id, r->sender, r->rcpt, r->msg, r->len, on_commit, &w, e);
	if (rc == 0) {
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
		if (!w.ok) {
			*e = w.e;
			rc = -1;
		}
	}
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	if (rc >= 0) {
		log_info(NULL, "defer: %s for <%s> accepted: queued as %s%s", r->id, r->rcpt, r->id,
		         rc == 1 ? " (found queued)" : "");
		free(r->msg);
		r->msg = NULL;
		r->len = 0;
		rc = rec_write(df, r, e);
	}
	flight_set(df, "");
	return rc < 0 ? -1 : 0;
}

/* The operator's accept: the decision durable first (the record ACCEPTED, its message
 * kept), then queued (queue_accepted); an accept interrupted before is finished here. */
static int accept_rec(struct relay_defer *df, struct defer_rec *r, struct err *e)
{
	if (r->state == DEFER_PENDING) {
		r->state = DEFER_ACCEPTED;
		r->reason[0] = '\0';
		if (rec_write(df, r, e) < 0)
			return -1;
	}
	return queue_accepted(df, r, e);
}

/* At start: the accepts a crash interrupted are finished, before any delivery starts. */
static void accept_resume(struct relay_defer *df)
{
	int fd = dup(df->dirfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (dir == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(dir);
	while ((de = readdir(dir)) != NULL) {
		struct defer_rec r;
		struct err e = {0};

		if (strlen(de->d_name) != DEFER_ID_LEN || rec_load(df, de->d_name, &r, &e) < 0)
			continue;
		if (r.state == DEFER_ACCEPTED && r.msg != NULL && queue_accepted(df, &r, &e) < 0)
			log_err(NULL, "defer: %s: cannot finish its accept: %s", r.id, e.msg);
		rec_clear(&r);
	}
	closedir(dir);
}

int relay_defer_decide(struct relay_defer *df, const char *token, int accept, const char *reason,
                       struct defer_status *st, struct err *e)
{
	struct defer_rec r;
	int rc;

	pthread_mutex_lock(&df->mu);
	rc = rec_by_token(df, token, NULL, &r, e);
	if (rc == 0 && accept && r.state == DEFER_ACCEPTED && r.msg != NULL)
		rc = accept_rec(df, &r, e); /* an accept interrupted: finished, not repeated */
	else if (rc == 0 && r.state != DEFER_PENDING)
		rc = rec_finish(df, &r, DEFER_ACCEPTED, "", e); /* the conflict's error */
	else if (rc == 0 && accept)
		rc = accept_rec(df, &r, e);
	else if (rc == 0)
		rc = rec_finish(df, &r, DEFER_REFUSED, reason, e);
	if (rc == 0) {
		status_of(df, &r, st);
		if (!accept)
			log_info(NULL, "defer: %s for <%s> refused: %s", r.id, r.rcpt, r.reason);
	}
	pthread_mutex_unlock(&df->mu);
	rec_clear(&r);
	return rc;
}

static json_t *rec_json(const struct defer_rec *r)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "id", r->id, "state",
	                 defer_state_name(r->state), "peer", r->peer, "sender", r->sender, "rcpt",
	                 r->rcpt, "expires", (json_int_t)r->expires, "reason", r->reason);
}

json_t *relay_defer_list_json(struct relay_defer *df, struct err *e)
{
	json_t *a = json_array(), *out = NULL;
	int fd;
	DIR *dir;
	struct dirent *de;

	pthread_mutex_lock(&df->mu);
	fd = dup(df->dirfd);
	if (a != NULL && fd >= 0 && (dir = fdopendir(fd)) != NULL) {
		rewinddir(dir);
		while ((de = readdir(dir)) != NULL) {
			struct defer_rec r;
			struct err le = {0};

			if (strlen(de->d_name) != DEFER_ID_LEN ||
			    rec_load(df, de->d_name, &r, &le) < 0)
				continue;
			json_array_append_new(a, rec_json(&r));
			rec_clear(&r);
		}
		closedir(dir);
		out = a;
		a = NULL;
	} else if (fd >= 0) {
		close(fd);
	}
	pthread_mutex_unlock(&df->mu);
	json_decref(a);
	if (out == NULL)
		err_set(e, ERR_INTERNAL, "defer_list", "cannot list %s", df->dir);
	return out;
}
