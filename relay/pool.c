/*
 * pool.c - worker threads whose results come back to the event loop.
 *
 * The loop never blocks: verification, signing requests, lookups and
 * deliveries run here.  A finished job is put on the done list and one
 * libevent event is activated (libevent is made thread-aware by main with
 * evthread_use_pthreads()), so every done() runs on the loop's thread, in
 * the order the jobs finished, and needs no lock of its own.
 */
#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "relay.h"

struct job {
	relay_work_fn work, done;
	void *arg;
	struct job *next;
};

struct jobq {
	struct job *head, *tail;
};

struct relay_pool {
	struct event_base *base;
	struct event *done_ev;
	pthread_mutex_t lock;
	pthread_cond_t more;
	struct jobq todo, finished;
	int stopping;
	int nthreads;
	pthread_t *threads;
};

static void jobq_push(struct jobq *q, struct job *j)
{
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct job *jobq_pop(struct jobq *q)
{
	struct job *j = q->head;

	if (j != NULL) {
		q->head = j->next;
		if (q->head == NULL)
			q->tail = NULL;
	}
	return j;
}

static void *worker_main(void *arg)
{
	struct relay_pool *p = arg;

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&p->lock);
		while (p->todo.head == NULL && !p->stopping)
			pthread_cond_wait(&p->more, &p->lock);
		j = jobq_pop(&p->todo);
		pthread_mutex_unlock(&p->lock);
		if (j == NULL)
			return NULL; /* stopping and nothing left */
		j->work(j->arg);
		pthread_mutex_lock(&p->lock);
		jobq_push(&p->finished, j);
		pthread_mutex_unlock(&p->lock);
		event_active(p->done_ev, EV_READ, 0);
	}
}

/* On the loop: run every finished job's done(). */
static void run_finished(struct relay_pool *p)
{
	struct jobq q;
	struct job *j;

	pthread_mutex_lock(&p->lock);
	q = p->finished;
	p->finished.head = p->finished.tail = NULL;
	pthread_mutex_unlock(&p->lock);
	while ((j = jobq_pop(&q)) != NULL) {
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_finished(arg);
}

struct relay_pool *relay_pool_new(struct event_base *base, int nthreads, struct err *e)
{
	struct relay_pool *p = calloc(1, sizeof(*p));
	int i;

	if (p == NULL)
		goto nomem;
	p->base = base;
	p->threads = calloc((size_t)nthreads, sizeof(pthread_t));
	p->done_ev = event_new(base, -1, 0, on_done, p);
	if (p->threads == NULL || p->done_ev == NULL)
		goto nomem;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->more, NULL);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
			err_set(e, ERR_INTERNAL, "internal", "cannot start worker thread %d", i);
			p->nthreads = i;
			relay_pool_free(p);
			return NULL;
		}
	}
	p->nthreads = nthreads;
	return p;
nomem:
	if (p != NULL) {
		if (p->done_ev != NULL)
			event_free(p->done_ev);
		free(p->threads);
		free(p);
	}
	err_set(e, ERR_INTERNAL, "nomem", "out of memory");
	return NULL;
}

int relay_pool_run(struct relay_pool *p, relay_work_fn work, relay_work_fn done, void *arg,
                   struct err *e)
{
	struct job *j = malloc(sizeof(*j));

	if (j == NULL)
		return err_set(e, ERR_INTERNAL, "nomem", "out of memory");
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->lock);
	jobq_push(&p->todo, j);
	pthread_cond_signal(&p->more);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int relay_pool_post(struct relay_pool *p, relay_work_fn done, void *arg, struct err *e)
{
	struct job *j = malloc(sizeof(*j));

	if (j == NULL)
		return err_set(e, ERR_INTERNAL, "nomem", "out of memory");
	j->work = NULL;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->lock);
	jobq_push(&p->finished, j);
	pthread_mutex_unlock(&p->lock);
	event_active(p->done_ev, EV_READ, 0);
	return 0;
}

void relay_pool_stop(struct relay_pool *p)
{
	int i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
}

void relay_pool_free(struct relay_pool *p)
{
	if (p == NULL)
		return;
	relay_pool_stop(p);
	run_finished(p);
	event_free(p->done_ev);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->more);
	free(p->threads);
	free(p);
}
