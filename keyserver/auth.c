/* auth.c - bearer tokens: the operator's (hash in the config) and each domain's admin. */
#include <string.h>

#include "pki/crypto.h"
#include "store.h"

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
	char hash[CRYPTO_HEX256_LEN], owner[DNS_DOMAIN_MAX];
	const char *token;
	int ok;

	if ((token = bearer_or_fail(r, e)) == NULL)
		return -1;
	crypto_token_hash(token, hash);
	/* Tokens are 256-bit random values: looking one up by its hash leaks nothing useful
	 * through timing. */
	if (ks_store_admin_token_domain(r->db, hash, owner, sizeof(owner), e) < 0)
		return -1;
	ok = strcmp(owner, d->name) == 0;
	if (!ok)
		return err_set(e, ERR_FORBIDDEN, "forbidden", "the admin token is not valid for %s",
		               d->name);
	return 0;
}
