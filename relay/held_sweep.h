/*
 * held_sweep.h - the periodic sweep of held copies (PROTOCOL.md §12.10, §12.12): messages
 * held for a decision past defer_hold_time (defer.c) and messages kept for a partial fetch
 * past partial_keep_time (partial_out.c) are deleted every held_sweep_interval, not only
 * when next asked about or at the next start.
 */
#ifndef ANCHOR_RELAY_HELD_SWEEP_H
#define ANCHOR_RELAY_HELD_SWEEP_H

#include "core/err.h"

struct relayd;
struct metrics_out;

/* main.c: the sweep's timer on d's loop (its first run at once); the work on d->pool. */
int relayd_held_sweep_start(struct relayd *d, struct err *e);
/* main.c, at shutdown, before the pool stops: no sweep starts any more. */
void relayd_held_sweep_stop(struct relayd *d);
/* control.c: anchor_relay_held_swept_total{store} for /metrics. */
void relay_held_sweep_metrics(struct metrics_out *o);

#endif
