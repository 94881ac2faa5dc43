/* auth.c - bearer tokens: the operator's (hash in the config) and each domain's admin. */
#include <string.h>

#include "pki/crypto.h"
#include "ks.h"

static const char *bearer_or_fail(struct ks_req *r, struct err *e)
{
	const char *token = http_bearer_token(r->http);

	if (token == NULL || *token == '\0')
		err_set(e, ERR_AUTH, "unauthorized",
			"this request needs an Authorization: Bearer token");
	return token;
}

int ks_auth_operator(struct ks_req *r, struct err *e)
{
	return http_auth_token_hash(r->http, r->ks->cfg.operator_token_hash, e);
}

int ks_auth_domain_admin(struct ks_req *r, const struct ks_domain *d, struct err *e)
{
	char hash[CRYPTO_HEX256_LEN];
	const char *params[1] = {hash};
	const char *token;
	PGresult *res;
	int ok;

	if ((token = bearer_or_fail(r, e)) == NULL)
		return -1;
	crypto_token_hash(token, hash);
	/* Tokens are 256-bit random values: looking one up by its hash leaks nothing useful
	 * through timing. */
	res = db_exec(r->db,
		      "SELECT d.name FROM admin_tokens t JOIN domains d ON d.id = t.domain_id"
		      " WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
		      1, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return err_set(e, ERR_AUTH, "unauthorized", "the admin token is not valid");
	}
	ok = strcmp(PQgetvalue(res, 0, 0), d->name) == 0;
	PQclear(res);
	if (!ok)
		return err_set(e, ERR_FORBIDDEN, "forbidden",
			       "the admin token is not valid for %s", d->name);
	return 0;
}
