/*
 * store_domain.c - the domains table: a hosted domain's row as struct
 * ks_domain, the lock that serialises a domain's changes, and the change
 * notice other key-server nodes listen for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static char *dup_field(PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return strdup(PQgetvalue(res, row, col));
}

void ks_domain_free(struct ks_domain *d)
{
	if (d == NULL)
		return;
	free(d->name);
	free(d->root_pem);
	free(d->issuer_pem);
	json_decref(d->pins);
	free(d->policy);
	free(d->mode);
	free(d->corporate_address);
	free(d->updated);
	free(d->issuer_key_sealed);
	free(d->encryption);
	free(d->signer_seal);
	free(d);
}

struct ks_domain *ks_store_domain(struct db *db, const char *name, struct err *e)
{
	const char *params[1] = {name};
	struct ks_domain *d;
	PGresult *res;

	res = db_exec(db,
	              "SELECT id, name, root_pem, issuer_pem, array_to_json(pins)::text, policy,"
	              " mode, corporate_address, " KS_SQL_TS(
	                  "updated_at") ", issuer_key_sealed,"
	                                " COALESCE(renew_window, -1),"
	                                " COALESCE(renew_min_interval, -1),"
	                                " COALESCE(renew_max_lifetime, -1), encryption, signer_seal"
	                                " FROM domains WHERE name = $1",
	              1, params, e);
	if (res == NULL)
		return NULL;
	if (PQntuples(res) != 1) {
		PQclear(res);
		err_set(e, ERR_NOTFOUND, "unknown_domain", "this key server does not host %s",
		        name);
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		PQclear(res);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	d->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	d->name = dup_field(res, 0, 1);
	d->root_pem = dup_field(res, 0, 2);
	d->issuer_pem = dup_field(res, 0, 3);
	d->pins = json_loads(PQgetvalue(res, 0, 4), 0, NULL);
	d->policy = dup_field(res, 0, 5);
	d->mode = dup_field(res, 0, 6);
	d->corporate_address = dup_field(res, 0, 7);
	d->updated = dup_field(res, 0, 8);
	d->issuer_key_sealed = dup_field(res, 0, 9);
	d->renew_window = strtoll(PQgetvalue(res, 0, 10), NULL, 10);
	d->renew_min_interval = strtoll(PQgetvalue(res, 0, 11), NULL, 10);
	d->renew_max_lifetime = strtoll(PQgetvalue(res, 0, 12), NULL, 10);
	d->encryption = dup_field(res, 0, 13);
	d->signer_seal = dup_field(res, 0, 14);
	PQclear(res);
	if (d->name == NULL || d->root_pem == NULL || d->issuer_pem == NULL || d->pins == NULL ||
	    d->policy == NULL || d->mode == NULL || d->updated == NULL || d->encryption == NULL) {
		ks_domain_free(d);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	return d;
}

json_t *ks_domain_json(const struct ks_domain *d)
{
	json_t *o =
	    json_pack("{s:s, s:s, s:s, s:O, s:s, s:s, s:s, s:s}", "domain", d->name, "root",
	              d->root_pem, "issuer", d->issuer_pem, "pins", d->pins, "policy", d->policy,
	              "mode", d->mode, "encryption", d->encryption, "updated", d->updated);

	if (o != NULL && d->corporate_address != NULL)
		json_object_set_new(o, "corporate_address", json_string(d->corporate_address));
	if (o != NULL &&
	    (d->renew_window >= 0 || d->renew_min_interval >= 0 || d->renew_max_lifetime >= 0)) {
		/* Only the limits the domain set itself; null: the key server's. */
		const long long v[3] = {d->renew_window, d->renew_min_interval,
		                        d->renew_max_lifetime};
		const char *k[3] = {"window", "min_interval", "max_lifetime"};
		json_t *r = json_object();
		for (int i = 0; r != NULL && i < 3; i++)
			json_object_set_new(r, k[i], v[i] >= 0 ? json_integer(v[i]) : json_null());
		json_object_set_new(o, "renewal", r);
	}
	return o;
}

/* A domain's own renewal limits, seconds; a negative one: back to the server's. */
int ks_store_domain_set_renewal(struct db *db, const char *domain, const long long limits[3],
                                struct err *e)
{
	char buf[3][24];
	const char *params[4] = {domain, NULL, NULL, NULL};

	for (int i = 0; i < 3; i++)
		if (limits[i] >= 0) {
			snprintf(buf[i], sizeof(buf[i]), "%lld", limits[i]);
			params[i + 1] = buf[i];
		}
	return db_run(
	    db,
	    "UPDATE domains SET renew_window = $2::bigint, renew_min_interval = $3::bigint,"
	    " renew_max_lifetime = $4::bigint, updated_at = now() WHERE name = $1",
	    4, params, e);
}

int ks_store_notify_change(struct db *db, const char *domain, struct err *e)
{
	const char *params[1] = {domain};

	return db_run(db, "SELECT pg_notify('anchor_change', $1)", 1, params, e);
}

/* Lock the domain's row until the end of the caller's transaction: changes of one
 * domain (log appends, routes, issuance) then happen one after another.  NO KEY UPDATE,
 * not UPDATE: rows that merely reference the domain (a tree head, a token) take a key
 * share lock on it, which must not wait for the appenders: the signer signs a head
 * under its heads lock while a batch of issuances holding this lock waits for that
 * heads lock (a deadlock with FOR UPDATE). */
int ks_store_domain_lock(struct db *db, long long domain_id, struct err *e)
{
	char idbuf[24];
	const char *params[1] = {idbuf};

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	return db_run(db, "SELECT 1 FROM domains WHERE id = $1 FOR NO KEY UPDATE", 1, params, e);
}

/* Change a domain's policy, mode and encryption requirement (NULL: unchanged);
 * corporate_address is kept only while the policy is corporate. */
int ks_store_domain_set_policy(struct db *db, const char *domain, const struct ks_policy_set *p,
                               struct err *e)
{
	const char *params[5] = {domain, p->policy, p->mode, p->corporate_address, p->encryption};

	return db_run(db,
	              "UPDATE domains SET policy = COALESCE($2, policy), mode = COALESCE($3, mode),"
	              " corporate_address = CASE WHEN COALESCE($2, policy) = 'corporate'"
	              "   THEN COALESCE($4, corporate_address) END,"
	              " encryption = COALESCE($5, encryption), updated_at = now() WHERE name = $1",
	              5, params, e);
}

/* Register a domain; *id receives its row id.  ERR_CONFLICT when the name is taken. */
int ks_store_domain_add(struct db *db, const struct ks_domain_new *n, long long *id, struct err *e)
{
	const char *params[8] = {n->name,   n->root_pem, n->issuer_pem,        n->pin,
	                         n->policy, n->mode,     n->issuer_key_sealed, n->signer_seal};
	PGresult *res;

	res = db_exec(db,
	              "INSERT INTO domains (name, root_pem, issuer_pem, pins, policy, mode,"
	              " issuer_key_sealed, signer_seal)"
	              " VALUES ($1, $2, $3, ARRAY[$4], $5, $6, $7, $8) RETURNING id",
	              8, params, e);
	if (res == NULL)
		return -1;
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}
