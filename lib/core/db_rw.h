/*
 * db_rw.h - a node's reads from a streaming replica, its writes to the primary.
 *
 * Which server is which is left to libpq: db_conninfo lists every server with
 * target_session_attrs=read-write, so the write pool (and its reconnects) always land on
 * the current primary, also after a replica has been promoted, without a restart and
 * without failover logic of our own; db_read_conninfo lists them with
 * target_session_attrs=prefer-standby (or names one replica).  libpq already tries the
 * hosts in order, skips the ones that are down or of the wrong kind, and honours
 * connect_timeout; doing the same here would only be a second, less tested copy.
 *
 * What libpq cannot know is how far a replica has got.  A replica replays the primary's
 * WAL a little later, so a read there could miss a change this node has just made (or
 * has just been told about by NOTIFY, which replicas do not carry).  Each node therefore
 * keeps a floor: the highest primary WAL position it must see, raised after each of its
 * write requests (pg_current_wal_lsn() on the write connection, after the commit) and by
 * the key server's change listener for each change notified.  A read on a replica first
 * checks pg_last_wal_replay_lsn() against the floor, waits up to db_read_wait_ms for
 * replay to pass it, and otherwise is served by the primary.  A lookup thus never sees
 * data older than its own node's last write, nor older than a change that retired its
 * cached answers.
 *
 * Without db_read_conninfo every read uses the write pool and nothing is checked.
 */
#ifndef ANCHOR_DB_RW_H
#define ANCHOR_DB_RW_H

#include <stdint.h>

#include "core/db.h"
#include "core/err.h"

struct db_rw;

/* A connection lent for one request, and where it goes back. */
struct db_lease {
	struct db *db;
	struct db_pool *pool;
	int write; /* a write request: raise the floor when it is returned */
};

/* write: the primary's pool (borrowed, outlives rw).  read_conninfo NULL or "": no
 * replica.  wait_ms: how long a read waits for a lagging replica before the primary
 * answers it instead. */
struct db_rw *db_rw_new(struct db_pool *write, const char *read_conninfo, int size,
                        long long wait_ms, struct err *e);
void db_rw_free(struct db_rw *rw); /* accepts NULL; frees the read pool only */

/* Lend a connection: the primary's for a write request; for a read, a replica's that has
 * replayed up to the floor, or else the primary's.  Blocks while a pool is empty. */
void db_rw_get(struct db_rw *rw, int write, struct db_lease *l);
/* Give it back; after a write request first raise the floor to the primary's position. */
void db_rw_put(struct db_rw *rw, struct db_lease *l);

/* Raise the floor to lsn (never lowers it). */
void db_rw_raise(struct db_rw *rw, uint64_t lsn);

/* For /metrics: reads the replica could not serve in time (or at all), served by the
 * primary instead; 0 without a replica. */
unsigned long long db_rw_fallbacks(struct db_rw *rw);
/* Whether reads go to a replica at all. */
int db_rw_has_replica(const struct db_rw *rw);

#endif
