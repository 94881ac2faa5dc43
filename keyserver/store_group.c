/*
 * store_group.c - the group_members table: under the "groups" policy, mail
 * for a member is encrypted to its group's key.  An address belongs to at most
 * one group (a unique constraint, which reports the conflict).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* The group addr belongs to (malloc'd into *group), or *group = NULL for none. */
int ks_store_group_of(struct db *db, long long domain_id, const char *addr, char **group,
                      struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, addr};
	PGresult *res;

	*group = NULL;
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(
	    db, "SELECT group_address FROM group_members WHERE domain_id = $1 AND member = $2", 2,
	    params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1 && (*group = strdup(PQgetvalue(res, 0, 0))) == NULL) {
		PQclear(res);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	PQclear(res);
	return 0;
}

/* Replace the members of group by members (an array of address strings, stored
 * lowercased), inside the caller's transaction. */
int ks_store_group_replace(struct db *db, long long domain_id, const char *group, json_t *members,
                           struct err *e)
{
	char idbuf[24];
	const char *del[2] = {idbuf, group};
	size_t i;
	json_t *m;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	if (db_run(db, "DELETE FROM group_members WHERE domain_id = $1 AND group_address = $2", 2,
	           del, e) < 0)
		return -1;
	json_array_foreach(members, i, m)
	{
		char *member = ks_lower_dup(json_string_value(m));
		const char *ins[3] = {idbuf, group, member};
		int rc = member == NULL
		             ? err_set(e, ERR_INTERNAL, "internal", "out of memory")
		             : db_run(db,
		                      "INSERT INTO group_members (domain_id, group_address,"
		                      " member) VALUES ($1, $2, $3)",
		                      3, ins, e);
		if (rc < 0 && e->kind == ERR_CONFLICT)
			err_set(e, ERR_CONFLICT, "conflict",
			        "%s is listed twice or already belongs to another group", member);
		free(member);
		if (rc < 0)
			return -1;
	}
	return 0;
}
