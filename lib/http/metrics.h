/*
 * metrics.h - the HTTP layer's Prometheus counters.
 *
 * Requests by (route, status), one latency histogram, the count of
 * rate-limited requests and TLS handshakes by version and resumption (the
 * latter also used by the relay for its STARTTLS).  Recording is lock-free (atomic counters in a
 * small fixed table; only the first request of a new (route, status) pair takes a lock), so the hot
 * path costs a few atomic adds.
 */
#ifndef ANCHOR_METRICS_H
#define ANCHOR_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

struct metrics;

/*
 * TLS handshakes completed, by protocol version and by resumed (a ticket or session
 * ID) or full, so that an operator sees what clients use before tightening
 * tls_profile.  Embedded where it is counted (zeroed memory is ready); recording is
 * one relaxed atomic add.
 */
enum metrics_tls_version { METRICS_TLS_1_2, METRICS_TLS_1_3, METRICS_TLS_OTHER, METRICS_TLS_NVER };

struct metrics_tls {
	atomic_ullong n[METRICS_TLS_NVER][2]; /* [version][resumed] */
};

/* version is the wire version (0x0303, 0x0304; anything else counts as "other"). */
void metrics_tls_handshake(struct metrics_tls *t, int version, int resumed);
/* The counters of t as the family `name` (e.g. "anchor_tls_handshakes_total") with the
 * label listener="<listener>", HELP and TYPE first, at buf + *off (at most len bytes in
 * all, whole lines only); *off advances. */
struct metrics_out;
void metrics_tls_render(struct metrics_tls *t, const char *name, const char *listener,
                        struct metrics_out *o);
/* The HTTPS layer's counters inside m (NULL when m is). */
struct metrics_tls *metrics_tls_of(struct metrics *m);

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
