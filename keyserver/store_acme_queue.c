/*
 * store_acme_queue.c - the queue of ACME validations (sql/015_acme_validation.sql): an
 * authorisation in 'processing' is a job.  A challenge POST starts one (within the caps the
 * caller checks in the same transaction, under the account's row lock); a validation thread
 * claims one for a lease with FOR UPDATE SKIP LOCKED, so the threads of every node share the
 * queue and a claim whose node died is taken again once its lease has run out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int ks_store_acme_account_lock(struct db *db, const char *account_id, struct err *e)
{
	const char *params[1] = {account_id};
	PGresult *res =
	    db_exec(db, "SELECT 1 FROM acme_accounts WHERE id = $1::uuid FOR UPDATE", 1, params, e);
	int found;

	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	PQclear(res);
	return found;
}

int ks_store_acme_processing_count(struct db *db, const char *account_id, long long *n,
                                   struct err *e)
{
	const char *params[1] = {account_id};
	PGresult *res = db_exec(db,
	                        account_id != NULL
	                            ? "SELECT count(*) FROM acme_orders WHERE account_id = $1::uuid"
	                              " AND authz_status = 'processing'"
	                            : "SELECT count(*) FROM acme_orders"
	                              " WHERE authz_status = 'processing'",
	                        account_id != NULL ? 1 : 0, params, e);

	if (res == NULL)
		return -1;
	*n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int ks_store_acme_validation_start(struct db *db, const char *order_id, const char *type,
                                   struct err *e)
{
	const char *params[2] = {order_id, type};
	PGresult *res =
	    db_exec(db,
	            "UPDATE acme_orders SET authz_status = 'processing', chall_type = $2,"
	            " validation_claimed_until = NULL, validation_attempts = 0"
	            " WHERE id = $1::uuid AND authz_status = 'pending'"
	            " AND status = 'pending' AND expires_at > now() RETURNING 1",
	            2, params, e);
	int started;

	if (res == NULL)
		return -1;
	started = PQntuples(res) == 1;
	PQclear(res);
	return started;
}

int ks_store_acme_validation_claim(struct db *db, long long lease, struct acme_job *j,
                                   struct err *e)
{
	char leasebuf[24];
	const char *params[1] = {leasebuf};
	PGresult *res;
	int found;

	memset(j, 0, sizeof(*j));
	snprintf(leasebuf, sizeof(leasebuf), "%lld", lease);
	/* New jobs (no claim yet) first, then those whose node died, oldest first. */
	res = db_exec(db,
	              "UPDATE acme_orders o SET validation_attempts = o.validation_attempts + 1,"
	              " validation_claimed_until = now() + make_interval(secs => $1::int)"
	              " FROM acme_accounts a"
	              " WHERE a.id = o.account_id AND o.id = (SELECT id FROM acme_orders"
	              "  WHERE authz_status = 'processing' AND (validation_claimed_until IS NULL"
	              "  OR validation_claimed_until < now())"
	              "  ORDER BY validation_claimed_until NULLS FIRST, created_at"
	              "  LIMIT 1 FOR UPDATE SKIP LOCKED)"
	              " RETURNING o.id::text, o.name, o.token, coalesce(o.chall_type, ''),"
	              " a.thumbprint, o.validation_attempts",
	              1, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found) {
		snprintf(j->order_id, sizeof(j->order_id), "%s", PQgetvalue(res, 0, 0));
		snprintf(j->name, sizeof(j->name), "%s", PQgetvalue(res, 0, 1));
		snprintf(j->token, sizeof(j->token), "%s", PQgetvalue(res, 0, 2));
		snprintf(j->type, sizeof(j->type), "%s", PQgetvalue(res, 0, 3));
		snprintf(j->thumbprint, sizeof(j->thumbprint), "%s", PQgetvalue(res, 0, 4));
		j->attempts = (int)strtol(PQgetvalue(res, 0, 5), NULL, 10);
	}
	PQclear(res);
	return found;
}

int ks_store_acme_order_validated(struct db *db, const char *id, int valid, const char *error_type,
                                  const char *error, struct err *e)
{
	const char *params[4] = {id, valid ? "valid" : "invalid", error_type, error};

	return db_run(db,
	              "UPDATE acme_orders SET authz_status = $2, error_type = $3, error = $4,"
	              " validated_at = CASE WHEN $2 = 'valid' THEN now() END,"
	              " validation_claimed_until = NULL,"
	              " status = CASE WHEN $2 = 'valid' THEN 'ready' ELSE 'invalid' END"
	              " WHERE id = $1::uuid AND status = 'pending' AND authz_status = 'processing'",
	              4, params, e);
}
