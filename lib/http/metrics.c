/* metrics.c - lock-free request counters and latency histogram; see metrics.h. */
#include "http/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_SLOTS 128 /* routes x statuses actually seen; a daemon has a few dozen */

static const double metrics_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1};
#define METRICS_NBOUNDS (sizeof(metrics_bounds) / sizeof(metrics_bounds[0]))

struct metrics_slot {
	const char *route;
	int status;
	atomic_ullong count;
};

struct metrics {
	pthread_mutex_t grow; /* taken only to add a new (route, status) slot */
	atomic_size_t nslots; /* slots [0, nslots) are complete and readable */
	struct metrics_slot slot[METRICS_SLOTS];
	atomic_ullong overflow;                  /* requests whose pair found no free slot */
	atomic_ullong hist[METRICS_NBOUNDS + 1]; /* per bucket, not cumulative; last is +Inf */
	atomic_ullong sum_ns;
	atomic_ullong rate_limited;
	struct metrics_tls tls;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	if (pthread_mutex_init(&m->grow, NULL) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(&m->grow);
	free(m);
}

static struct metrics_slot *metrics_find(struct metrics *m, size_t n, const char *route, int status)
{
	for (size_t i = 0; i < n; i++) {
		struct metrics_slot *s = &m->slot[i];

		if (s->status == status && (s->route == route || strcmp(s->route, route) == 0))
			return s;
	}
	return NULL;
}

static struct metrics_slot *metrics_slot_for(struct metrics *m, const char *route, int status)
{
	size_t n = atomic_load_explicit(&m->nslots, memory_order_acquire);
	struct metrics_slot *s = metrics_find(m, n, route, status);

	if (s != NULL)
		return s;
	pthread_mutex_lock(&m->grow);
	n = atomic_load_explicit(&m->nslots, memory_order_relaxed);
	s = metrics_find(m, n, route, status);
	if (s == NULL && n < METRICS_SLOTS) {
		s = &m->slot[n];
		s->route = route;
		s->status = status;
		/* publish only once route and status are in place */
		atomic_store_explicit(&m->nslots, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&m->grow);
	return s;
}

void metrics_observe(struct metrics *m, const char *route, int status, double seconds)
{
	struct metrics_slot *s;
	size_t b = 0;

	if (m == NULL)
		return;
	s = metrics_slot_for(m, route != NULL ? route : "other", status);
	if (s != NULL)
		atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&m->overflow, 1, memory_order_relaxed);
	while (b < METRICS_NBOUNDS && seconds > metrics_bounds[b])
		b++;
	atomic_fetch_add_explicit(&m->hist[b], 1, memory_order_relaxed);
	if (seconds > 0)
		atomic_fetch_add_explicit(&m->sum_ns, (unsigned long long)(seconds * 1e9),
		                          memory_order_relaxed);
}

void metrics_rate_limited(struct metrics *m)
{
	if (m != NULL)
		atomic_fetch_add_explicit(&m->rate_limited, 1, memory_order_relaxed);
}

void metrics_out_init(struct metrics_out *o, char *buf, size_t len)
{
	o->buf = buf;
	o->len = len;
	o->off = 0;
	if (len > 0)
		buf[0] = '\0';
}

/* Append, or nothing when it does not fit whole. */
void metrics_put(struct metrics_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->off >= o->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->off, o->len - o->off, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < o->len - o->off)
		o->off += (size_t)n;
	else
		o->buf[o->off] = '\0';
}

/* Route labels are static strings from the program, but escape them anyway. */
static void metrics_label(char *dst, size_t len, const char *src)
{
	size_t j = 0;

	for (; *src != '\0' && j + 3 < len; src++) {
		if (*src == '\\' || *src == '"') {
			dst[j++] = '\\';
			dst[j++] = *src;
		} else if (*src == '\n') {
			dst[j++] = '\\';
			dst[j++] = 'n';
		} else {
			dst[j++] = *src;
		}
	}
	dst[j] = '\0';
}

static void metrics_render_requests(struct metrics *m, struct metrics_out *o)
{
	size_t n = atomic_load_explicit(&m->nslots, memory_order_acquire);
	unsigned long long overflow = atomic_load_explicit(&m->overflow, memory_order_relaxed);
	char label[128];

	metrics_put(o, "# HELP anchor_http_requests_total HTTP requests by route and status.\n"
	               "# TYPE anchor_http_requests_total counter\n");
	for (size_t i = 0; i < n; i++) {
		metrics_label(label, sizeof(label), m->slot[i].route);
		metrics_put(o, "anchor_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n", label,
		            m->slot[i].status,
		            atomic_load_explicit(&m->slot[i].count, memory_order_relaxed));
	}
	if (overflow > 0)
		metrics_put(o, "anchor_http_requests_total{route=\"other\",code=\"other\"} %llu\n",
		            overflow);
}

static void metrics_render_latency(struct metrics *m, struct metrics_out *o)
{
	unsigned long long cum = 0;

	metrics_put(o, "# HELP anchor_http_request_duration_seconds Time to produce a response.\n"
	               "# TYPE anchor_http_request_duration_seconds histogram\n");
	for (size_t b = 0; b <= METRICS_NBOUNDS; b++) {
		cum += atomic_load_explicit(&m->hist[b], memory_order_relaxed);
		if (b < METRICS_NBOUNDS)
			metrics_put(o,
			            "anchor_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			            metrics_bounds[b], cum);
		else
			metrics_put(
			    o, "anchor_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			    cum);
	}
	metrics_put(o, "anchor_http_request_duration_seconds_sum %.6f\n",
	            (double)atomic_load_explicit(&m->sum_ns, memory_order_relaxed) / 1e9);
	/* the count is the +Inf bucket, so the two always agree in one scrape */
	metrics_put(o, "anchor_http_request_duration_seconds_count %llu\n", cum);
}

void metrics_tls_handshake(struct metrics_tls *t, int version, int resumed)
{
	enum metrics_tls_version v = version == 0x0303   ? METRICS_TLS_1_2
	                             : version == 0x0304 ? METRICS_TLS_1_3
	                                                 : METRICS_TLS_OTHER;

	if (t != NULL)
		atomic_fetch_add_explicit(&t->n[v][resumed != 0], 1, memory_order_relaxed);
}

struct metrics_tls *metrics_tls_of(struct metrics *m)
{
	return m != NULL ? &m->tls : NULL;
}

void metrics_tls_render(struct metrics_tls *t, const char *name, const char *listener,
                        struct metrics_out *o)
{
	static const char *const vname[METRICS_TLS_NVER] = {"TLSv1.2", "TLSv1.3", "other"};

	if (t == NULL)
		return;
	metrics_put(o,
	            "# HELP %s TLS handshakes completed, by protocol version and resumed or "
	            "full.\n# TYPE %s counter\n",
	            name, name);
	for (int v = 0; v < METRICS_TLS_NVER; v++)
		for (int r = 0; r < 2; r++)
			metrics_put(o, "%s{listener=\"%s\",version=\"%s\",resumed=\"%s\"} %llu\n",
			            name, listener, vname[v], r ? "yes" : "no",
			            atomic_load_explicit(&t->n[v][r], memory_order_relaxed));
}

size_t metrics_render(struct metrics *m, char *buf, size_t len)
{
	struct metrics_out o;

	metrics_out_init(&o, buf, len);
	if (m == NULL)
		return 0;
	metrics_render_requests(m, &o);
	metrics_render_latency(m, &o);
	metrics_put(&o,
	            "# HELP anchor_http_rate_limited_total Requests refused by the rate limit.\n"
	            "# TYPE anchor_http_rate_limited_total counter\n"
	            "anchor_http_rate_limited_total %llu\n",
	            atomic_load_explicit(&m->rate_limited, memory_order_relaxed));
	metrics_tls_render(&m->tls, "anchor_tls_handshakes_total", "https", &o);
	return o.off;
}
