/* store.c - the key server's reads from PostgreSQL, as JSON for the handlers. */
#include <stdlib.h>
#include <string.h>

#include "pki/crl.h"
#include "ks.h"

/* RFC 3339 UTC rendering done by the server, so that every node prints alike. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

#define CERT_COLUMNS                                                                              \
	"key_id::text, kind, purpose, name, algorithm, fingerprint, serial, " TS("not_before") ", " \
	TS("not_after") ", status, " TS("issued_at") ", " TS("superseded_at") ", pem, "              \
	"(SELECT json_build_object('reason', rv.reason, 'method', rv.method, 'time', "             \
	TS("rv.revoked_at") ")::text FROM revocations rv WHERE rv.key_id = certificates.key_id), "  \
	"log_seq, domain_id, " TS("erased_at")

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
	free(d);
}

struct ks_domain *ks_store_domain(struct db *db, const char *name, struct err *e)
{
	const char *params[1] = {name};
	struct ks_domain *d;
	PGresult *res;

	res = db_exec(db,
		      "SELECT id, name, root_pem, issuer_pem, array_to_json(pins)::text, policy,"
		      " mode, corporate_address, " TS("updated_at") ", issuer_key_sealed"
		      " FROM domains WHERE name = $1",
		      1, params, e);
	if (res == NULL)
		return NULL;
	if (PQntuples(res) != 1) {
		PQclear(res);
		err_set(e, ERR_NOTFOUND, "unknown_domain", "this key server does not host %s", name);
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
	PQclear(res);
	if (d->name == NULL || d->root_pem == NULL || d->issuer_pem == NULL || d->pins == NULL ||
	    d->policy == NULL || d->mode == NULL || d->updated == NULL) {
		ks_domain_free(d);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	return d;
}

json_t *ks_domain_json(const struct ks_domain *d)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:O, s:s, s:s, s:s}", "domain", d->name, "root",
			      d->root_pem, "issuer", d->issuer_pem, "pins", d->pins, "policy",
			      d->policy, "mode", d->mode, "updated", d->updated);

	if (o != NULL && d->corporate_address != NULL)
		json_object_set_new(o, "corporate_address", json_string(d->corporate_address));
	return o;
}

static json_t *nullable(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

static json_t *revocation_json(PGresult *res, int row, int col)
{
	json_t *r, *reason;

	if (PQgetisnull(res, row, col))
		return json_null();
	r = json_loads(PQgetvalue(res, row, col), 0, NULL);
	reason = json_object_get(r, "reason");
	if (json_is_integer(reason)) {
		const char *name = crl_reason_name((int)json_integer_value(reason));
		json_object_set_new(r, "reason", json_string(name ? name : "unspecified"));
	}
	return r ? r : json_null();
}

/*
 * An erased certificate (PROTOCOL.md §10.1): what the CRL and the log still need, and
 * nothing that names the address.  The row no longer holds the address or the
 * certificate; this shape also keeps out the members (name, certificate, log proof)
 * that a reader might otherwise take from a row.
 */
static json_t *erased_row_json(PGresult *res, int row, int revocation_col, int erased_col)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "key_id",
			 nullable(res, row, 0), "kind", nullable(res, row, 1), "purpose",
			 nullable(res, row, 2), "fingerprint", nullable(res, row, 5), "serial",
			 nullable(res, row, 6), "status", nullable(res, row, 9), "revocation",
			 revocation_json(res, row, revocation_col), "erased",
			 nullable(res, row, erased_col));
}

static json_t *cert_row_json(PGresult *res, int row)
{
	static const char *const names[] = {"key_id",     "kind",      "purpose",  "name",
					    "algorithm",  "fingerprint", "serial", "not_before",
					    "not_after",  "status",    "issued",   "superseded",
					    "certificate"};
	int ncols = (int)(sizeof(names) / sizeof(names[0]));
	json_t *o;

	/* The columns after the named ones: revocation, log_seq, domain_id, erased_at. */
	if (!PQgetisnull(res, row, ncols + 3))
		return erased_row_json(res, row, ncols, ncols + 3);
	if ((o = json_object()) == NULL)
		return NULL;
	for (int c = 0; c < ncols; c++)
		json_object_set_new(o, names[c], nullable(res, row, c));
	json_object_set_new(o, "revocation", revocation_json(res, row, ncols));
	/* log_seq and _domain_id are for ks_log_attach_proofs, which replaces them with the
	 * "log" member (the entry and its inclusion proof). */
	if (!PQgetisnull(res, row, ncols + 1))
		json_object_set_new(o, "log_seq",
				    json_integer(strtoll(PQgetvalue(res, row, ncols + 1), NULL, 10)));
	json_object_set_new(o, "_domain_id",
			    json_integer(strtoll(PQgetvalue(res, row, ncols + 2), NULL, 10)));
	return o;
}

json_t *ks_store_certs_by_name(struct db *db, long long domain_id, const char *name,
			       const char *purpose, int current_only, struct err *e)
{
	char idbuf[24];
	const char *params[4] = {idbuf, name, purpose, current_only ? "true" : "false"};
	PGresult *res;
	json_t *arr;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
		      "SELECT " CERT_COLUMNS " FROM certificates"
		      " WHERE domain_id = $1 AND name = $2 AND erased_at IS NULL"
		      " AND ($3::text IS NULL OR purpose = $3)"
		      " AND ($4::bool IS FALSE OR status = 'current')"
		      " ORDER BY issued_at DESC, id DESC",
		      4, params, e);
	if (res == NULL)
		return NULL;
	arr = json_array();
	for (int i = 0; arr != NULL && i < PQntuples(res); i++)
		json_array_append_new(arr, cert_row_json(res, i));
	PQclear(res);
	if (arr == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return arr;
}

json_t *ks_store_server_certs(struct db *db, long long domain_id, struct err *e)
{
	char idbuf[24];
	const char *params[1] = {idbuf};
	PGresult *res;
	json_t *arr;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
		      "SELECT " CERT_COLUMNS " FROM certificates WHERE domain_id = $1"
		      " AND kind = 'server' AND status = 'current' AND erased_at IS NULL"
		      " ORDER BY name, purpose",
		      1, params, e);
	if (res == NULL)
		return NULL;
	arr = json_array();
	for (int i = 0; arr != NULL && i < PQntuples(res); i++)
		json_array_append_new(arr, cert_row_json(res, i));
	PQclear(res);
	if (arr == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return arr;
}

json_t *ks_store_cert_by(struct db *db, const char *column, const char *value, struct err *e)
{
	const char *params[1] = {value};
	PGresult *res;
	json_t *o;

	/* column is one of two fixed identifiers chosen by the caller, never input. */
	if (strcmp(column, "key_id") == 0)
		res = db_exec(db, "SELECT " CERT_COLUMNS " FROM certificates WHERE key_id = $1::uuid",
			      1, params, e);
	else
		res = db_exec(db, "SELECT " CERT_COLUMNS " FROM certificates WHERE fingerprint = $1",
			      1, params, e);
	if (res == NULL)
		return NULL;
	if (PQntuples(res) != 1) {
		PQclear(res);
		err_set(e, ERR_NOTFOUND, "not_found", "no certificate with that %s",
			strcmp(column, "key_id") == 0 ? "key id" : "fingerprint");
		return NULL;
	}
	o = cert_row_json(res, 0);
	PQclear(res);
	return o;
}

int ks_store_notify_change(struct db *db, const char *domain, struct err *e)
{
	const char *params[1] = {domain};

	return db_run(db, "SELECT pg_notify('anchor_change', $1)", 1, params, e);
}
