/*
 * metrics.h - the HTTP layer's Prometheus counters.
 *
 * Requests by (route, status), one latency histogram and the count of
 * rate-limited requests.  Recording is lock-free (atomic counters in a small
 * fixed table; only the first request of a new (route, status) pair takes a
 * lock), so the hot path costs a few atomic adds.
 */
#ifndef ANCHOR_METRICS_H
#define ANCHOR_METRICS_H

#include <stddef.h>

struct metrics;

struct metrics *metrics_new(void);    /* NULL when out of memory */
void metrics_free(struct metrics *m); /* accepts NULL */

/* route is a static string (compared by content); seconds is the latency. */
void metrics_observe(struct metrics *m, const char *route, int status, double seconds);
void metrics_rate_limited(struct metrics *m);

/*
 * Prometheus text exposition (format 0.0.4) into buf; returns the bytes
 * written, at most len - 1 (buf stays NUL-terminated).  Lines that do not
 * fit are left out whole rather than cut.
 */
size_t metrics_render(struct metrics *m, char *buf, size_t len);

/*
 * The one appender of /metrics text, for the HTTP layer's lines and each daemon's own
 * (its http_metrics_fn): printf into buf at off, each append whole or not at all, so a
 * scrape never sees a line cut short.  off is the length written; buf stays
 * NUL-terminated.
 */
struct metrics_out {
	char *buf;
	size_t len, off;
};
void metrics_out_init(struct metrics_out *o, char *buf, size_t len);
void metrics_put(struct metrics_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
