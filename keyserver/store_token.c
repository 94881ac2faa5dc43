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
