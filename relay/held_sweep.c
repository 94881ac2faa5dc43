/*
 * held_sweep.c - the periodic sweep of held copies (held_sweep.h).  A held message or a
 * kept copy whose time is over must not wait for someone to ask about it: the sender of a
 * view may never fetch, and a held recipient's sender may stop asking.  The sweep reads
 * directories, so it runs on a worker; one at a time (the timer is armed again when it
 * ends).
 */
#include "held_sweep.h"

#include <pthread.h>

#include <event2/event.h>

#include "defer.h"
#include "http/metrics.h"
#include "partial.h"
#include "relayd.h"

static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long swept_defer, swept_partial; /* since start */

static void arm(struct relayd *d)
{
	struct timeval tv = {.tv_sec = (time_t)d->s->held_sweep_interval};

	if (d->held_ev != NULL && !d->stopping)
		evtimer_add(d->held_ev, &tv);
}

static void work(void *arg)
{
	struct relayd *d = arg;
	unsigned nd = relay_defer_sweep(d->defer);
	unsigned np = d->s->partial_keep_time > 0 ? relay_partial_sweep(d->s) : 0;

	pthread_mutex_lock(&count_lock);
	swept_defer += nd;
	swept_partial += np;
	pthread_mutex_unlock(&count_lock);
}

static void done(void *arg)
{
	arm(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct relayd *d = arg;
	struct err e = {0};

	(void)fd;
	(void)what;
	if (relay_pool_run(d->pool, work, done, d, &e) < 0)
		arm(d); /* the pool is full or stopping: the next interval tries again */
}

int relayd_held_sweep_start(struct relayd *d, struct err *e)
{
	struct timeval now = {0, 0};

	d->held_ev = evtimer_new(d->base, on_timer, d);
	if (d->held_ev == NULL)
		return err_set(e, ERR_INTERNAL, "internal",
		               "cannot create the held-copy sweep timer");
	evtimer_add(d->held_ev, &now);
	return 0;
}

void relayd_held_sweep_stop(struct relayd *d)
{
	if (d->held_ev != NULL) {
		event_free(d->held_ev);
		d->held_ev = NULL;
	}
}

void relay_held_sweep_metrics(struct metrics_out *o)
{
	unsigned long long nd, np;

	pthread_mutex_lock(&count_lock);
	nd = swept_defer;
	np = swept_partial;
	pthread_mutex_unlock(&count_lock);
	metrics_put(o,
	            "# HELP anchor_relay_held_swept_total Held copies deleted by the periodic "
	            "sweep after their hold or keep time\n"
	            "# TYPE anchor_relay_held_swept_total counter\n"
	            "anchor_relay_held_swept_total{store=\"defer\"} %llu\n"
	            "anchor_relay_held_swept_total{store=\"partial\"} %llu\n",
	            nd, np);
}
