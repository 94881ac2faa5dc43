/*
 * store_acme.c - the ACME tables (sql/009_acme.sql): nonces, accounts, orders with their
 * one authorisation.  Timestamps are compared by the database (now()), so every node
 * agrees on what has expired.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define ORDER_COLUMNS                                                                              \
	"id::text, account_id::text, name, purpose, status, authz_status, " KS_SQL_TS(             \
	    "expires_at") ", expires_at <= now(), token, coalesce(chall_type, ''), "               \
	                  "coalesce(" KS_SQL_TS("validated_at") ", ''), coalesce(error, ''), "     \
	                                                        "coalesce(key_id::text, ''), "     \
	                                                        "coalesce(error_type, '')"

int ks_store_acme_nonce_add(struct db *db, const char *nonce, long long ttl, struct err *e)
{
	char ttlbuf[24];
	const char *params[2] = {nonce, ttlbuf};

	snprintf(ttlbuf, sizeof(ttlbuf), "%lld", ttl);
	/* Sweep what expired unused first: the table holds only live nonces, so it stays as
	 * small as the clients that are mid-conversation. */
	if (db_run(db, "DELETE FROM acme_nonces WHERE expires_at < now()", 0, NULL, e) < 0)
		return -1;
	return db_run(db,
	              "INSERT INTO acme_nonces (nonce, expires_at)"
	              " VALUES ($1, now() + make_interval(secs => $2::int))",
	              2, params, e);
}

int ks_store_acme_nonce_use(struct db *db, const char *nonce, struct err *e)
{
	const char *params[1] = {nonce};
	PGresult *res = db_exec(db,
	                        "DELETE FROM acme_nonces WHERE nonce = $1 AND expires_at > now()"
	                        " RETURNING 1",
	                        1, params, e);
	int found;

	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	PQclear(res);
	return found;
}

void acme_account_clear(struct acme_account *a)
{
	if (a == NULL)
		return;
	json_decref(a->jwk);
	json_decref(a->contact);
	memset(a, 0, sizeof(*a));
}

int ks_store_acme_account_find(struct db *db, long long domain_id, const char *column,
                               const char *value, struct acme_account *a, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, value};
	PGresult *res;
	int found;

	memset(a, 0, sizeof(*a));
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	/* column is one of two fixed identifiers chosen by the caller, never input. */
	res = db_exec(db,
	              strcmp(column, "id") == 0
	                  ? "SELECT id::text, status, thumbprint, jwk, contact FROM acme_accounts"
	                    " WHERE domain_id = $1 AND id = $2::uuid"
	                  : "SELECT id::text, status, thumbprint, jwk, contact FROM acme_accounts"
	                    " WHERE domain_id = $1 AND thumbprint = $2",
	              2, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found) {
		snprintf(a->id, sizeof(a->id), "%s", PQgetvalue(res, 0, 0));
		snprintf(a->status, sizeof(a->status), "%s", PQgetvalue(res, 0, 1));
		snprintf(a->thumbprint, sizeof(a->thumbprint), "%s", PQgetvalue(res, 0, 2));
		a->jwk = json_loads(PQgetvalue(res, 0, 3), 0, NULL);
		a->contact = json_loads(PQgetvalue(res, 0, 4), 0, NULL);
		if (a->jwk == NULL || a->contact == NULL) {
			acme_account_clear(a);
			found =
			    err_set(e, ERR_INTERNAL, "internal", "an ACME account row is garbled");
		}
	}
	PQclear(res);
	return found;
}

int ks_store_acme_account_add(struct db *db, long long domain_id, const struct acme_account *a,
                              struct err *e)
{
	char idbuf[24];
	char *jwk = json_dumps(a->jwk, JSON_COMPACT | JSON_SORT_KEYS);
	char *contact = json_dumps(a->contact, JSON_COMPACT);
	const char *params[5] = {a->id, idbuf, a->thumbprint, jwk, contact};
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	rc = jwk == NULL || contact == NULL
	         ? err_set(e, ERR_INTERNAL, "internal", "out of memory")
	         : db_run(db,
	                  "INSERT INTO acme_accounts (id, domain_id, thumbprint, jwk, contact)"
	                  " VALUES ($1::uuid, $2, $3, $4, $5)",
	                  5, params, e);
	free(jwk);
	free(contact);
	return rc;
}

int ks_store_acme_account_update(struct db *db, const struct acme_account *a, struct err *e)
{
	char *contact = json_dumps(a->contact, JSON_COMPACT);
	const char *params[3] = {a->id, a->status, contact};
	int rc = contact == NULL ? err_set(e, ERR_INTERNAL, "internal", "out of memory")
	                         : db_run(db,
	                                  "UPDATE acme_accounts SET status = $2, contact = $3"
	                                  " WHERE id = $1::uuid",
	                                  3, params, e);

	free(contact);
	return rc;
}

int ks_store_acme_order_add(struct db *db, long long domain_id, const struct acme_order *o,
                            struct err *e)
{
	char idbuf[24], ttl[24];
	const char *params[7] = {o->id, o->account_id, idbuf, o->name, o->purpose, o->token, ttl};

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	snprintf(ttl, sizeof(ttl), "%d", ACME_ORDER_TTL);
	return db_run(db,
	              "INSERT INTO acme_orders (id, account_id, domain_id, name, purpose, token,"
	              " expires_at) VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6,"
	              " now() + make_interval(secs => $7::int))",
	              7, params, e);
}

static void order_from_row(PGresult *res, struct acme_order *o)
{
	char *const out[] = {o->id,           o->account_id, o->name,   o->purpose,   o->status,
	                     o->authz_status, o->expires,    NULL,      o->token,     o->chall_type,
	                     o->validated,    o->error,      o->key_id, o->error_type};
	const size_t cap[] = {
	    sizeof(o->id),     sizeof(o->account_id),   sizeof(o->name),      sizeof(o->purpose),
	    sizeof(o->status), sizeof(o->authz_status), sizeof(o->expires),   0,
	    sizeof(o->token),  sizeof(o->chall_type),   sizeof(o->validated), sizeof(o->error),
	    sizeof(o->key_id), sizeof(o->error_type)};

	for (int c = 0; c < (int)(sizeof(cap) / sizeof(cap[0])); c++)
		if (out[c] != NULL)
			snprintf(out[c], cap[c], "%s", PQgetvalue(res, 0, c));
	o->expired = strcmp(PQgetvalue(res, 0, 7), "t") == 0;
}

int ks_store_acme_order_get(struct db *db, long long domain_id, const char *id, int lock,
                            struct acme_order *o, struct err *e)
{
	char idbuf[24], idcopy[CRYPTO_UUID_LEN];
	const char *params[2] = {idbuf, idcopy};
	PGresult *res;
	int found;

	/* id may be o->id itself (read an order back): copy it before o is cleared. */
	snprintf(idcopy, sizeof(idcopy), "%s", id);
	memset(o, 0, sizeof(*o));
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              lock ? "SELECT " ORDER_COLUMNS " FROM acme_orders"
	                     " WHERE domain_id = $1 AND id = $2::uuid FOR UPDATE"
	                   : "SELECT " ORDER_COLUMNS " FROM acme_orders"
	                     " WHERE domain_id = $1 AND id = $2::uuid",
	              2, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found)
		order_from_row(res, o);
	PQclear(res);
	return found;
}

int ks_store_acme_order_issued(struct db *db, const char *id, const char *key_id, struct err *e)
{
	const char *params[2] = {id, key_id};

	return db_run(db,
	              "UPDATE acme_orders SET status = 'valid', key_id = $2::uuid"
	              " WHERE id = $1::uuid",
	              2, params, e);
}

int ks_store_acme_orders_recent(struct db *db, long long domain_id, const char *account_id,
                                long long *n, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, account_id};
	PGresult *res;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              account_id != NULL
	                  ? "SELECT count(*) FROM acme_orders WHERE domain_id = $1"
	                    " AND account_id = $2::uuid AND created_at > now() - interval '1 hour'"
	                  : "SELECT count(*) FROM acme_orders WHERE domain_id = $1"
	                    " AND created_at > now() - interval '1 hour'",
	              account_id != NULL ? 2 : 1, params, e);
	if (res == NULL)
		return -1;
	*n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int ks_store_acme_account_ordered(struct db *db, const char *account_id, const char *key_id,
                                  struct err *e)
{
	const char *params[2] = {account_id, key_id};
	PGresult *res = db_exec(db,
	                        "SELECT 1 FROM acme_orders WHERE account_id = $1::uuid"
	                        " AND key_id = $2::uuid",
	                        2, params, e);
	int found;

	if (res == NULL)
		return -1;
	found = PQntuples(res) > 0;
	PQclear(res);
	return found;
}
