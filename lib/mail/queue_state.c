/*
 * queue_state.c - what happens to a committed message: recipients marked
 * delivered, failed or deferred (each change rewritten durably), the retry
 * schedule with its doubling backoff and lifetime, and removal once every
 * recipient has a final status.
 *
 * These functions hold q->lock while they rewrite a file: a rewrite is one
 * small write and fsync, and holding the lock keeps the index and the disk
 * telling the same story.
 *
 * A rewrite the spool refuses (a full disk) is not dropped: the new state is
 * held in memory and the queue pauses until queue_next_due() can write it.
 * Dropping it would leave the recipient due at once, and a full disk would
 * turn every deferral into an immediate retry.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "mail/queue_priv.h"

unsigned queue_backoff(const struct queue *q, unsigned attempts)
{
	uint64_t d = q->opts.backoff_base;

	for (unsigned i = 1; i < attempts && d < q->opts.backoff_max; i++)
		d *= 2;
	return d < q->opts.backoff_max ? (unsigned)d : q->opts.backoff_max;
}

static struct queue_entry *find(struct queue *q, const char *id)
{
	for (size_t i = 0; i < q->nents; i++)
		if (strcmp(q->ents[i].m->id, id) == 0)
			return &q->ents[i];
	return NULL;
}

static int is_final(enum queue_status s)
{
	return s == QUEUE_DELIVERED || s == QUEUE_FAILED;
}

/* A reply fit for a record: control characters blanked, length capped. */
static char *reply_clean(const char *prefix, const char *reply)
{
	char *r = NULL;

	if (asprintf(&r, "%s%s", prefix, reply ? reply : "") < 0)
		return NULL;
	if (strlen(r) > QUEUE_REPLY_MAX)
		r[QUEUE_REPLY_MAX] = '\0';
	for (char *p = r; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return r;
}

static void held_set(struct queue *q, struct queue_entry *ent, enum queue_held h)
{
	if (ent->held == QUEUE_HELD_NONE && h != QUEUE_HELD_NONE)
		q->nheld++;
	else if (ent->held != QUEUE_HELD_NONE && h == QUEUE_HELD_NONE)
		q->nheld--;
	ent->held = h;
	__atomic_store_n(&q->st.held, (uint64_t)q->nheld, __ATOMIC_RELAXED);
}

/*
 * The spool did not take ent's new state (why): keep it in memory and pause the
 * queue, so that no recipient is tried again before its time (a retry storm that
 * fills the log of a full disk) and none delivered is delivered again.  Said once
 * per pause; each failed write is counted.
 */
static void entry_hold(struct queue *q, struct queue_entry *ent, enum queue_held h,
                       const struct err *why)
{
	queue_count(&q->st.write_failures);
	if (ent->held != QUEUE_HELD_REMOVE)
		held_set(q, ent, h);
	if (q->paused)
		return;
	q->paused = 1;
	q->paused_since = (int64_t)time(NULL);
	__atomic_store_n(&q->st.paused, 1, __ATOMIC_RELAXED);
	log_err(NULL,
	        "queue %s: paused, the spool cannot be written (%s); recipients' states are "
	        "held in memory and no delivery starts until they are written",
	        q->dir, why->msg);
}

/* Write m.<id> with the envelope m and the body the file already holds. */
static int entry_write(struct queue *q, const struct queue_msg *m, struct err *e)
{
	char name[QUEUE_ID_MAX + 8], *body = NULL;
	struct queue_msg *old = NULL;
	size_t len = 0;
	int rc = -1;

	snprintf(name, sizeof(name), "m.%s", m->id);
	if (queue_file_load(q, name, &old, &body, &len, e) == 0 &&
	    queue_file_write(q, m, body, len, e) == 0 && queue_dir_sync(q, e) == 0)
		rc = 0;
	queue_msg_free(old);
	free(body);
	return rc;
}

/* Rewrite ent's file with the envelope nm (taken); ent then holds nm, written or (-1)
 * held in memory until the spool takes it. */
static int entry_rewrite(struct queue *q, struct queue_entry *ent, struct queue_msg *nm,
                         struct err *e)
{
	int rc = entry_write(q, nm, e);

	queue_msg_free(ent->m);
	ent->m = nm;
	if (rc == 0)
		held_set(q, ent, QUEUE_HELD_NONE);
	else
		entry_hold(q, ent, QUEUE_HELD_REWRITE, e);
	return rc;
}

static int entry_remove(struct queue *q, struct queue_entry *ent, struct err *e)
{
	char name[QUEUE_ID_MAX + 8];
	size_t i = (size_t)(ent - q->ents);

	snprintf(name, sizeof(name), "m.%s", ent->m->id);
	if (unlinkat(q->dirfd, name, 0) < 0 && errno != ENOENT) {
		err_set(e, ERR_TEMP, "queue_remove", "removing %s/%s: %m", q->dir, name);
		entry_hold(q, ent, QUEUE_HELD_REMOVE, e);
		return -1;
	}
	held_set(q, ent, QUEUE_HELD_NONE);
	queue_msg_free(ent->m);
	free(ent->busy);
	q->ents[i] = q->ents[--q->nents];
	/*
	 * No directory fsync: a removal is final only for recipients whose fate is
	 * already settled.  A process crash cannot undo the unlink; a power failure
	 * can, and then the message is delivered again (at least once, as Postfix
	 * does), never lost.  Syncing here would serialise every delivery behind
	 * the disk while holding the queue's lock.
	 */
	(void)e;
	return 0;
}

static int all_final(const struct queue_msg *m)
{
	for (size_t i = 0; i < m->nrcpt; i++)
		if (!is_final(m->rcpts[i].status))
			return 0;
	return 1;
}

/* Apply one outcome to a copy of the envelope: a deferral past the lifetime is final. */
static int apply(struct queue *q, struct queue_rcpt *r, int64_t arrival, enum queue_status st,
                 const char *reply, int64_t now, int64_t next)
{
	int expired = st == QUEUE_DEFERRED && now >= arrival + (int64_t)q->opts.lifetime;
	char *nr = reply_clean(expired ? "expired in queue; last reply: " : "", reply);

	if (nr == NULL)
		return -1;
	if (st != QUEUE_PENDING)
		r->attempts++;
	r->next_attempt = 0;
	if (expired)
		st = QUEUE_FAILED;
	else if (st == QUEUE_DEFERRED)
		r->next_attempt = next > 0 ? next : now + queue_backoff(q, r->attempts);
	free(r->reply);
	r->reply = nr;
	r->status = st;
	return 0;
}

int queue_mark(struct queue *q, const char *id, size_t rcpt, enum queue_status status,
               const char *reply, int64_t now, struct err *e)
{
	return queue_mark_at(q, id, rcpt, status, reply, now, 0, e);
}

int queue_mark_at(struct queue *q, const char *id, size_t rcpt, enum queue_status status,
                  const char *reply, int64_t now, int64_t next, struct err *e)
{
	struct queue_entry *ent;
	struct queue_msg *nm;
	int rc = -1;

	if ((unsigned)status > QUEUE_DEFERRED)
		return err_set(e, ERR_INPUT, "queue_status", "unknown status %d", (int)status);
	pthread_mutex_lock(&q->lock);
	if ((ent = find(q, id)) == NULL) {
		err_set(e, ERR_NOTFOUND, "queue_id", "no message %s in the queue", id);
		goto out;
	}
	if (rcpt >= ent->m->nrcpt) {
		err_set(e, ERR_INPUT, "queue_rcpt", "message %s has no recipient %zu", id, rcpt);
		goto out;
	}
	if ((nm = queue_msg_dup(ent->m)) == NULL ||
	    apply(q, &nm->rcpts[rcpt], nm->arrival, status, reply, now, next) < 0) {
		queue_msg_free(nm);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	ent->busy[rcpt] = 0;
	if (all_final(nm)) {
		queue_msg_free(ent->m);
		ent->m = nm;
		rc = entry_remove(q, ent, e);
	} else {
		rc = entry_rewrite(q, ent, nm, e);
	}
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int queue_done(struct queue *q, const char *id, struct err *e)
{
	struct queue_entry *ent;
	int rc;

	pthread_mutex_lock(&q->lock);
	ent = find(q, id);
	rc = ent ? entry_remove(q, ent, e)
	         : err_set(e, ERR_NOTFOUND, "queue_id", "no message %s in the queue", id);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int due_add(struct queue_due **out, size_t *n, size_t *cap, const char *id, size_t rcpt,
                   const char *addr, int expired);

/* Fail every unfinished recipient of an expired message and report them in out.  The
 * message stays (every recipient final) so that the caller can bounce it, then
 * queue_done() it.  Returns 1 if it expired it, 0 if not expired, -1 on error. */
static int expire(struct queue *q, struct queue_entry *ent, int64_t now, struct queue_due **out,
                  size_t *n, size_t *cap, struct err *e)
{
	struct queue_msg *nm;

	if (now < ent->m->arrival + (int64_t)q->opts.lifetime || all_final(ent->m))
		return 0;
	if ((nm = queue_msg_dup(ent->m)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	for (size_t i = 0; i < nm->nrcpt; i++) {
		struct queue_rcpt *r = &nm->rcpts[i];
		if (is_final(r->status))
			continue;
		char *nr =
		    reply_clean("expired in queue; last reply: ", r->reply[0] ? r->reply : "none");
		if (nr == NULL) {
			queue_msg_free(nm);
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		}
		free(r->reply);
		r->reply = nr;
		r->status = QUEUE_FAILED;
		r->next_attempt = 0;
		if (due_add(out, n, cap, nm->id, i, r->addr, 1) < 0) {
			queue_msg_free(nm);
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		}
	}
	log_info(nm->id, "queue: expired after %u s", q->opts.lifetime);
	/* Failed for good in memory even when the spool cannot say so yet: bounced now. */
	(void)entry_rewrite(q, ent, nm, e);
	return 1;
}

static int due_add(struct queue_due **out, size_t *n, size_t *cap, const char *id, size_t rcpt,
                   const char *addr, int expired)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct queue_due *d = reallocarray(*out, ncap, sizeof(*d));
		if (d == NULL)
			return -1;
		*out = d;
		*cap = ncap;
	}
	struct queue_due *d = &(*out)[*n];
	memcpy(d->id, id, QUEUE_ID_MAX);
	d->rcpt = rcpt;
	d->expired = expired;
	if ((d->addr = strdup(addr)) == NULL)
		return -1;
	(*n)++;
	return 0;
}

/* Write what is held in memory; 0 when nothing is left held.  Stops at the first
 * write the spool refuses: one try per call while the disk stays full. */
static int flush_held(struct queue *q, struct err *e)
{
	size_t i = 0;

	while (q->nheld > 0 && i < q->nents) {
		struct queue_entry *ent = &q->ents[i];

		if (ent->held == QUEUE_HELD_REMOVE) {
			if (entry_remove(q, ent, e) < 0)
				return -1;
			continue; /* another entry took index i */
		}
		if (ent->held == QUEUE_HELD_REWRITE) {
			if (entry_write(q, ent->m, e) < 0) {
				queue_count(&q->st.write_failures);
				return -1;
			}
			held_set(q, ent, QUEUE_HELD_NONE);
		}
		i++;
	}
	return 0;
}

/* A paused queue resumes once its held states are written. */
static int resume(struct queue *q)
{
	struct err e = {0};

	if (flush_held(q, &e) < 0)
		return -1;
	q->paused = 0;
	__atomic_store_n(&q->st.paused, 0, __ATOMIC_RELAXED);
	log_info(NULL, "queue %s: resumed, the spool took the held states after %lld s", q->dir,
	         (long long)((int64_t)time(NULL) - q->paused_since));
	return 0;
}

int queue_next_due(struct queue *q, int64_t now, struct queue_due **out, size_t *n, struct err *e)
{
	size_t cap = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&q->lock);
	if (q->paused && resume(q) < 0) {
		pthread_mutex_unlock(&q->lock);
		return 0;
	}
	for (size_t i = 0; i < q->nents && rc == 0; i++) {
		struct queue_entry *ent = &q->ents[i];
		rc = expire(q, ent, now, out, n, &cap, e);
		if (rc == 1) {
			rc = 0;
			continue;
		}
		for (size_t k = 0; k < ent->m->nrcpt && rc == 0; k++) {
			const struct queue_rcpt *r = &ent->m->rcpts[k];
			int due = r->status == QUEUE_PENDING ||
			          (r->status == QUEUE_DEFERRED && r->next_attempt <= now);
			if (!due || ent->busy[k])
				continue;
			if (due_add(out, n, &cap, ent->m->id, k, r->addr, 0) < 0)
				rc = err_set(e, ERR_INTERNAL, "internal", "out of memory");
			else
				ent->busy[k] = 1;
		}
	}
	pthread_mutex_unlock(&q->lock);
	if (rc < 0) {
		queue_due_free(*out, *n);
		*out = NULL;
		*n = 0;
		return -1;
	}
	return 0;
}

void queue_due_free(struct queue_due *due, size_t n)
{
	for (size_t i = 0; due != NULL && i < n; i++)
		free(due[i].addr);
	free(due);
}

void queue_release(struct queue *q, const char *id, size_t rcpt)
{
	struct queue_entry *ent;

	pthread_mutex_lock(&q->lock);
	if ((ent = find(q, id)) != NULL && rcpt < ent->m->nrcpt)
		ent->busy[rcpt] = 0;
	pthread_mutex_unlock(&q->lock);
}

int queue_paused(struct queue *q)
{
	return (int)__atomic_load_n(&q->st.paused, __ATOMIC_RELAXED);
}

struct queue_msg *queue_msg_get(struct queue *q, const char *id, struct err *e)
{
	struct queue_entry *ent;
	struct queue_msg *m = NULL;

	pthread_mutex_lock(&q->lock);
	if ((ent = find(q, id)) == NULL)
		err_set(e, ERR_NOTFOUND, "queue_id", "no message %s in the queue", id);
	else if ((m = queue_msg_dup(ent->m)) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	pthread_mutex_unlock(&q->lock);
	return m;
}

int queue_body_read(struct queue *q, const char *id, char **body, size_t *len, struct err *e)
{
	char name[QUEUE_ID_MAX + 8];
	struct queue_msg *m = NULL;
	int rc;

	pthread_mutex_lock(&q->lock);
	if (find(q, id) == NULL) {
		pthread_mutex_unlock(&q->lock);
		return err_set(e, ERR_NOTFOUND, "queue_id", "no message %s in the queue", id);
	}
	snprintf(name, sizeof(name), "m.%s", id);
	rc = queue_file_load(q, name, &m, body, len, e);
	pthread_mutex_unlock(&q->lock);
	queue_msg_free(m);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted ids of the messages keep accepts (NULL: every one), taken under the lock. */
static int ids_where(struct queue *q, int (*keep)(const struct queue_msg *), char ***ids, size_t *n,
                     struct err *e)
{
	char **v;
	size_t k = 0;
	int oom;

	pthread_mutex_lock(&q->lock);
	v = calloc(q->nents ? q->nents : 1, sizeof(*v));
	oom = v == NULL;
	for (size_t i = 0; !oom && i < q->nents; i++) {
		if (keep != NULL && !keep(q->ents[i].m))
			continue;
		if ((v[k] = strdup(q->ents[i].m->id)) == NULL)
			oom = 1;
		else
			k++;
	}
	pthread_mutex_unlock(&q->lock);
	if (oom) {
		queue_ids_free(v, k);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	qsort(v, k, sizeof(*v), cmp_str);
	*ids = v;
	*n = k;
	return 0;
}

int queue_ids(struct queue *q, char ***ids, size_t *n, struct err *e)
{
	return ids_where(q, NULL, ids, n, e);
}

void queue_ids_free(char **ids, size_t n)
{
	for (size_t i = 0; ids != NULL && i < n; i++)
		free(ids[i]);
	free(ids);
}

int queue_final_ids(struct queue *q, char ***ids, size_t *n, struct err *e)
{
	return ids_where(q, all_final, ids, n, e);
}
