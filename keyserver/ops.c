/* ops.c - what operators watch: /healthz and the key server's own /metrics lines. */
#include <stdio.h>

#include "ks.h"

int ks_health(void *app, struct err *e)
{
	struct ks *ks = app;
	struct db *db = db_pool_get(ks->pool);
	int rc = db_ping(db, e);

	db_pool_put(ks->pool, db);
	return rc;
}

size_t ks_metrics(char *buf, size_t len, void *app)
{
	struct ks *ks = app;
	int n = snprintf(
	    buf, len,
	    "# HELP anchor_keyserver_enrollments_total Certificates issued by enrollment.\n"
	    "# TYPE anchor_keyserver_enrollments_total counter\n"
	    "anchor_keyserver_enrollments_total %llu\n"
	    "# HELP anchor_keyserver_cache_hits_total Lookups answered from memory.\n"
	    "# TYPE anchor_keyserver_cache_hits_total counter\n"
	    "anchor_keyserver_cache_hits_total %llu\n"
	    "# HELP anchor_keyserver_cache_misses_total Lookups that read the database.\n"
	    "# TYPE anchor_keyserver_cache_misses_total counter\n"
	    "anchor_keyserver_cache_misses_total %llu\n",
	    (unsigned long long)atomic_load(&ks->enrollments),
	    (unsigned long long)atomic_load(&ks->cache_hits),
	    (unsigned long long)atomic_load(&ks->cache_misses));

	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len;
}
