/*
 * db.h - PostgreSQL access over libpq.
 *
 * Only parameterised statements: every value travels as a separate text
 * parameter, never inside the SQL string.  A connection that breaks (server
 * restart, network blip) is re-established on the next call; a statement that
 * fails because the connection broke outside a transaction is retried once
 * on the fresh connection.  A pool hands one connection to each worker thread
 * at a time.
 */
#ifndef ANCHOR_DB_H
#define ANCHOR_DB_H

#include <stdint.h>

#include <libpq-fe.h>

#include "core/err.h"

struct db;
struct db_pool;

struct db *db_connect(const char *conninfo, struct err *e);
void db_close(struct db *db); /* accepts NULL */

/*
 * Run a statement.  On success returns the result (PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK), which the caller frees with PQclear().  On failure returns
 * NULL: ERR_TEMP when the server is unreachable, ERR_CONFLICT for a
 * unique-constraint violation (code "conflict"), ERR_INTERNAL otherwise.
 */
PGresult *db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
                  struct err *e);
/* Like db_exec for statements whose result the caller does not need. */
int db_run(struct db *db, const char *sql, int nparams, const char *const *params, struct err *e);

int db_begin(struct db *db, struct err *e);
int db_commit(struct db *db, struct err *e);
void db_rollback(struct db *db);
/* Savepoints inside a transaction; name is a constant identifier of the caller's, never
 * data.  Rolling back to one undoes what followed it and keeps the transaction open. */
int db_savepoint(struct db *db, const char *name, struct err *e);
int db_savepoint_rollback(struct db *db, const char *name, struct err *e);

/* The migrations in sql_dir (>= 1), or -1: ERR_INPUT bad_config naming sql_dir when the
 * directory cannot be read or holds none. */
int db_migrations_count(const char *sql_dir, struct err *e);
/* Apply sql/NNN_*.sql files in order, each once, each in a transaction, recorded in
 * schema_migrations; safe to run concurrently from several processes. */
int db_migrate(struct db *db, const char *sql_dir, struct err *e);

/* Cheap liveness check for /healthz. */
int db_ping(struct db *db, struct err *e);

/*
 * WAL positions, for reading from streaming replicas (core/db_rw.h).  An LSN is the
 * 64-bit number PostgreSQL prints as "hi/lo" in hexadecimal; 0 is never a real one.
 */
uint64_t db_lsn_parse(const char *s); /* 0 when s is not an LSN */
/* The server's current WAL write position (pg_current_wal_lsn(); a primary only). */
int db_wal_lsn(struct db *db, uint64_t *lsn, struct err *e);
/* The same on a bare libpq connection (the key server's change listener); -1 on error. */
int db_pgconn_wal_lsn(PGconn *conn, uint64_t *lsn);
/* 1 when this connection sees every change committed up to lsn (its server is a primary,
 * or a replica that has replayed that far), 0 when not yet, -1 on error. */
int db_caught_up(struct db *db, uint64_t lsn, struct err *e);

struct db_pool *db_pool_new(const char *conninfo, int size, struct err *e);
struct db *db_pool_get(struct db_pool *pool); /* blocks until one is free */
void db_pool_put(struct db_pool *pool, struct db *db);
void db_pool_free(struct db_pool *pool); /* accepts NULL */

#endif
