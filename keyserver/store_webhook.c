/*
 * store_webhook.c - the webhooks table (a domain's subscriptions to the log
 * entries of some keys) and webhook_deliveries (one row per entry and
 * webhook, with its attempts).  Due deliveries are taken with FOR UPDATE
 * SKIP LOCKED, so no entry goes out twice at once from several nodes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Subscribe url to the keys of key_ids (a PostgreSQL uuid[] literal): 1 with its id in *id,
 * 0 when some key id is not a key of the domain (only those would ever fire). */
int ks_store_webhook_add(struct db *db, long long domain_id, const char *url, const char *key_ids,
                         const char *secret_hash, long long *id, struct err *e)
{
	char idbuf[24];
	const char *params[4] = {idbuf, url, key_ids, secret_hash};
	PGresult *res;
	int added;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "INSERT INTO webhooks (domain_id, url, key_ids, secret_hash)"
	              " SELECT $1, $2, $3::uuid[], $4 WHERE (SELECT count(*) FROM certificates"
	              " WHERE domain_id = $1 AND key_id = ANY ($3::uuid[]))"
	              " = cardinality($3::uuid[]) RETURNING id",
	              4, params, e);
	if (res == NULL)
		return -1;
	added = PQntuples(res) == 1;
	if (added)
		*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return added;
}

/* Delete webhook id of the domain if secret_hash is its secret's: 1 when deleted, else 0. */
int ks_store_webhook_delete(struct db *db, const char *id, long long domain_id,
                            const char *secret_hash, struct err *e)
{
	char idbuf[24];
	const char *params[3] = {id, idbuf, secret_hash};
	PGresult *res;
	int gone;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "DELETE FROM webhooks WHERE id = $1 AND domain_id = $2 AND secret_hash = $3",
	              3, params, e);
	if (res == NULL)
		return -1;
	gone = strtol(PQcmdTuples(res), NULL, 10) == 1;
	PQclear(res);
	return gone;
}

/* Lock up to limit deliveries that are due, with fewer than max_attempts tries, and whose
 * entry a signed head covers (it goes out once it can be proven), oldest due first; *out
 * (malloc'd) receives them; returns how many.  Inside the caller's transaction. */
int ks_store_deliveries_due(struct db *db, long long max_attempts, int limit,
                            struct ks_delivery **out, struct err *e)
{
	char maxbuf[24], limbuf[16];
	const char *params[2] = {maxbuf, limbuf};
	PGresult *res;
	int n;

	*out = NULL;
	snprintf(maxbuf, sizeof(maxbuf), "%lld", max_attempts);
	snprintf(limbuf, sizeof(limbuf), "%d", limit);
	res = db_exec(db,
	              "SELECT dl.webhook_id, dl.seq, dl.domain_id, d.name, w.url, dl.attempts"
	              " FROM webhook_deliveries dl JOIN webhooks w ON w.id = dl.webhook_id"
	              " JOIN domains d ON d.id = dl.domain_id"
	              " WHERE dl.delivered_at IS NULL AND dl.next_attempt <= now()"
	              " AND dl.attempts < $1"
	              " AND dl.seq < (SELECT max(size) FROM tree_heads th"
	              "   WHERE th.domain_id = dl.domain_id)"
	              " ORDER BY dl.next_attempt LIMIT $2"
	              " FOR UPDATE OF dl SKIP LOCKED",
	              2, params, e);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	if (n > 0 && (*out = calloc((size_t)n, sizeof(**out))) == NULL) {
		PQclear(res);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (int i = 0; i < n; i++) {
		struct ks_delivery *dl = &(*out)[i];

		snprintf(dl->webhook_id, sizeof(dl->webhook_id), "%s", PQgetvalue(res, i, 0));
		snprintf(dl->seq, sizeof(dl->seq), "%s", PQgetvalue(res, i, 1));
		snprintf(dl->domain_id, sizeof(dl->domain_id), "%s", PQgetvalue(res, i, 2));
		snprintf(dl->domain, sizeof(dl->domain), "%s", PQgetvalue(res, i, 3));
		snprintf(dl->url, sizeof(dl->url), "%s", PQgetvalue(res, i, 4));
		dl->attempts = (int)strtol(PQgetvalue(res, i, 5), NULL, 10);
	}
	PQclear(res);
	return n;
}

/* Count an attempt: delivered (why NULL) or failed with why, next try after delay s. */
int ks_store_delivery_record(struct db *db, const struct ks_delivery *dl, long long delay,
                             const char *why, struct err *e)
{
	char delaybuf[24];
	const char *params[4] = {dl->webhook_id, dl->seq, delaybuf, why};

	snprintf(delaybuf, sizeof(delaybuf), "%lld", delay);
	return db_run(db,
	              "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $4,"
	              " delivered_at = CASE WHEN $4::text IS NULL THEN now() END,"
	              " next_attempt = now() + make_interval(secs => $3::bigint)"
	              " WHERE webhook_id = $1 AND seq = $2",
	              4, params, e);
}
