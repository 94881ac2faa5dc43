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

/* Insert or replace the route of name. */
/* Store the route of name with the log entry that records it (appended first, in the
 * same transaction): one statement. */
int ks_store_route_put(struct db *db, long long domain_id, const char *name,
                       const struct ks_route *rt, const char *set_by, long long log_seq,
                       struct err *e)
{
	char idbuf[24], ttlbuf[16], seqbuf[24];
	char *servers = rt->servers ? json_dumps(rt->servers, JSON_COMPACT) : NULL;
	const char *params[8] = {idbuf,   name,      rt->servers ? "servers" : "alias",
	                         servers, rt->alias, ttlbuf,
	                         set_by,  seqbuf};
	int rc;

	if (rt->servers != NULL && servers == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	snprintf(ttlbuf, sizeof(ttlbuf), "%d", rt->ttl);
	snprintf(seqbuf, sizeof(seqbuf), "%lld", log_seq);
	rc = db_run(
	    db,
	    "INSERT INTO routes (domain_id, name, kind, servers, alias, ttl, set_by, log_seq)"
	    " VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8)"
	    " ON CONFLICT (domain_id, name) DO UPDATE SET kind = EXCLUDED.kind,"
	    " servers = EXCLUDED.servers, alias = EXCLUDED.alias, ttl = EXCLUDED.ttl,"
	    " set_by = EXCLUDED.set_by, log_seq = EXCLUDED.log_seq, updated_at = now()",
	    8, params, e);
	free(servers);
	return rc;
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
