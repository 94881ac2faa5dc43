/* db.c - PostgreSQL access: parameterised statements, reconnects, migrations, a pool. */
#include "core/db.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Statements prepared on this connection (db_exec_once), by text. */
#define DB_STMT_MAX 256

struct db_stmt {
	uint64_t hash; /* FNV-1a of sql */
	char *sql;
};

struct db {
	PGconn *conn;
	char *conninfo;
	int in_tx; /* inside BEGIN: a broken connection must not be silently retried */
	/* What db_caught_up last learnt of this connection's server (reset on reconnect). */
	int primary;       /* not in recovery: sees every committed change */
	uint64_t replayed; /* a replica's pg_last_wal_replay_lsn() */
	int nstmt;
	struct db_stmt stmt[DB_STMT_MAX];
};

struct db_pool {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	struct db **conns;
	int size;
	int nfree;
};

/* An arbitrary constant that names "schema migration" for pg_advisory_xact_lock. */
#define DB_MIGRATE_LOCK_KEY "7251844213"

/* Server notices ("relation already exists") are chatter, not errors: debug level. */
static void db_notice(void *arg, const char *message)
{
	(void)arg;
	log_debug(NULL, "postgres: %.*s", (int)strcspn(message, "\n"), message);
}

/* A new connection has none of the old one's prepared statements. */
static void db_stmts_forget(struct db *db)
{
	for (int i = 0; i < db->nstmt; i++)
		free(db->stmt[i].sql);
	db->nstmt = 0;
}

static int db_ensure_connected(struct db *db, struct err *e)
{
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		return 0;
	db_stmts_forget(db);
	db->primary = 0;
	db->replayed = 0;
	if (db->conn != NULL)
		PQfinish(db->conn);
	db->conn = PQconnectdb(db->conninfo);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		err_set(e, ERR_TEMP, "unavailable", "cannot connect to the database: %s",
		        PQerrorMessage(db->conn));
		/* libpq messages end in a newline; keep the sentence on one line. */
		e->msg[strcspn(e->msg, "\n")] = '\0';
		PQfinish(db->conn);
		db->conn = NULL;
		return -1;
	}
	PQsetNoticeProcessor(db->conn, db_notice, NULL);
	return 0;
}

struct db *db_connect(const char *conninfo, struct err *e)
{
	struct db *db = calloc(1, sizeof(*db));

	if (db == NULL || (db->conninfo = strdup(conninfo)) == NULL) {
		free(db);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	if (db_ensure_connected(db, e) < 0) {
		db_close(db);
		return NULL;
	}
	return db;
}

void db_close(struct db *db)
{
	if (db == NULL)
		return;
	if (db->conn != NULL)
		PQfinish(db->conn);
	db_stmts_forget(db);
	free(db->conninfo);
	free(db);
}

static void db_error_from_result(PGresult *res, PGconn *conn, struct err *e)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);

	if (state != NULL && strcmp(state, "23505") == 0)
		err_set(e, ERR_CONFLICT, "conflict", "the object already exists");
	else if (state != NULL && strncmp(state, "08", 2) == 0)
		err_set(e, ERR_TEMP, "unavailable", "database connection lost");
	else if (state != NULL && (strcmp(state, "57P01") == 0 || strcmp(state, "57P03") == 0))
		err_set(e, ERR_TEMP, "unavailable", "database is shutting down or starting");
	else if (state != NULL && strncmp(state, "53", 2) == 0)
		/* Insufficient resources (53100 disk full, 53200 out of memory, 53300 too many
		 * connections): the request was sound and may succeed later, like an outage. */
		err_set(e, ERR_TEMP, "unavailable", "the database is out of resources: %s",
		        msg ? msg : "?");
	else
		err_set(e, ERR_INTERNAL, "internal", "database error: %s", msg ? msg : "?");
	e->msg[strcspn(e->msg, "\n")] = '\0';
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/*
 * A parameterised statement is prepared on its connection the first time it runs
 * there and executed by name afterwards: PostgreSQL then parses and plans it once per
 * connection, not on every call (most of the server's CPU for the key server's small
 * indexed statements).  Prepared statements outlive a rolled-back transaction and die
 * with the connection (db_stmts_forget).  Statements without parameters (BEGIN,
 * COMMIT, migrations of several statements) run as before, and so does everything
 * once DB_STMT_MAX texts are prepared.  A failed PREPARE is returned as the
 * statement's own error.
 */
static PGresult *db_exec_once(struct db *db, const char *sql, int nparams,
                              const char *const *params)
{
	uint64_t h;
	char name[16];
	int i;

	if (nparams == 0)
		return PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	h = fnv1a(sql);
	for (i = 0; i < db->nstmt; i++)
		if (db->stmt[i].hash == h && strcmp(db->stmt[i].sql, sql) == 0)
			break;
	if (i == db->nstmt) {
		PGresult *res;
		char *copy;

		if (i == DB_STMT_MAX || (copy = strdup(sql)) == NULL)
			return PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
		snprintf(name, sizeof(name), "anchor_%d", i);
		res = PQprepare(db->conn, name, sql, nparams, NULL);
		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
			free(copy);
			return res;
		}
		PQclear(res);
		db->stmt[db->nstmt++] = (struct db_stmt){.hash = h, .sql = copy};
	}
	snprintf(name, sizeof(name), "anchor_%d", i);
	return PQexecPrepared(db->conn, name, nparams, params, NULL, NULL, 0);
}

static int result_ok(PGresult *res)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

PGresult *db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
                  struct err *e)
{
	PGresult *res;

	if (db_ensure_connected(db, e) < 0)
		return NULL;
	res = db_exec_once(db, sql, nparams, params);
	if (result_ok(res))
		return res;
	/* A server restart breaks the connection under us: reconnect and retry once, but
	 * only outside a transaction, where the statement cannot have half-happened. */
	if (PQstatus(db->conn) == CONNECTION_BAD && !db->in_tx) {
		PQclear(res);
		log_warn(NULL, "database connection lost; reconnecting");
		if (db_ensure_connected(db, e) < 0)
			return NULL;
		res = db_exec_once(db, sql, nparams, params);
		if (result_ok(res))
			return res;
	}
	if (PQstatus(db->conn) == CONNECTION_BAD)
		err_set(e, ERR_TEMP, "unavailable", "database connection lost");
	else
		db_error_from_result(res, db->conn, e);
	PQclear(res);
	return NULL;
}

int db_run(struct db *db, const char *sql, int nparams, const char *const *params, struct err *e)
{
	PGresult *res = db_exec(db, sql, nparams, params, e);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int db_begin(struct db *db, struct err *e)
{
	if (db_run(db, "BEGIN", 0, NULL, e) < 0)
		return -1;
	db->in_tx = 1;
	return 0;
}

int db_commit(struct db *db, struct err *e)
{
	int rc = db_run(db, "COMMIT", 0, NULL, e);

	db->in_tx = 0;
	return rc;
}

/* Inside a transaction: a point to come back to when one part of it fails, without
 * losing the rest.  A later savepoint of the same name hides this one until released. */
int db_savepoint(struct db *db, const char *name, struct err *e)
{
	char sql[80];

	snprintf(sql, sizeof(sql), "SAVEPOINT %s", name);
	return db_run(db, sql, 0, NULL, e);
}

/* Undo everything since the newest savepoint of that name (which stays). */
int db_savepoint_rollback(struct db *db, const char *name, struct err *e)
{
	char sql[96];

	snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT %s", name);
	return db_run(db, sql, 0, NULL, e);
}

void db_rollback(struct db *db)
{
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		PQclear(PQexec(db->conn, "ROLLBACK"));
	db->in_tx = 0;
}

int db_ping(struct db *db, struct err *e)
{
	return db_run(db, "SELECT 1", 0, NULL, e);
}

/* ---- WAL positions (replicas: db_rw.c) ---- */

/* One half of an LSN: 1 to 8 hex digits, ending at stop. */
static int lsn_half(const char *s, char stop, uint64_t *out, const char **end)
{
	char *e;
	size_t n = strspn(s, "0123456789abcdefABCDEF");

	if (n == 0 || n > 8 || s[n] != stop)
		return -1;
	*out = strtoull(s, &e, 16);
	*end = e;
	return e == s + n ? 0 : -1;
}

uint64_t db_lsn_parse(const char *s)
{
	uint64_t hi, lo;
	const char *p;

	if (s == NULL || lsn_half(s, '/', &hi, &p) < 0 || lsn_half(p + 1, '\0', &lo, &p) < 0)
		return 0;
	return (hi << 32) | lo;
}

int db_pgconn_wal_lsn(PGconn *conn, uint64_t *lsn)
{
	PGresult *res = PQexec(conn, "SELECT pg_current_wal_lsn()");
	int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	         (*lsn = db_lsn_parse(PQgetvalue(res, 0, 0))) != 0;

	PQclear(res);
	return ok ? 0 : -1;
}

int db_wal_lsn(struct db *db, uint64_t *lsn, struct err *e)
{
	PGresult *res = db_exec(db, "SELECT pg_current_wal_lsn()", 0, NULL, e);
	int ok;

	if (res == NULL)
		return -1;
	ok = PQntuples(res) == 1 && (*lsn = db_lsn_parse(PQgetvalue(res, 0, 0))) != 0;
	PQclear(res);
	return ok ? 0 : err_set(e, ERR_INTERNAL, "internal", "pg_current_wal_lsn: no position");
}

int db_caught_up(struct db *db, uint64_t lsn, struct err *e)
{
	PGresult *res;

	/* A primary stays one for the life of the connection (demotion needs a restart, which
	 * breaks it), and a replica's replay only moves forward: the last answer is enough
	 * while it already says yes. */
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK &&
	    (db->primary || (db->replayed != 0 && db->replayed >= lsn)))
		return 1;
	res = db_exec(db, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()", 0, NULL, e);
	if (res == NULL)
		return -1;
	db->primary = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "f") == 0;
	db->replayed = PQntuples(res) == 1 ? db_lsn_parse(PQgetvalue(res, 0, 1)) : 0;
	PQclear(res);
	return db->primary || (db->replayed != 0 && db->replayed >= lsn);
}

/* ---- migrations ---- */

static int migration_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 8 && name[0] >= '0' && name[0] <= '9' && name[1] >= '0' && name[1] <= '9' &&
	       name[2] >= '0' && name[2] <= '9' && name[3] == '_' &&
	       strcmp(name + len - 4, ".sql") == 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path, struct err *e)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long len;

	if (f == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)len + 1)) != NULL) {
		if (fread(buf, 1, (size_t)len, f) == (size_t)len) {
			buf[len] = '\0';
			fclose(f);
			return buf;
		}
	}
	free(buf);
	fclose(f);
	err_set(e, ERR_INTERNAL, "internal", "%s: cannot read", path);
	return NULL;
}

static int list_migrations(const char *dir, char ***names, size_t *count, struct err *e)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	size_t n = 0;

	if (d == NULL)
		return err_set(e, ERR_INPUT, "bad_config",
		               "sql_dir: the migrations directory %s: %s (make install puts it in "
		               "PREFIX/share/anchor/sql)",
		               dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (!migration_name_ok(de->d_name))
			continue;
		char **nv = realloc(v, (n + 1) * sizeof(*v));
		if (nv == NULL)
			break;
		v = nv;
		if ((v[n] = strdup(de->d_name)) == NULL)
			break;
		n++;
	}
	closedir(d);
	if (n == 0) {
		free(v);
		return err_set(e, ERR_INPUT, "bad_config",
		               "sql_dir: %s holds no migrations (NNN_name.sql files)", dir);
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_names);
	*names = v;
	*count = n;
	return 0;
}

/* Apply one migration file in its own transaction unless already recorded. */
static int apply_migration(struct db *db, const char *dir, const char *name, int *applied,
                           struct err *e)
{
	char path[4096];
	const char *params[1] = {name};
	char *sql = NULL;
	PGresult *res;

	if (db_begin(db, e) < 0)
		return -1;
	/* Serialise concurrent migrators (several daemons starting at once). */
	if (db_run(db, "SELECT pg_advisory_xact_lock(" DB_MIGRATE_LOCK_KEY ")", 0, NULL, e) < 0)
		goto fail;
	res = db_exec(db, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, params, e);
	if (res == NULL)
		goto fail;
	int done = PQntuples(res) > 0;
	PQclear(res);
	if (done) {
		db_rollback(db);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((sql = read_file(path, e)) == NULL)
		goto fail;
	/* The file is ours, not user input, and holds several statements: PQexec is the
	 * one libpq call that runs a multi-statement script. */
	res = PQexec(db->conn, sql);
	if (!result_ok(res)) {
		err_set(e, ERR_INTERNAL, "internal", "migration %s failed: %s", name,
		        PQresultErrorMessage(res));
		e->msg[strcspn(e->msg, "\n")] = '\0';
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (db_run(db, "INSERT INTO schema_migrations (version) VALUES ($1)", 1, params, e) < 0)
		goto fail;
	if (db_commit(db, e) < 0)
		goto fail;
	free(sql);
	(*applied)++;
	log_info(NULL, "applied migration %s", name);
	return 0;
fail:
	free(sql);
	db_rollback(db);
	return -1;
}

int db_migrations_count(const char *sql_dir, struct err *e)
{
	char **names = NULL;
	size_t n = 0;

	if (list_migrations(sql_dir, &names, &n, e) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return (int)n;
}

int db_migrate(struct db *db, const char *sql_dir, struct err *e)
{
	char **names = NULL;
	size_t n = 0, i;
	int applied = 0, rc = 0;

	if (db_run(db,
	           "CREATE TABLE IF NOT EXISTS schema_migrations ("
	           " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
	           0, NULL, e) < 0) {
		/* Two processes racing on CREATE TABLE IF NOT EXISTS can collide; the table
		 * then exists, which is all we wanted. */
		if (e->kind != ERR_CONFLICT)
			return -1;
	}
	if (list_migrations(sql_dir, &names, &n, e) < 0)
		return -1;
	for (i = 0; i < n && rc == 0; i++)
		rc = apply_migration(db, sql_dir, names[i], &applied, e);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc < 0 ? -1 : applied;
}

/* ---- pool ---- */

struct db_pool *db_pool_new(const char *conninfo, int size, struct err *e)
{
	struct db_pool *pool = calloc(1, sizeof(*pool));

	if (pool == NULL || (pool->conns = calloc((size_t)size, sizeof(struct db *))) == NULL) {
		free(pool);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->freed, NULL);
	for (int i = 0; i < size; i++) {
		pool->conns[i] = db_connect(conninfo, e);
		if (pool->conns[i] == NULL) {
			pool->size = i;
			pool->nfree = i;
			db_pool_free(pool);
			return NULL;
		}
	}
	pool->size = size;
	pool->nfree = size;
	return pool;
}

struct db *db_pool_get(struct db_pool *pool)
{
	struct db *db;

	pthread_mutex_lock(&pool->lock);
	while (pool->nfree == 0)
		pthread_cond_wait(&pool->freed, &pool->lock);
	db = pool->conns[--pool->nfree];
	pthread_mutex_unlock(&pool->lock);
	return db;
}

void db_pool_put(struct db_pool *pool, struct db *db)
{
	if (db->in_tx)
		db_rollback(db);
	pthread_mutex_lock(&pool->lock);
	pool->conns[pool->nfree++] = db;
	pthread_cond_signal(&pool->freed);
	pthread_mutex_unlock(&pool->lock);
}

void db_pool_free(struct db_pool *pool)
{
	if (pool == NULL)
		return;
	for (int i = 0; i < pool->nfree; i++)
		db_close(pool->conns[i]);
	free(pool->conns);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->freed);
	free(pool);
}
