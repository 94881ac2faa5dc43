/*
 * store_seal.c - the signer's own rows: the seal (an HMAC under a key only
 * the signer holds, keyserver/seal.c) on each domain and token row, and
 * signer_state, which records that the rows of a database older than the
 * seals were sealed once.  Only the signer process calls these.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int ks_store_domain_set_seal(struct db *db, const char *domain, const char *seal, struct err *e)
{
	const char *params[2] = {domain, seal};

	return db_run(db, "UPDATE domains SET signer_seal = $2 WHERE name = $1", 2, params, e);
}

/* An unrevoked admin token by hash: 1 with its domain and seal (t->sealed 0 for none),
 * 0 when there is none. */
int ks_store_admin_token_get(struct db *db, const char *token_hash, struct ks_admin_token *t,
                             struct err *e)
{
	const char *params[1] = {token_hash};
	PGresult *res;
	int found;

	memset(t, 0, sizeof(*t));
	res =
	    db_exec(db,
	            "SELECT d.name, t.seal FROM admin_tokens t JOIN domains d ON d.id = t.domain_id"
	            " WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
	            1, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) > 0;
	if (found) {
		snprintf(t->domain, sizeof(t->domain), "%s", PQgetvalue(res, 0, 0));
		t->sealed = !PQgetisnull(res, 0, 1);
		snprintf(t->seal, sizeof(t->seal), "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return found;
}

/* Call fn for each token row of the domain without a seal (admin tokens, then unused
 * enrollment tokens); stops at fn's first failure. */
int ks_store_unsealed_tokens(struct db *db, long long domain_id, ks_store_token_fn fn, void *ctx,
                             struct err *e)
{
	char idbuf[24];
	const char *params[1] = {idbuf};
	PGresult *res;
	int rc = 0;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res =
	    db_exec(db,
	            "SELECT id, token_hash, NULL, NULL, 'admin' FROM admin_tokens"
	            " WHERE domain_id = $1 AND seal IS NULL UNION ALL"
	            " SELECT id, token_hash, address,"
	            " floor(extract(epoch FROM expires_at))::bigint::text, 'enroll'"
	            " FROM enroll_tokens WHERE domain_id = $1 AND seal IS NULL AND used_at IS NULL",
	            1, params, e);
	if (res == NULL)
		return -1;
	for (int i = 0; rc == 0 && i < PQntuples(res); i++)
		rc = fn(ctx, strcmp(PQgetvalue(res, i, 4), "admin") == 0, PQgetvalue(res, i, 0),
		        PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), e);
	PQclear(res);
	return rc;
}

int ks_store_token_set_seal(struct db *db, int admin, const char *id, const char *seal,
                            struct err *e)
{
	const char *params[2] = {id, seal};

	return db_run(db,
	              admin ? "UPDATE admin_tokens SET seal = $2 WHERE id = $1"
	                    : "UPDATE enroll_tokens SET seal = $2 WHERE id = $1",
	              2, params, e);
}

/* Lock signer_state for the transaction (one signer seals old rows, the others wait and
 * then see the mark): 1 when the rows were sealed already, 0 when not. */
int ks_store_legacy_lock(struct db *db, struct err *e)
{
	PGresult *res;
	int n;

	if (db_run(db, "LOCK TABLE signer_state IN EXCLUSIVE MODE", 0, NULL, e) < 0)
		return -1;
	res =
	    db_exec(db, "SELECT 1 FROM signer_state WHERE name = 'legacy_rows_sealed'", 0, NULL, e);
	n = res == NULL ? -1 : PQntuples(res) > 0;
	PQclear(res);
	return n;
}

/* Call fn with the name of each domain without a seal, oldest first; returns how many. */
int ks_store_unsealed_domains(struct db *db, int (*fn)(void *ctx, const char *name, struct err *e),
                              void *ctx, struct err *e)
{
	PGresult *res;
	int n, rc = 0;

	if ((res = db_exec(db, "SELECT name FROM domains WHERE signer_seal IS NULL ORDER BY id", 0,
	                   NULL, e)) == NULL)
		return -1;
	n = PQntuples(res);
	for (int i = 0; rc == 0 && i < n; i++)
		rc = fn(ctx, PQgetvalue(res, i, 0), e);
	PQclear(res);
	return rc < 0 ? -1 : n;
}

int ks_store_legacy_mark(struct db *db, struct err *e)
{
	return db_run(db,
	              "INSERT INTO signer_state (name, value) VALUES ('legacy_rows_sealed', 'yes')",
	              0, NULL, e);
}
