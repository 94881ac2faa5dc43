/*
 * store_token.c - the admin_tokens and enroll_tokens tables, as the HTTPS
 * process reads them.  Tokens are stored only as their SHA-256; the caller
 * hashes (crypto_token_hash) before it asks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* The domain an unrevoked admin token belongs to, into domain (cap bytes); ERR_AUTH
 * "unauthorized" when no such token exists. */
int ks_store_admin_token_domain(struct db *db, const char *token_hash, char *domain, size_t cap,
                                struct err *e)
{
	const char *params[1] = {token_hash};
	PGresult *res;

	res = db_exec(db,
	              "SELECT d.name FROM admin_tokens t JOIN domains d ON d.id = t.domain_id"
	              " WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
	              1, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return err_set(e, ERR_AUTH, "unauthorized", "the admin token is not valid");
	}
	snprintf(domain, cap, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/* The enrollment token of the domain with token_hash, locked until the caller's
 * transaction ends: 1 (filled into t), 0 when there is none. */
int ks_store_enroll_token_lock(struct db *db, long long domain_id, const char *token_hash,
                               struct ks_enroll_token *t, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {token_hash, idbuf};
	PGresult *res;
	int found;

	memset(t, 0, sizeof(*t));
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "SELECT id, address, used_at IS NOT NULL, expires_at <= now(),"
	              " floor(extract(epoch FROM expires_at))::bigint::text, seal"
	              " FROM enroll_tokens WHERE token_hash = $1 AND domain_id = $2 FOR UPDATE",
	              2, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found) {
		snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(res, 0, 0));
		snprintf(t->address, sizeof(t->address), "%s", PQgetvalue(res, 0, 1));
		t->used = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
		t->expired = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
		snprintf(t->expires, sizeof(t->expires), "%s", PQgetvalue(res, 0, 4));
		t->sealed = !PQgetisnull(res, 0, 5);
		snprintf(t->seal, sizeof(t->seal), "%s", PQgetvalue(res, 0, 5));
	}
	PQclear(res);
	return found;
}

int ks_store_enroll_token_use(struct db *db, const char *id, struct err *e)
{
	const char *params[1] = {id};

	return db_run(db, "UPDATE enroll_tokens SET used_at = now() WHERE id = $1", 1, params, e);
}

/* A new enrollment token for address, valid until expires (unix seconds), with the seal
 * the signer gave it. */
int ks_store_enroll_token_add(struct db *db, long long domain_id, const char *token_hash,
                              const char *address, const char *expires, const char *seal,
                              struct err *e)
{
	char idbuf[24];
	const char *params[5] = {idbuf, token_hash, address, expires, seal};

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	return db_run(db,
	              "INSERT INTO enroll_tokens (domain_id, token_hash, address, expires_at, seal)"
	              " VALUES ($1, $2, $3, to_timestamp($4::bigint), $5)",
	              5, params, e);
}

int ks_store_admin_token_add(struct db *db, long long domain_id, const char *token_hash,
                             const char *seal, struct err *e)
{
	char idbuf[24];
	const char *params[3] = {idbuf, token_hash, seal};

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	return db_run(db,
	              "INSERT INTO admin_tokens (domain_id, token_hash, seal) VALUES ($1, $2, $3)",
	              3, params, e);
}
