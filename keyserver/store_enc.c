/*
 * store_enc.c - the enc_challenges table: pending proofs of possession of encryption
 * keys (PROTOCOL.md §4.1).  Only the answer's SHA-256 is kept, never the nonce.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

void ks_enc_challenge_clear(struct ks_enc_challenge *c)
{
	if (c == NULL)
		return;
	free(c->public_key);
	c->public_key = NULL;
}

int ks_store_enc_challenge_add(struct db *db, long long domain_id, const struct ks_enc_challenge *c,
                               struct err *e)
{
	char idbuf[24], ttl[24];
	const char *gc[1] = {idbuf};
	const char *params[7] = {c->id,         idbuf,          c->address, c->device,
	                         c->public_key, c->answer_hash, ttl};

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	snprintf(ttl, sizeof(ttl), "%d", KS_ENC_CHALLENGE_TTL);
	/* Unanswered challenges of the domain go as new ones come: no timer needed. */
	if (db_run(db, "DELETE FROM enc_challenges WHERE domain_id = $1 AND expires_at < now()", 1,
	           gc, e) < 0)
		return -1;
	return db_run(db,
	              "INSERT INTO enc_challenges (id, domain_id, address, device, public_key,"
	              " answer_hash, expires_at) VALUES ($1::uuid, $2, $3, $4, $5, $6,"
	              " now() + make_interval(secs => $7::int))",
	              7, params, e);
}

int ks_store_enc_challenge_lock(struct db *db, long long domain_id, const char *id,
                                struct ks_enc_challenge *c, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {id, idbuf};
	PGresult *res;
	int found;

	memset(c, 0, sizeof(*c));
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "SELECT id::text, address, device, public_key, answer_hash, used,"
	              " expires_at <= now() FROM enc_challenges"
	              " WHERE id = $1::uuid AND domain_id = $2 FOR UPDATE",
	              2, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found) {
		snprintf(c->id, sizeof(c->id), "%s", PQgetvalue(res, 0, 0));
		snprintf(c->address, sizeof(c->address), "%s", PQgetvalue(res, 0, 1));
		snprintf(c->device, sizeof(c->device), "%s", PQgetvalue(res, 0, 2));
		snprintf(c->answer_hash, sizeof(c->answer_hash), "%s", PQgetvalue(res, 0, 4));
		c->used = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
		c->expired = strcmp(PQgetvalue(res, 0, 6), "t") == 0;
		if ((c->public_key = strdup(PQgetvalue(res, 0, 3))) == NULL) {
			PQclear(res);
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		}
	}
	PQclear(res);
	return found;
}

int ks_store_enc_challenge_use(struct db *db, const char *id, struct err *e)
{
	const char *params[1] = {id};

	return db_run(db, "UPDATE enc_challenges SET used = true WHERE id = $1::uuid", 1, params,
	              e);
}
