/*
 * queue_commit.c - accepting messages and committing them in groups, and the
 * queue's lifetime: queue_open() starts the commit thread, queue_close() stops it.
 *
 * queue_submit() writes the message to its temporary file and fsyncs it in
 * the caller's thread, then puts it on the pending list.  Submitters run in
 * parallel, and the file system's journal commits their concurrent fsyncs
 * together (ext4's jbd2 batches them), where one thread syncing file after
 * file would pay a journal commit each.  A commit round takes the whole
 * list, renames each file into place, fsyncs the directory once for the
 * round and only then reports to each submitter.  While one round waits for
 * the disk the next one fills up, so under load many sessions share one
 * directory fsync (Redis's "appendfsync always" answers a whole round of
 * clients the same way).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pki/crypto.h"
#include "core/log.h"
#include "mail/queue_priv.h"

#define DEFAULT_BACKOFF_BASE 60
#define DEFAULT_BACKOFF_MAX 3600
#define DEFAULT_LIFETIME (5 * 24 * 3600)

void queue_job_free(struct queue_job *j)
{
	if (j == NULL)
		return;
	queue_msg_free(j->m);
	free(j->body);
	free(j);
}

/* Time first, so that ids sort roughly by arrival; then 11 random bytes. */
static int new_id(char id[QUEUE_ID_MAX], struct err *e)
{
	uint8_t rnd[11];

	if (crypto_random_bytes(rnd, sizeof(rnd), e) < 0)
		return -1;
	snprintf(id, QUEUE_ID_MAX, "%010llx", (unsigned long long)time(NULL) & 0xffffffffffULL);
	crypto_hex(rnd, sizeof(rnd), id + 10);
	return 0;
}

static struct queue_msg *envelope_new(const char *sender, const char *const *rcpts, size_t nrcpt,
                                      size_t len, struct err *e)
{
	struct queue_msg *m = calloc(1, sizeof(*m));

	if (m == NULL || new_id(m->id, e) < 0)
		goto fail;
	m->arrival = (int64_t)time(NULL);
	m->size = len;
	m->sender = strdup(sender);
	m->rcpts = calloc(nrcpt, sizeof(*m->rcpts));
	if (m->sender == NULL || m->rcpts == NULL)
		goto oom;
	for (size_t i = 0; i < nrcpt; i++) {
		m->nrcpt = i + 1;
		m->rcpts[i].addr = strdup(rcpts[i]);
		m->rcpts[i].reply = strdup("");
		if (m->rcpts[i].addr == NULL || m->rcpts[i].reply == NULL)
			goto oom;
	}
	return m;
oom:
	err_set(e, ERR_INTERNAL, "internal", "out of memory");
fail:
	queue_msg_free(m);
	return NULL;
}

static int envelope_check(const char *sender, const char *const *rcpts, size_t nrcpt, struct err *e)
{
	if (sender == NULL || (sender[0] != '\0' && !queue_addr_valid(sender)))
		return err_set(e, ERR_INPUT, "queue_sender", "sender address not acceptable");
	if (nrcpt == 0 || nrcpt > QUEUE_MAX_RCPT)
		return err_set(e, ERR_INPUT, "queue_rcpts", "%zu recipients (1 to %d allowed)",
		               nrcpt, QUEUE_MAX_RCPT);
	for (size_t i = 0; i < nrcpt; i++)
		if (rcpts[i] == NULL || rcpts[i][0] == '\0' || !queue_addr_valid(rcpts[i]))
			return err_set(e, ERR_INPUT, "queue_rcpts",
			               "recipient %zu address not acceptable", i);
	return 0;
}

int queue_submit(struct queue *q, const char *sender, const char *const *rcpts, size_t nrcpt,
                 const void *body, size_t len, queue_commit_cb cb, void *arg,
                 char id_out[QUEUE_ID_MAX], struct err *e)
{
	return queue_submit_flags(q, 0, sender, rcpts, nrcpt, body, len, cb, arg, id_out, e);
}

int queue_submit_flags(struct queue *q, unsigned flags, const char *sender,
                       const char *const *rcpts, size_t nrcpt, const void *body, size_t len,
                       queue_commit_cb cb, void *arg, char id_out[QUEUE_ID_MAX], struct err *e)
{
	return queue_submit_dsn(q, flags, NULL, sender, rcpts, nrcpt, body, len, cb, arg, id_out,
	                        e);
}

/* queue_submit_dsn, under the id given (an idempotent submission) or a new one (id NULL). */
static int submit(struct queue *q, const char *id, unsigned flags, const struct queue_dsn *dsn,
                  const char *sender, const char *const *rcpts, size_t nrcpt, const void *body,
                  size_t len, queue_commit_cb cb, void *arg, char id_out[QUEUE_ID_MAX],
                  struct err *e)
{
	struct queue_job *j = NULL;

	if (envelope_check(sender, rcpts, nrcpt, e) < 0)
		return -1;
	if ((j = calloc(1, sizeof(*j))) == NULL || (j->body = malloc(len ? len : 1)) == NULL)
		goto oom;
	if ((j->m = envelope_new(sender, rcpts, nrcpt, len, e)) == NULL)
		goto fail;
	if (id != NULL)
		snprintf(j->m->id, QUEUE_ID_MAX, "%s", id);
	j->m->flags = flags;
	if (dsn != NULL && queue_msg_set_dsn(j->m, dsn, e) < 0)
		goto fail;
	memcpy(j->body, body, len);
	j->len = len;
	j->cb = cb;
	j->arg = arg;
	memcpy(j->id, j->m->id, QUEUE_ID_MAX);
	memcpy(id_out, j->m->id, QUEUE_ID_MAX);
	if (queue_file_write_tmp(q, j->m, j->body, j->len, e) < 0)
		goto fail;
	free(j->body); /* on disk now; the index keeps only the envelope */
	j->body = NULL;

	pthread_mutex_lock(&q->lock);
	if (q->stopping) {
		char tmp[QUEUE_ID_MAX + 8];

		pthread_mutex_unlock(&q->lock);
		snprintf(tmp, sizeof(tmp), "t.%s", j->id);
		unlinkat(q->dirfd, tmp, 0);
		err_set(e, ERR_TEMP, "queue_closing", "the queue is shutting down");
		goto fail;
	}
	*q->pending_tail = j;
	q->pending_tail = &j->next;
	queue_count(&q->st.submitted);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return 0;
oom:
	err_set(e, ERR_INTERNAL, "internal", "out of memory");
fail:
	queue_job_free(j);
	return -1;
}

int queue_submit_dsn(struct queue *q, unsigned flags, const struct queue_dsn *dsn,
                     const char *sender, const char *const *rcpts, size_t nrcpt, const void *body,
                     size_t len, queue_commit_cb cb, void *arg, char id_out[QUEUE_ID_MAX],
                     struct err *e)
{
	return submit(q, NULL, flags, dsn, sender, rcpts, nrcpt, body, len, cb, arg, id_out, e);
}

int queue_submit_as(struct queue *q, const char *id, const char *sender, const char *rcpt,
                    const void *body, size_t len, queue_commit_cb cb, void *arg, struct err *e)
{
	char out[QUEUE_ID_MAX];
	struct err ge = {0};
	struct queue_msg *m;
	size_t n = strlen(id);

	if (n == 0 || n >= QUEUE_ID_MAX || strspn(id, "0123456789abcdef") != n)
		return err_set(e, ERR_INPUT, "queue_id", "a queue id is lowercase hex digits");
	if ((m = queue_msg_get(q, id, &ge)) != NULL) { /* committed before: nothing to do */
		queue_msg_free(m);
		return 1;
	}
	return submit(q, id, 0, NULL, sender, &rcpt, 1, body, len, cb, arg, out, e);
}

static struct queue_job *take_pending(struct queue *q)
{
	struct queue_job *list;

	pthread_mutex_lock(&q->lock);
	list = q->pending;
	q->pending = NULL;
	q->pending_tail = &q->pending;
	pthread_mutex_unlock(&q->lock);
	return list;
}

/* The directory fsync failed: nothing of this round may count as accepted, nor be
 * delivered later, so take the renamed files back out. */
static void undo_round(struct queue *q, struct queue_job *list, const struct err *why)
{
	char name[QUEUE_ID_MAX + 8];

	for (struct queue_job *j = list; j != NULL; j = j->next) {
		if (!j->ok)
			continue;
		snprintf(name, sizeof(name), "m.%s", j->id);
		unlinkat(q->dirfd, name, 0);
		j->ok = 0;
		j->e = *why;
	}
	fsync(q->dirfd);
}

/* Write, sync and index one round; returns the number of jobs.  Callers hold commit_lock. */
static size_t commit_round(struct queue *q, struct queue_job *list)
{
	struct err e = {0};
	size_t n = 0, ok = 0;

	for (struct queue_job *j = list; j != NULL; j = j->next, n++) {
		j->ok = queue_file_publish(q, j->id, &j->e) == 0;
		ok += (size_t)j->ok;
	}
	if (ok > 0 && queue_dir_sync(q, &e) < 0)
		undo_round(q, list, &e);
	if (ok > 0)
		queue_count(&q->st.batches);
	pthread_mutex_lock(&q->lock);
	for (struct queue_job *j = list; j != NULL; j = j->next) {
		if (j->ok) {
			struct queue_msg *m = j->m;
			j->m = NULL;
			/* Out of memory here leaves the file for the next queue_open(). */
			if (queue_index_add(q, m, &e) < 0)
				log_err(j->id, "queue: committed but not indexed (%s)", e.msg);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}

size_t queue_commit_pending(struct queue *q)
{
	struct queue_job *list;
	size_t n;

	pthread_mutex_lock(&q->commit_lock);
	list = take_pending(q);
	n = list ? commit_round(q, list) : 0;
	pthread_mutex_unlock(&q->commit_lock);
	while (list != NULL) {
		struct queue_job *next = list->next;
		queue_count(list->ok ? &q->st.committed : &q->st.commit_failed);
		if (!list->ok)
			log_warn(list->id, "queue: not committed: %s", list->e.msg);
		if (list->cb)
			list->cb(list->id, list->ok, &list->e, list->arg);
		queue_job_free(list);
		list = next;
	}
	return n;
}

void *queue_commit_main(void *arg)
{
	struct queue *q = arg;

	for (;;) {
		pthread_mutex_lock(&q->lock);
		while (q->pending == NULL && !q->stopping)
			pthread_cond_wait(&q->cond, &q->lock);
		int done = q->pending == NULL && q->stopping;
		pthread_mutex_unlock(&q->lock);
		if (done)
			return NULL;
		queue_commit_pending(q);
	}
}

/* ---- the queue's lifetime, which starts and stops the commit thread ---- */

struct queue *queue_open(const struct queue_opts *opts, struct err *e)
{
	struct queue *q = calloc(1, sizeof(*q));

	if (q == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	q->dirfd = -1;
	q->opts = *opts;
	q->opts.dir = NULL;
	if (!q->opts.backoff_base)
		q->opts.backoff_base = DEFAULT_BACKOFF_BASE;
	if (!q->opts.backoff_max)
		q->opts.backoff_max = DEFAULT_BACKOFF_MAX;
	if (!q->opts.lifetime)
		q->opts.lifetime = DEFAULT_LIFETIME;
	pthread_mutex_init(&q->lock, NULL);
	pthread_mutex_init(&q->commit_lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->pending_tail = &q->pending;
	if ((q->dir = strdup(opts->dir ? opts->dir : "")) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if (queue_spool_open(q, e) < 0 || queue_recover(q, e) < 0)
		goto fail;
	if (opts->commit_thread) {
		if (pthread_create(&q->thread, NULL, queue_commit_main, q) != 0) {
			err_set(e, ERR_INTERNAL, "queue_open", "cannot start the commit thread");
			goto fail;
		}
		q->has_thread = 1;
	}
	return q;
fail:
	queue_close(q);
	return NULL;
}

void queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	if (q->has_thread) {
		pthread_mutex_lock(&q->lock);
		q->stopping = 1;
		pthread_cond_broadcast(&q->cond);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->thread, NULL);
	}
	queue_commit_pending(q);
	queue_index_free(q);
	if (q->dirfd >= 0)
		close(q->dirfd);
	pthread_mutex_destroy(&q->lock);
	pthread_mutex_destroy(&q->commit_lock);
	pthread_cond_destroy(&q->cond);
	free(q->dir);
	free(q);
}
