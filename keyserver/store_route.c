/*
 * store_route.c - the routes table: the route set for an address or for a
 * whole domain (its default).  Rows come back as struct ks_route.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static int route_row(PGresult *res, int row, struct ks_route *rt)
{
	memset(rt, 0, sizeof(*rt));
	rt->ttl = (int)strtol(PQgetvalue(res, row, 2), NULL, 10);
	snprintf(rt->scope_name, sizeof(rt->scope_name), "%s", PQgetvalue(res, row, 3));
	snprintf(rt->updated, sizeof(rt->updated), "%s", PQgetvalue(res, row, 4));
	rt->log_seq = PQgetisnull(res, row, 5) ? -1 : strtoll(PQgetvalue(res, row, 5), NULL, 10);
	if (strcmp(PQgetvalue(res, row, 0), "servers") == 0)
		rt->servers = json_loads(PQgetvalue(res, row, 1), 0, NULL);
	else
		rt->alias = strdup(PQgetvalue(res, row, 1));
	return rt->servers != NULL || rt->alias != NULL ? 0 : -1;
}

/* The route in force for name: its own, else (for an address) the domain's default. */
int ks_store_route_effective(struct db *db, const struct ks_domain *d, const char *name,
                             struct ks_route *rt, struct err *e)
{
	char idbuf[24];
	const char *params[3] = {idbuf, name, d->name};
	PGresult *res;
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", d->id);
	res = db_exec(db,
	              "SELECT kind, COALESCE(servers::text, alias), ttl, name,"
	              " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	              " log_seq FROM routes WHERE domain_id = $1 AND name IN ($2, $3)"
	              " ORDER BY name = $3 LIMIT 1",
	              3, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return err_set(e, ERR_NOTFOUND, "no_route", "no route is set for %s", name);
	}
	rc = route_row(res, 0, rt);
	PQclear(res);
	return rc < 0 ? err_set(e, ERR_INTERNAL, "internal", "a stored route is unreadable") : 0;
}

/* Store the route of name with the log entry that records it (appended first, in the
 * same transaction): one statement, which also gives back the row's update time (rt's
 * updated, with its scope and entry: the route as an answer signs it). */
int ks_store_route_put(struct db *db, const char *name, struct ks_route *rt, const char *set_by,
                       const struct ks_log_append_row *entry, struct err *e)
{
	char ttlbuf[16];
	char *servers = rt->servers ? json_dumps(rt->servers, JSON_COMPACT) : NULL;
	const char *params[KS_LOG_PARAMS + 6];
	char *arrays[3];
	PGresult *res;

	if (rt->servers != NULL && servers == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ks_store_log_params(entry, params, arrays, e) < 0) {
		free(servers);
		return -1;
	}
	snprintf(ttlbuf, sizeof(ttlbuf), "%d", rt->ttl);
	params[KS_LOG_PARAMS] = name;
	params[KS_LOG_PARAMS + 1] = rt->servers ? "servers" : "alias";
	params[KS_LOG_PARAMS + 2] = servers;
	params[KS_LOG_PARAMS + 3] = rt->alias;
	params[KS_LOG_PARAMS + 4] = ttlbuf;
	params[KS_LOG_PARAMS + 5] = set_by;
	res = db_exec(
	    db,
	    "INSERT INTO routes (domain_id, name, kind, servers, alias, ttl, set_by, log_seq)"
	    " SELECT $1, $12, $13, $14::jsonb, $15, $16, $17, l.seq"
	    " FROM " KS_SQL_LOG_APPEND " AS l (seq)"
	    " ON CONFLICT (domain_id, name) DO UPDATE SET kind = EXCLUDED.kind,"
	    " servers = EXCLUDED.servers, alias = EXCLUDED.alias, ttl = EXCLUDED.ttl,"
	    " set_by = EXCLUDED.set_by, log_seq = EXCLUDED.log_seq, updated_at = now()"
	    " RETURNING to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	    " log_seq",
	    KS_LOG_PARAMS + 6, params, e);
	ks_store_log_params_free(arrays);
	free(servers);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		snprintf(rt->updated, sizeof(rt->updated), "%s", PQgetvalue(res, 0, 0));
		snprintf(rt->scope_name, sizeof(rt->scope_name), "%s", name);
		rt->log_seq = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	}
	PQclear(res);
	return 0;
}

/* Delete the route of name: 1 when there was one, 0 when not, -1 on error. */
int ks_store_route_delete(struct db *db, long long domain_id, const char *name, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, name};
	PGresult *res;
	int gone;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db, "DELETE FROM routes WHERE domain_id = $1 AND name = $2", 2, params, e);
	if (res == NULL)
		return -1;
	gone = strtol(PQcmdTuples(res), NULL, 10) > 0;
	PQclear(res);
	return gone;
}
