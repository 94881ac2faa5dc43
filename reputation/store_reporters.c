/*
 * store_reporters.c - rep_reporters: every domain that reported, its ARF registration
 * (the hash of its token, never the token) and its standing.  See store.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int rep_store_reporter_seen(struct db *db, const char *domain, struct err *e)
{
	const char *params[1] = {domain};

	return db_run(db,
	              "INSERT INTO rep_reporters (domain) VALUES ($1) "
	              "ON CONFLICT (domain) DO UPDATE SET last_seen = now()",
	              1, params, e);
}

int rep_store_reporter_counted(struct db *db, const char *domain, struct err *e)
{
	const char *params[1] = {domain};

	return db_run(db, "UPDATE rep_reporters SET reports = reports + 1 WHERE domain = $1", 1,
	              params, e);
}

int rep_store_reporter_by_token(struct db *db, const char *hash, char domain[256], struct err *e)
{
	const char *params[1] = {hash};
	PGresult *res;
	int found;

	res =
	    db_exec(db, "SELECT domain FROM rep_reporters WHERE arf_token_hash = $1", 1, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found)
		snprintf(domain, 256, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return found;
}

int rep_store_reporter_register(struct db *db, const char *domain, const char *hash, struct err *e)
{
	const char *params[2] = {domain, hash};

	return db_run(db,
	              "INSERT INTO rep_reporters (domain, arf_token_hash, arf_registered_at) "
	              "VALUES ($1, $2, now()) ON CONFLICT (domain) DO UPDATE SET "
	              "arf_token_hash = EXCLUDED.arf_token_hash, arf_registered_at = now()",
	              2, params, e);
}

int rep_store_reporter_get(struct db *db, const char *domain, double standing_default,
                           struct rep_reporter *out, struct err *e)
{
	char def[32];
	const char *params[2] = {domain, def};
	PGresult *res;
	int found;

	snprintf(def, sizeof(def), "%.17g", standing_default);
	res = db_exec(db,
	              "SELECT domain, coalesce(standing, $2::float8), agreements, disagreements, "
	              "reports, arf_token_hash IS NOT NULL, "
	              "to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	              "to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
	              "FROM rep_reporters WHERE domain = lower($1)",
	              2, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found) {
		snprintf(out->domain, sizeof(out->domain), "%s", PQgetvalue(res, 0, 0));
		out->standing = strtod(PQgetvalue(res, 0, 1), NULL);
		out->agreements = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		out->disagreements = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		out->reports = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
		out->arf = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
		snprintf(out->first_seen, sizeof(out->first_seen), "%s", PQgetvalue(res, 0, 6));
		snprintf(out->last_seen, sizeof(out->last_seen), "%s", PQgetvalue(res, 0, 7));
	}
	PQclear(res);
	return found;
}

int rep_store_standing_reset(struct db *db, struct err *e)
{
	/* Reporters no longer judged on anything go back to neutral counts. */
	return db_run(
	    db,
	    "UPDATE rep_reporters SET agreements = 0, disagreements = 0, standing = NULL, "
	    "standing_updated = now() WHERE agreements <> 0 OR disagreements <> 0",
	    0, NULL, e);
}

int rep_store_standing_set(struct db *db, const char *domain, int agree, int disagree,
                           double standing, struct err *e)
{
	char a[16], d[16], s[32];
	const char *params[4] = {domain, a, d, s};

	snprintf(a, sizeof(a), "%d", agree);
	snprintf(d, sizeof(d), "%d", disagree);
	snprintf(s, sizeof(s), "%.17g", standing);
	return db_run(db,
	              "UPDATE rep_reporters SET agreements = $2::int, disagreements = $3::int, "
	              "standing = $4::float8, standing_updated = now() WHERE domain = $1",
	              4, params, e);
}
