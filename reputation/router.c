/* router.c - maps a checked HTTP request onto an anchor-reputation handler. */
#include <stdio.h>
#include <string.h>

#include "dnszone.h"
#include "handlers.h"
#include "core/log.h"
#include "http/metrics.h"

enum route_id {
	R_NONE = 0,
	R_REPORTS,
	R_REPORTS_ARF,
	R_REPORTERS,
	R_REPORTER,
	R_QUERY,
	R_EXPORT,
	R_DELISTS,
	R_DELIST,
	R_DELIST_DECISION,
	R_FEED,
	R_STANDING,
};

struct route {
	const char *label;   /* metrics label */
	const char *methods; /* allowed, space separated */
};

static const struct route routes[] = {
    [R_NONE] = {"unknown", ""},
    [R_REPORTS] = {"reports", "POST"},
    [R_REPORTS_ARF] = {"reports_arf", "POST"},
    [R_REPORTERS] = {"reporters", "POST"},
    [R_REPORTER] = {"reporter", "GET"},
    [R_QUERY] = {"query", "GET POST"},
    [R_EXPORT] = {"export", "GET"},
    [R_DELISTS] = {"delist", "GET POST"},
    [R_DELIST] = {"delist_request", "GET"},
    [R_DELIST_DECISION] = {"delist_decision", "POST"},
    [R_FEED] = {"federation_feed", "GET"},
    [R_STANDING] = {"standing", "POST"},
};

static enum route_id match_route(const struct http_request *h)
{
	int n = h->nseg;

	if (n < 2 || !http_seg_is(h, 0, "v1"))
		return R_NONE;
	if (http_seg_is(h, 1, "reports"))
		return n == 2                               ? R_REPORTS
		       : n == 3 && http_seg_is(h, 2, "arf") ? R_REPORTS_ARF
		                                            : R_NONE;
	if (http_seg_is(h, 1, "reporters"))
		return n == 2 ? R_REPORTERS : n == 3 ? R_REPORTER : R_NONE;
	if (http_seg_is(h, 1, "query") && n == 2)
		return R_QUERY;
	if (http_seg_is(h, 1, "export.csv") && n == 2)
		return R_EXPORT;
	if (http_seg_is(h, 1, "delist")) {
		if (n == 2)
			return R_DELISTS;
		if (n == 3)
			return R_DELIST;
		if (n == 4 && http_seg_is(h, 3, "decision"))
			return R_DELIST_DECISION;
		return R_NONE;
	}
	if (http_seg_is(h, 1, "federation") && http_seg_is(h, 2, "feed") && n == 3)
		return R_FEED;
	if (http_seg_is(h, 1, "admin") && http_seg_is(h, 2, "standing") && n == 3)
		return R_STANDING;
	return R_NONE;
}

static void run_handler(struct rep_req *r, enum route_id id, int get)
{
	const struct http_request *h = r->http;

	switch (id) {
	case R_REPORTS:
		rep_report_post(r);
		break;
	case R_REPORTS_ARF:
		rep_report_arf_post(r);
		break;
	case R_REPORTERS:
		rep_reporter_register(r);
		break;
	case R_REPORTER:
		rep_reporter_get(r, h->seg[2]);
		break;
	case R_QUERY:
		if (get)
			rep_query_get(r);
		else
			rep_query_batch(r);
		break;
	case R_EXPORT:
		rep_export_csv(r);
		break;
	case R_DELISTS:
		if (get)
			rep_delist_list(r);
		else
			rep_delist_post(r);
		break;
	case R_DELIST:
		rep_delist_get(r, h->seg[2]);
		break;
	case R_DELIST_DECISION:
		rep_delist_decide(r, h->seg[2]);
		break;
	case R_FEED:
		rep_federation_feed(r);
		break;
	case R_STANDING:
		rep_standing_post(r);
		break;
	case R_NONE:
		break;
	}
}

void rep_dispatch(const struct http_request *h, struct http_response *resp, void *app)
{
	struct rep *rep = app;
	struct rep_req r = {.rep = rep, .http = h, .resp = resp};
	enum route_id id = match_route(h);
	const char *method = strcmp(h->method, "HEAD") == 0 ? "GET" : h->method;
	const struct route *rt = &routes[id];
	struct db_lease lease;

	resp->route = rt->label;
	if (id == R_NONE) {
		http_reply_errorf(resp, ERR_NOTFOUND, "not_found", "no resource at %s", h->path);
		return;
	}
	if (!http_method_in(method, rt->methods)) {
		http_reply_errorf(resp, ERR_INPUT, "method_not_allowed",
		                  "%s is not allowed on %s; use %s", h->method, h->path,
		                  rt->methods);
		resp->status = 405;
		http_add_header(resp, "Allow", "%s", rt->methods);
		return;
	}
	if (id == R_QUERY && strcmp(method, "GET") == 0 && rep_query_get_cached(rep, h, resp))
		return;
	/* A GET only reads: a replica may answer it (core/db_rw.h). */
	db_rw_get(rep->rw, strcmp(method, "GET") != 0, &lease);
	r.db = lease.db;
	run_handler(&r, id, strcmp(method, "GET") == 0);
	db_rw_put(rep->rw, &lease);
}

/* Each cache's bytes, budget and entries, labelled by cache. */
static void cache_metrics(struct rep *rep, struct metrics_out *o)
{
	size_t ab, amax, an, db, dmax, dn;

	rep_cache_stats(rep->cache, &ab, &amax, &an);
	rep_dnszone_cache_stats(rep->zone, &db, &dmax, &dn);
	metrics_put(o,
	            "# HELP anchor_rep_cache_bytes Bytes held by a cache (entries, keys and "
	            "values, as charged).\n"
	            "# TYPE anchor_rep_cache_bytes gauge\n"
	            "anchor_rep_cache_bytes{cache=\"answers\"} %zu\n"
	            "anchor_rep_cache_bytes{cache=\"dns\"} %zu\n"
	            "# HELP anchor_rep_cache_max_bytes The byte budget of a cache "
	            "(answer_cache_bytes, dns_cache_bytes).\n"
	            "# TYPE anchor_rep_cache_max_bytes gauge\n"
	            "anchor_rep_cache_max_bytes{cache=\"answers\"} %zu\n"
	            "anchor_rep_cache_max_bytes{cache=\"dns\"} %zu\n"
	            "# HELP anchor_rep_cache_entries Entries held by a cache.\n"
	            "# TYPE anchor_rep_cache_entries gauge\n"
	            "anchor_rep_cache_entries{cache=\"answers\"} %zu\n"
	            "anchor_rep_cache_entries{cache=\"dns\"} %zu\n"
	            "anchor_rep_cache_entries{cache=\"key_status\"} %zu\n",
	            ab, db, amax, dmax, an, dn, certauth_cache_size(rep->auth));
}

/* For the "database down" alert (docs/monitoring.md): a ping now. */
static int database_up(struct rep *rep)
{
	struct err e = {0};

	return rep_health(rep, &e) == 0;
}

size_t rep_metrics(char *buf, size_t len, void *app)
{
	struct rep *rep = app;
	struct metrics_out o;

	metrics_out_init(&o, buf, len);
	metrics_put(&o,
	            "# HELP anchor_rep_reports_total Reports received, by outcome.\n"
	            "# TYPE anchor_rep_reports_total counter\n"
	            "anchor_rep_reports_total{outcome=\"accepted\"} %llu\n"
	            "anchor_rep_reports_total{outcome=\"duplicate\"} %llu\n"
	            "anchor_rep_reports_total{outcome=\"refused\"} %llu\n"
	            "# HELP anchor_rep_reports_burst_total Accepted reports about a subject "
	            "that a burst of new reporters converged on (held back from its verdict).\n"
	            "# TYPE anchor_rep_reports_burst_total counter\n"
	            "anchor_rep_reports_burst_total %llu\n"
	            "# HELP anchor_rep_queries_total Reputation queries answered.\n"
	            "# TYPE anchor_rep_queries_total counter\n"
	            "anchor_rep_queries_total %llu\n"
	            "# HELP anchor_database_up Whether the database answered a ping just "
	            "now.\n"
	            "# TYPE anchor_database_up gauge\n"
	            "anchor_database_up %d\n"
	            "# HELP anchor_db_replica_fallbacks_total Reads the replica had not "
	            "caught up for in db_read_wait_ms (or could not serve), answered by "
	            "the primary.\n"
	            "# TYPE anchor_db_replica_fallbacks_total counter\n"
	            "anchor_db_replica_fallbacks_total %llu\n",
	            (unsigned long long)atomic_load(&rep->reports_accepted),
	            (unsigned long long)atomic_load(&rep->reports_duplicate),
	            (unsigned long long)atomic_load(&rep->reports_refused),
	            (unsigned long long)atomic_load(&rep->reports_burst),
	            (unsigned long long)atomic_load(&rep->queries), database_up(rep),
	            db_rw_fallbacks(rep->rw));
	cache_metrics(rep, &o);
	return o.off;
}

int rep_health(void *app, struct err *e)
{
	struct rep *rep = app;
	struct db *db = db_pool_get(rep->pool);
	int rc = db_ping(db, e);

	db_pool_put(rep->pool, db);
	return rc;
}
