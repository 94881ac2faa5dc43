/*
 * store_address.c - what the key server keeps under one address, across
 * tables, for its erasure (PROTOCOL.md §10.1): log entries lose salt and
 * name (their hashes stay, so the log still verifies), certificates lose
 * name, PEM and revocation secret, and routes, group memberships and
 * enrollment tokens go.
 */
#include <stdio.h>
#include <stdlib.h>

#include "store.h"

static long long affected(PGresult *res)
{
	long long n = strtoll(PQcmdTuples(res), NULL, 10);

	PQclear(res);
	return n;
}

/* Inside the caller's transaction; fills out's entries and certificates counts. */
int ks_store_address_erase(struct db *db, long long domain_id, const char *addr,
                           struct ks_erasure *out, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, addr};
	PGresult *res;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "UPDATE log_entries SET salt = NULL, name = NULL"
	              " WHERE domain_id = $1 AND name = $2",
	              2, params, e);
	if (res == NULL)
		return -1;
	out->entries = affected(res);
	res = db_exec(db,
	              "UPDATE certificates SET name = NULL, pem = NULL,"
	              " revocation_secret_hash = NULL, erased_at = now()"
	              " WHERE domain_id = $1 AND name = $2",
	              2, params, e);
	if (res == NULL)
		return -1;
	out->certificates = affected(res);
	if (db_run(db, "DELETE FROM routes WHERE domain_id = $1 AND name = $2", 2, params, e) < 0 ||
	    db_run(db,
	           "DELETE FROM group_members WHERE domain_id = $1 AND (member = $2"
	           " OR group_address = $2)",
	           2, params, e) < 0 ||
	    db_run(db, "DELETE FROM enc_challenges WHERE domain_id = $1 AND address = $2", 2,
	           params, e) < 0 ||
	    /* the group keys wrapped to it, and an erased group's own (sql/012) */
	    db_run(db,
	           "DELETE FROM group_key_wraps w USING group_keys k WHERE w.group_key_id = k.id"
	           " AND k.domain_id = $1 AND w.member = $2",
	           2, params, e) < 0 ||
	    db_run(db, "DELETE FROM group_keys WHERE domain_id = $1 AND group_address = $2", 2,
	           params, e) < 0)
		return -1;
	/* Used tokens too: a used token need only stay refused, and an unknown one is. */
	return db_run(db, "DELETE FROM enroll_tokens WHERE domain_id = $1 AND address = $2", 2,
	              params, e);
}
