/*
 * issuer.c - the domains' issuer keys: sealed under the node's key-encryption key
 * (lib/keywrap.c) and stored with the domain, so that any node can issue for any
 * domain and a copy of the database alone reveals no key.
 */
#include "keywrap.h"
#include "ks.h"

char *ks_issuer_key_seal(const struct ks *ks, const char *domain, EVP_PKEY *key, struct err *e)
{
	return keywrap_seal(ks->kek, domain, key, e);
}

EVP_PKEY *ks_issuer_key_load(const struct ks *ks, const struct ks_domain *d, struct err *e)
{
	if (d->issuer_key_sealed == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "%s has no issuer key", d->name);
		return NULL;
	}
	return keywrap_open(ks->kek, d->name, d->issuer_key_sealed, e);
}
