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

/* Row 0 of res as a token; "used" and "expired" as they were before the claim. */
static void token_fill(PGresult *res, struct ks_enroll_token *t)
{
	snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(res, 0, 0));
	snprintf(t->address, sizeof(t->address), "%s", PQgetvalue(res, 0, 1));
	t->used = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	t->expired = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	snprintf(t->expires, sizeof(t->expires), "%s", PQgetvalue(res, 0, 4));
	t->sealed = !PQgetisnull(res, 0, 5);
	snprintf(t->seal, sizeof(t->seal), "%s", PQgetvalue(res, 0, 5));
}

/* "key_id fingerprint key_id fingerprint ..." into a malloc'd array; its count, or -1. */
static int superseded_parse(const char *list, struct ks_cert_row **rows, struct err *e)
{
	int n = 0, pairs = 1;

	if (*list == '\0')
		return 0;
	for (const char *p = list; *p != '\0'; p++)
		pairs += *p == ' ';
	pairs = (pairs + 1) / 2;
	if ((*rows = calloc((size_t)pairs, sizeof(**rows))) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	for (const char *p = list; *p != '\0' && n < pairs; n++) {
		size_t k = strcspn(p, " "), f;

		snprintf((*rows)[n].key_id, sizeof((*rows)[n].key_id), "%.*s", (int)k, p);
		p += k + (p[k] == ' ');
		f = strcspn(p, " ");
		snprintf((*rows)[n].fingerprint, sizeof((*rows)[n].fingerprint), "%.*s", (int)f, p);
		p += f + (p[f] == ' ');
	}
	return n;
}

/*
 * Claim the enrollment token of the domain with token_hash for a certificate of purpose
 * (and device) with key id new_key_id, in one round trip: the row locked until the
 * transaction ends, marked used when it was neither used nor expired, and then the
 * current certificate of the token's address for that purpose superseded by the new
 * key.  1 (t as it was before the claim; the superseded ones' key_id and fingerprint in
 * *rows, their count in *n), 0 when there is no such token (nothing changed).
 *
 * The caller checks the rest (the seal, the requested name) and, should one fail, rolls
 * the claim back with its change.  The batch's leader took the domain's lock before
 * this statement began, so its snapshot sees every earlier issuance of the domain.
 */
int ks_store_enroll_token_claim(struct db *db, const struct ks_token_claim *c,
                                struct ks_enroll_token *t, struct ks_cert_row **rows, int *n,
                                struct err *e)
{
	char idbuf[24];
	const char *params[5] = {c->token_hash, idbuf, c->purpose, c->device, c->new_key_id};
	PGresult *res;
	int found;

	memset(t, 0, sizeof(*t));
	*rows = NULL;
	*n = 0;
	snprintf(idbuf, sizeof(idbuf), "%lld", c->domain_id);
	res = db_exec(
	    db,
	    "WITH t AS (SELECT id, address, used_at IS NOT NULL AS used,"
	    " expires_at <= now() AS expired,"
	    " floor(extract(epoch FROM expires_at))::bigint::text AS expires, seal"
	    " FROM enroll_tokens WHERE token_hash = $1 AND domain_id = $2 FOR UPDATE),"
	    " u AS (UPDATE enroll_tokens e SET used_at = now() FROM t"
	    " WHERE e.id = t.id AND NOT t.used AND NOT t.expired RETURNING t.address),"
	    " s AS (UPDATE certificates c SET status = 'superseded', superseded_at = now(),"
	    " superseded_by = $5::uuid FROM u WHERE c.domain_id = $2 AND c.name = u.address"
	    " AND c.purpose = $3 AND c.device IS NOT DISTINCT FROM $4 AND c.status = 'current'"
	    " RETURNING c.key_id::text || ' ' || c.fingerprint AS row)"
	    " SELECT t.id, t.address, t.used, t.expired, t.expires, t.seal,"
	    " (SELECT COALESCE(string_agg(row, ' '), '') FROM s) FROM t",
	    5, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found) {
		token_fill(res, t);
		if ((*n = superseded_parse(PQgetvalue(res, 0, 6), rows, e)) < 0)
			found = -1;
	}
	PQclear(res);
	return found;
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
