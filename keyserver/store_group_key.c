/*
 * store_group_key.c - the group_keys and group_key_wraps tables (sql/012_group_keys.sql):
 * the generations of a group's (or the corporate address's) encryption key and, for each,
 * the private key wrapped to each member.  The wraps are opaque text here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int ks_store_group_members(struct db *db, long long domain_id, const char *group, json_t **members,
                           struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, group};
	PGresult *res;

	*members = NULL;
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "SELECT member FROM group_members WHERE domain_id = $1 AND group_address = $2"
	              " ORDER BY member",
	              2, params, e);
	if (res == NULL)
		return -1;
	*members = json_array();
	for (int i = 0; *members != NULL && i < PQntuples(res); i++)
		if (json_array_append_new(*members, json_string(PQgetvalue(res, i, 0))) < 0) {
			json_decref(*members);
			*members = NULL;
		}
	PQclear(res);
	return *members ? 0 : err_set(e, ERR_INTERNAL, "internal", "out of memory");
}

int ks_store_group_key_state(struct db *db, long long domain_id, const char *group,
                             struct ks_group_key_state *st, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, group};
	PGresult *res;

	memset(st, 0, sizeof(*st));
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	/* The newest generation needs rotating once a member it was wrapped to is gone. */
	res = db_exec(db,
	              "SELECT k.generation, k.key_id::text, EXISTS (SELECT 1 FROM group_key_wraps w"
	              " WHERE w.group_key_id = k.id AND NOT EXISTS (SELECT 1 FROM group_members m"
	              " WHERE m.domain_id = k.domain_id AND m.group_address = k.group_address"
	              " AND m.member = w.member)) FROM group_keys k"
	              " WHERE k.domain_id = $1 AND k.group_address = $2"
	              " ORDER BY k.generation DESC LIMIT 1",
	              2, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		st->generation = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
		snprintf(st->key_id, sizeof(st->key_id), "%s", PQgetvalue(res, 0, 1));
		st->rotation_needed = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	}
	PQclear(res);
	return 0;
}

int ks_store_group_key_add(struct db *db, long long domain_id, const char *group,
                           const char *key_id, const json_t *wraps, int *generation, struct err *e)
{
	char idbuf[24], gid[24];
	const char *params[3] = {idbuf, group, key_id};
	size_t i;
	json_t *w;
	PGresult *res;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "INSERT INTO group_keys (domain_id, group_address, generation, key_id)"
	              " SELECT $1, $2, COALESCE(MAX(generation), 0) + 1, $3 FROM group_keys"
	              " WHERE domain_id = $1 AND group_address = $2"
	              " RETURNING id, generation",
	              3, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return err_set(e, ERR_INTERNAL, "internal", "no group key row was made");
	}
	snprintf(gid, sizeof(gid), "%s", PQgetvalue(res, 0, 0));
	*generation = (int)strtol(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	json_array_foreach(wraps, i, w)
	{
		const char *ins[3] = {gid, json_string_value(json_object_get(w, "member")),
		                      json_string_value(json_object_get(w, "envelope"))};
		if (db_run(db,
		           "INSERT INTO group_key_wraps (group_key_id, member, envelope)"
		           " VALUES ($1, $2, $3)",
		           3, ins, e) < 0)
			return -1;
	}
	return 0;
}

/* One fetched generation as JSON. */
static json_t *wrap_json(PGresult *res, int i)
{
	return json_pack("{s:i, s:s, s:s, s:s, s:s}", "generation",
	                 (int)strtol(PQgetvalue(res, i, 0), NULL, 10), "key_id",
	                 PQgetvalue(res, i, 1), "status", PQgetvalue(res, i, 2), "certificate",
	                 PQgetvalue(res, i, 3), "envelope", PQgetvalue(res, i, 4));
}

int ks_store_group_key_wraps(struct db *db, long long domain_id, const char *group,
                             const char *member, json_t **keys, struct err *e)
{
	char idbuf[24];
	const char *params[3] = {idbuf, group, member};
	PGresult *res;

	*keys = NULL;
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "SELECT k.generation, k.key_id::text, c.status, COALESCE(c.pem, ''),"
	              " w.envelope FROM group_keys k"
	              " JOIN group_key_wraps w ON w.group_key_id = k.id"
	              " JOIN certificates c ON c.key_id = k.key_id"
	              " WHERE k.domain_id = $1 AND k.group_address = $2 AND w.member = $3"
	              " ORDER BY k.generation",
	              3, params, e);
	if (res == NULL)
		return -1;
	*keys = json_array();
	for (int i = 0; *keys != NULL && i < PQntuples(res); i++)
		if (json_array_append_new(*keys, wrap_json(res, i)) < 0) {
			json_decref(*keys);
			*keys = NULL;
		}
	PQclear(res);
	return *keys ? 0 : err_set(e, ERR_INTERNAL, "internal", "out of memory");
}
