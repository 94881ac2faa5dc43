/* db_rw.c - reads from a replica no older than the node's floor, writes to the primary;
 * see db_rw.h. */
#include "core/db_rw.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/log.h"

struct db_rw {
	struct db_pool *write; /* borrowed */
	struct db_pool *read;  /* owned; NULL: reads use the write pool */
	atomic_ullong floor;   /* the newest primary WAL position reads must see */
	atomic_ullong fallbacks;
	long long wait_ms;
};

struct db_rw *db_rw_new(struct db_pool *write, const char *read_conninfo, int size,
                        long long wait_ms, struct err *e)
{
	struct db_rw *rw = calloc(1, sizeof(*rw));

	if (rw == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	rw->write = write;
	rw->wait_ms = wait_ms > 0 ? wait_ms : 0;
	if (read_conninfo != NULL && read_conninfo[0] != '\0' &&
	    (rw->read = db_pool_new(read_conninfo, size, e)) == NULL) {
		free(rw);
		return NULL;
	}
	return rw;
}

void db_rw_free(struct db_rw *rw)
{
	if (rw == NULL)
		return;
	db_pool_free(rw->read);
	free(rw);
}

void db_rw_raise(struct db_rw *rw, uint64_t lsn)
{
	unsigned long long cur = atomic_load(&rw->floor);

	while (cur < lsn && !atomic_compare_exchange_weak(&rw->floor, &cur, lsn))
		;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether db has replayed up to floor, waiting at most wait_ms (polling from 1 ms,
 * doubling up to 16 ms: replay is usually a few milliseconds behind).  A replica that
 * cannot be asked counts as behind: the primary answers. */
static int replica_ready(struct db_rw *rw, struct db *db, uint64_t floor)
{
	long long deadline = now_ms() + rw->wait_ms;
	long pause_ms = 1;
	struct err e = {0};
	int rc;

	while ((rc = db_caught_up(db, floor, &e)) == 0 && now_ms() < deadline) {
		struct timespec ts = {0, pause_ms * 1000000L};
		nanosleep(&ts, NULL);
		if (pause_ms < 16)
			pause_ms *= 2;
	}
	if (rc < 0)
		log_debug(NULL, "replica: %s", e.msg);
	return rc == 1;
}

void db_rw_get(struct db_rw *rw, int write, struct db_lease *l)
{
	uint64_t floor;

	l->write = write;
	if (!write && rw->read != NULL) {
		l->pool = rw->read;
		l->db = db_pool_get(rw->read);
		floor = atomic_load(&rw->floor);
		if (floor == 0 || replica_ready(rw, l->db, floor))
			return;
		db_pool_put(rw->read, l->db);
		atomic_fetch_add(&rw->fallbacks, 1);
	}
	l->pool = rw->write;
	l->db = db_pool_get(rw->write);
}

void db_rw_put(struct db_rw *rw, struct db_lease *l)
{
	uint64_t lsn;
	struct err e = {0};

	/* After the commit: the position is at or past this request's commit record.  Only
	 * reads from a replica need it. */
	if (l->write && rw->read != NULL) {
		if (db_wal_lsn(l->db, &lsn, &e) == 0)
			db_rw_raise(rw, lsn);
		else
			log_debug(NULL, "replica: the floor after a write: %s", e.msg);
	}
	db_pool_put(l->pool, l->db);
	l->db = NULL;
}

unsigned long long db_rw_fallbacks(struct db_rw *rw)
{
	return atomic_load(&rw->fallbacks);
}

int db_rw_has_replica(const struct db_rw *rw)
{
	return rw->read != NULL;
}
