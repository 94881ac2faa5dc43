/* ops.c - what operators watch: /healthz and the key server's own /metrics lines. */
#include <stdio.h>

#include "cache.h"
#include "http/metrics.h"
#include "ks.h"

int ks_health(void *app, struct err *e)
{
	struct ks *ks = app;
	struct db *db = db_pool_get(ks->pool);
	int rc = db_ping(db, e);

	db_pool_put(ks->pool, db);
	return rc;
}

/* The gauges the alerts need (docs/monitoring.md): the database by a ping now, the
 * signer by the outcome of the last call to it. */
static void ks_metrics_health(struct ks *ks, struct metrics_out *o)
{
	struct err e = {0};
	int db_up = ks_health(ks, &e) == 0;

	metrics_put(o,
	            "# HELP anchor_database_up Whether the database answered a ping just now.\n"
	            "# TYPE anchor_database_up gauge\n"
	            "anchor_database_up %d\n"
	            "# HELP anchor_signer_up Whether the last call to the signer reached it.\n"
	            "# TYPE anchor_signer_up gauge\n"
	            "anchor_signer_up %d\n"
	            "# HELP anchor_signer_failures_total Signer calls that found it down.\n"
	            "# TYPE anchor_signer_failures_total counter\n"
	            "anchor_signer_failures_total %llu\n"
	            "# HELP anchor_log_append_failures_total Log appends that failed.\n"
	            "# TYPE anchor_log_append_failures_total counter\n"
	            "anchor_log_append_failures_total %llu\n"
	            "# HELP anchor_db_replica_fallbacks_total Reads the replica had not caught up "
	            "for in db_read_wait_ms (or could not serve), answered by the primary.\n"
	            "# TYPE anchor_db_replica_fallbacks_total counter\n"
	            "anchor_db_replica_fallbacks_total %llu\n",
	            db_up, !atomic_load(&ks->signer_down),
	            (unsigned long long)atomic_load(&ks->signer_failures),
	            (unsigned long long)atomic_load(&ks->log_append_failures),
	            db_rw_fallbacks(ks->rw));
}

size_t ks_metrics(char *buf, size_t len, void *app)
{
	struct ks *ks = app;
	struct ks_cache_stats cs;
	struct metrics_out o;

	metrics_out_init(&o, buf, len);
	ks_cache_stats(ks->cache, &cs);
	metrics_put(
	    &o,
	    "# HELP anchor_keyserver_enrollments_total Certificates issued by enrollment.\n"
	    "# TYPE anchor_keyserver_enrollments_total counter\n"
	    "anchor_keyserver_enrollments_total %llu\n"
	    "# HELP anchor_keyserver_cache_hits_total Lookups answered from memory.\n"
	    "# TYPE anchor_keyserver_cache_hits_total counter\n"
	    "anchor_keyserver_cache_hits_total %llu\n"
	    "# HELP anchor_keyserver_cache_misses_total Lookups that read the database.\n"
	    "# TYPE anchor_keyserver_cache_misses_total counter\n"
	    "anchor_keyserver_cache_misses_total %llu\n"
	    "# HELP anchor_keyserver_cache_stale_total Lookups answered stale while the database "
	    "could not be reached.\n"
	    "# TYPE anchor_keyserver_cache_stale_total counter\n"
	    "anchor_keyserver_cache_stale_total %llu\n"
	    "# HELP anchor_keyserver_cache_bytes Bytes held by a cache (entries, keys and "
	    "values).\n"
	    "# TYPE anchor_keyserver_cache_bytes gauge\n"
	    "anchor_keyserver_cache_bytes{cache=\"answers\"} %zu\n"
	    "# HELP anchor_keyserver_cache_max_bytes The byte budget of a cache "
	    "(answer_cache_bytes).\n"
	    "# TYPE anchor_keyserver_cache_max_bytes gauge\n"
	    "anchor_keyserver_cache_max_bytes{cache=\"answers\"} %zu\n"
	    "# HELP anchor_keyserver_cache_entries Entries held by a cache.\n"
	    "# TYPE anchor_keyserver_cache_entries gauge\n"
	    "anchor_keyserver_cache_entries{cache=\"answers\"} %zu\n",
	    (unsigned long long)atomic_load(&ks->enrollments),
	    (unsigned long long)atomic_load(&ks->cache_hits),
	    (unsigned long long)atomic_load(&ks->cache_misses), cs.stale_served, cs.bytes,
	    cs.max_bytes, cs.entries);
	ks_metrics_health(ks, &o);
	return o.off;
}
