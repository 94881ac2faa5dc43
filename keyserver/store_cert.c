/*
 * store_cert.c - the certificates table (with each one's revocation), read as
 * struct ks_cert (the JSON the protocol publishes is cert_json.c's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/crl.h"
#include "store.h"

/* The columns cert_fill reads, in its order; certificates is "c", its revocation "rv".
 * (Kept one column group a line: clang-format would split the literals between the
 * macro calls.) */
// clang-format off
#define CERT_COLUMNS                                                                       \
	"c.key_id::text, c.kind, c.purpose, c.name, c.algorithm, c.fingerprint, c.serial, " \
	"c.pem, c.status, "                                                                 \
	KS_SQL_TS("c.not_before") ", " KS_SQL_TS("c.not_after") ", "                         \
	KS_SQL_TS("c.issued_at") ", " KS_SQL_TS("c.superseded_at") ", "                      \
	KS_SQL_TS("c.erased_at") ", "                                                        \
	"c.log_seq, c.domain_id, rv.reason, rv.method, " KS_SQL_TS("rv.revoked_at") ", " \
	"c.device"
// clang-format on
#define CERT_FROM " FROM certificates c LEFT JOIN revocations rv ON rv.key_id = c.key_id"

/* Column i of the row into a fixed field ("" for NULL). */
static void copy_col(PGresult *res, int row, int col, char *out, size_t cap)
{
	snprintf(out, cap, "%s", PQgetvalue(res, row, col));
}

static int dup_col(PGresult *res, int row, int col, char **out)
{
	*out = NULL;
	if (PQgetisnull(res, row, col))
		return 0;
	return (*out = strdup(PQgetvalue(res, row, col))) ? 0 : -1;
}

static int cert_fill(PGresult *res, int row, struct ks_cert *c)
{
	memset(c, 0, sizeof(*c));
	copy_col(res, row, 0, c->key_id, sizeof(c->key_id));
	copy_col(res, row, 1, c->kind, sizeof(c->kind));
	copy_col(res, row, 2, c->purpose, sizeof(c->purpose));
	copy_col(res, row, 4, c->algorithm, sizeof(c->algorithm));
	copy_col(res, row, 5, c->fingerprint, sizeof(c->fingerprint));
	copy_col(res, row, 6, c->serial, sizeof(c->serial));
	copy_col(res, row, 8, c->status, sizeof(c->status));
	copy_col(res, row, 9, c->not_before, sizeof(c->not_before));
	copy_col(res, row, 10, c->not_after, sizeof(c->not_after));
	copy_col(res, row, 11, c->issued, sizeof(c->issued));
	copy_col(res, row, 12, c->superseded, sizeof(c->superseded));
	copy_col(res, row, 13, c->erased, sizeof(c->erased));
	c->log_seq = PQgetisnull(res, row, 14) ? -1 : strtoll(PQgetvalue(res, row, 14), NULL, 10);
	c->domain_id = strtoll(PQgetvalue(res, row, 15), NULL, 10);
	if (!PQgetisnull(res, row, 16)) {
		c->revocation.revoked = 1;
		c->revocation.reason = (int)strtol(PQgetvalue(res, row, 16), NULL, 10);
		copy_col(res, row, 17, c->revocation.method, sizeof(c->revocation.method));
		copy_col(res, row, 18, c->revocation.time, sizeof(c->revocation.time));
	}
	copy_col(res, row, 19, c->device, sizeof(c->device));
	return dup_col(res, row, 3, &c->name) < 0 || dup_col(res, row, 7, &c->pem) < 0 ? -1 : 0;
}

static void cert_clear(struct ks_cert *c)
{
	free(c->name);
	free(c->pem);
}

void ks_cert_free(struct ks_cert *c)
{
	if (c == NULL)
		return;
	cert_clear(c);
	free(c);
}

void ks_cert_list_free(struct ks_cert_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		cert_clear(&l->v[i]);
	free(l->v);
	free(l);
}

static int cert_fill_row(PGresult *res, int row, void *elem, void *arg)
{
	(void)arg;
	return cert_fill(res, row, elem);
}

/* Every row of res as a list (res is cleared). */
static struct ks_cert_list *cert_list(PGresult *res, struct err *e)
{
	struct ks_cert_list *l = calloc(1, sizeof(*l));
	void *v = NULL;

	if (l == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	else if (ks_store_rows_fill(res, sizeof(*l->v), cert_fill_row, NULL, &v, &l->n, e) < 0) {
		l->v = v;
		ks_cert_list_free(l);
		l = NULL;
	} else {
		l->v = v;
	}
	PQclear(res);
	return l;
}

struct ks_cert_list *ks_store_certs_by_name(struct db *db, long long domain_id, const char *name,
                                            const char *purpose, int current_only, struct err *e)
{
	char idbuf[24];
	const char *params[4] = {idbuf, name, purpose, current_only ? "true" : "false"};
	PGresult *res;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "SELECT " CERT_COLUMNS CERT_FROM
	              " WHERE c.domain_id = $1 AND c.name = $2 AND c.erased_at IS NULL"
	              " AND ($3::text IS NULL OR c.purpose = $3)"
	              " AND ($4::bool IS FALSE OR c.status = 'current')"
	              " ORDER BY c.issued_at DESC, c.id DESC",
	              4, params, e);
	return res ? cert_list(res, e) : NULL;
}

struct ks_cert_list *ks_store_server_certs(struct db *db, long long domain_id, struct err *e)
{
	char idbuf[24];
	const char *params[1] = {idbuf};
	PGresult *res;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "SELECT " CERT_COLUMNS CERT_FROM " WHERE c.domain_id = $1"
	              " AND c.kind = 'server' AND c.status = 'current' AND c.erased_at IS NULL"
	              " ORDER BY c.name, c.purpose",
	              1, params, e);
	return res ? cert_list(res, e) : NULL;
}

struct ks_cert *ks_store_cert_by(struct db *db, const char *column, const char *value,
                                 struct err *e)
{
	const char *params[1] = {value};
	struct ks_cert *c;
	PGresult *res;

	/* column is one of two fixed identifiers chosen by the caller, never input. */
	if (strcmp(column, "key_id") == 0)
		res = db_exec(db, "SELECT " CERT_COLUMNS CERT_FROM " WHERE c.key_id = $1::uuid", 1,
		              params, e);
	else
		res = db_exec(db, "SELECT " CERT_COLUMNS CERT_FROM " WHERE c.fingerprint = $1", 1,
		              params, e);
	if (res == NULL)
		return NULL;
	if (PQntuples(res) != 1) {
		PQclear(res);
		err_set(e, ERR_NOTFOUND, "not_found", "no certificate with that %s",
		        strcmp(column, "key_id") == 0 ? "key id" : "fingerprint");
		return NULL;
	}
	if ((c = malloc(sizeof(*c))) == NULL || cert_fill(res, 0, c) < 0) {
		ks_cert_free(c);
		c = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	PQclear(res);
	return c;
}

int ks_store_cert_answer(struct db *db, const char *key_id, struct ks_cert_answer *a, struct err *e)
{
	const char *params[1] = {key_id};
	PGresult *res;
	int rc = 0;

	memset(a, 0, sizeof(*a));
	res = db_exec(db,
	              "SELECT " CERT_COLUMNS ", h.jws, h.size, e.leaf, e.salt" CERT_FROM
	              " LEFT JOIN LATERAL (SELECT jws, size FROM tree_heads"
	              " WHERE domain_id = c.domain_id ORDER BY size DESC LIMIT 1) h ON true"
	              " LEFT JOIN log_entries e ON e.domain_id = c.domain_id AND e.seq = c.log_seq"
	              " WHERE c.key_id = $1::uuid",
	              1, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return err_set(e, ERR_NOTFOUND, "not_found", "no certificate with that key id");
	}
	if ((a->c = malloc(sizeof(*a->c))) == NULL || cert_fill(res, 0, a->c) < 0 ||
	    (!PQgetisnull(res, 0, 20) && (dup_col(res, 0, 20, &a->head_jws) < 0)) ||
	    (!PQgetisnull(res, 0, 22) && (dup_col(res, 0, 22, &a->leaf) < 0)) ||
	    (!PQgetisnull(res, 0, 23) && (dup_col(res, 0, 23, &a->salt) < 0)))
		rc = err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (a->head_jws != NULL)
		a->head_size = strtoll(PQgetvalue(res, 0, 21), NULL, 10);
	PQclear(res);
	if (rc < 0)
		ks_cert_answer_free(a);
	return rc;
}

void ks_cert_answer_free(struct ks_cert_answer *a)
{
	ks_cert_free(a->c);
	free(a->head_jws);
	free(a->leaf);
	free(a->salt);
	memset(a, 0, sizeof(*a));
}

/* Whether fpr is the fingerprint of name's current certificate of purpose in the domain:
 * 1 (with its key id in key_id), 0 when not, -1 on error. */
int ks_store_current_key_of(struct db *db, long long domain_id, const char *name,
                            const char *purpose, const char *fpr, char key_id[CRYPTO_UUID_LEN],
                            struct err *e)
{
	char idbuf[24];
	const char *params[4] = {fpr, idbuf, name, purpose};
	PGresult *res;
	int found;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "SELECT key_id::text FROM certificates WHERE fingerprint = $1"
	              " AND domain_id = $2 AND name = $3 AND purpose = $4"
	              " AND status = 'current'",
	              4, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found)
		snprintf(key_id, CRYPTO_UUID_LEN, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return found;
}

int ks_store_cert_for_renewal(struct db *db, long long domain_id, const char *fpr,
                              struct ks_renew_row *out, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {fpr, idbuf};
	PGresult *res;
	int found;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "SELECT key_id::text, kind, purpose, status, name,"
	              " floor(extract(epoch FROM not_before))::bigint,"
	              " floor(extract(epoch FROM not_after))::bigint,"
	              " floor(extract(epoch FROM issued_at))::bigint"
	              " FROM certificates WHERE fingerprint = $1 AND domain_id = $2 FOR UPDATE",
	              2, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found) {
		snprintf(out->key_id, sizeof(out->key_id), "%s", PQgetvalue(res, 0, 0));
		snprintf(out->kind, sizeof(out->kind), "%s", PQgetvalue(res, 0, 1));
		snprintf(out->purpose, sizeof(out->purpose), "%s", PQgetvalue(res, 0, 2));
		snprintf(out->status, sizeof(out->status), "%s", PQgetvalue(res, 0, 3));
		snprintf(out->name, sizeof(out->name), "%s", PQgetvalue(res, 0, 4));
		out->not_before = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
		out->not_after = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
		out->issued_at = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
	}
	PQclear(res);
	return found;
}

/* Record that key_id signed a request at issued (unix seconds), unless it already signed
 * one at that time or later: 1 when recorded (the request is fresh), 0 when not. */
int ks_store_key_request_newer(struct db *db, const char *key_id, long long issued_ms,
                               struct err *e)
{
	char ibuf[24];
	const char *params[2] = {key_id, ibuf};
	PGresult *res;
	int fresh;

	snprintf(ibuf, sizeof(ibuf), "%lld", issued_ms);
	res = db_exec(db,
	              "INSERT INTO key_requests (key_id, last_issued)"
	              " VALUES ($1::uuid, to_timestamp($2::bigint / 1000.0))"
	              " ON CONFLICT (key_id) DO UPDATE SET last_issued = EXCLUDED.last_issued"
	              " WHERE key_requests.last_issued < EXCLUDED.last_issued RETURNING 1",
	              2, params, e);
	if (res == NULL)
		return -1;
	fresh = PQntuples(res) == 1;
	PQclear(res);
	return fresh;
}

static void cert_row_fill(PGresult *res, int i, struct ks_cert_row *t)
{
	snprintf(t->key_id, sizeof(t->key_id), "%s", PQgetvalue(res, i, 0));
	snprintf(t->domain, sizeof(t->domain), "%s", PQgetvalue(res, i, 1));
	snprintf(t->name, sizeof(t->name), "%s", PQgetvalue(res, i, 2));
	snprintf(t->fingerprint, sizeof(t->fingerprint), "%s", PQgetvalue(res, i, 3));
	snprintf(t->serial, sizeof(t->serial), "%s", PQgetvalue(res, i, 4));
	snprintf(t->status, sizeof(t->status), "%s", PQgetvalue(res, i, 5));
	snprintf(t->secret_hash, sizeof(t->secret_hash), "%s", PQgetvalue(res, i, 6));
}

#define CERT_ROW_COLUMNS                                                                           \
	"c.key_id::text, d.name, c.name, c.fingerprint, c.serial, c.status,"                       \
	" COALESCE(c.revocation_secret_hash, '')"                                                  \
	" FROM certificates c JOIN domains d ON d.id = c.domain_id"

static int cert_row_get(struct db *db, const char *sql, const char *key_id, struct ks_cert_row *t,
                        struct err *e)
{
	const char *params[1] = {key_id};
	PGresult *res;

	res = db_exec(db, sql, 1, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return err_set(e, ERR_NOTFOUND, "not_found", "no certificate with that key id");
	}
	cert_row_fill(res, 0, t);
	PQclear(res);
	return 0;
}

/* The certificate key_id as it is now, unlocked (to learn its domain and authorise a
 * request before any lock is taken); ERR_NOTFOUND. */
int ks_store_cert_get(struct db *db, const char *key_id, struct ks_cert_row *t, struct err *e)
{
	return cert_row_get(db, "SELECT " CERT_ROW_COLUMNS " WHERE c.key_id = $1::uuid", key_id, t,
	                    e);
}

/* The certificate key_id, locked until the caller's transaction ends; ERR_NOTFOUND.
 * The caller holds its domain's lock already (ks_store_domain_lock): every path takes
 * the domain first, then certificate rows, so two of them never wait on each other. */
int ks_store_cert_lock(struct db *db, const char *key_id, struct ks_cert_row *t, struct err *e)
{
	return cert_row_get(db,
	                    "SELECT " CERT_ROW_COLUMNS " WHERE c.key_id = $1::uuid FOR UPDATE OF c",
	                    key_id, t, e);
}

/* Every certificate of name in d not revoked yet (current and superseded), oldest first,
 * locked (the caller holds the domain's lock already); *rows (malloc'd) receives them; returns how
 * many. */
int ks_store_certs_to_revoke(struct db *db, const struct ks_domain *d, const char *name,
                             struct ks_cert_row **rows, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, name};
	PGresult *res;
	int n;

	*rows = NULL;
	snprintf(idbuf, sizeof(idbuf), "%lld", d->id);
	res = db_exec(db,
	              "SELECT " CERT_ROW_COLUMNS " WHERE c.domain_id = $1 AND c.name = $2"
	              " AND c.status <> 'revoked' ORDER BY c.issued_at, c.id FOR UPDATE OF c",
	              2, params, e);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	if (n > 0 && (*rows = calloc((size_t)n, sizeof(**rows))) == NULL) {
		PQclear(res);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (int i = 0; i < n; i++)
		cert_row_fill(res, i, &(*rows)[i]);
	PQclear(res);
	return n;
}

/* Mark t revoked and record the revocation (for the CRL), in the caller's transaction. */
int ks_store_cert_revoke(struct db *db, long long domain_id, const struct ks_cert_row *t,
                         int reason, const char *method, struct err *e)
{
	char idbuf[24], rbuf[8];
	const char *upd[1] = {t->key_id};
	const char *ins[5] = {t->key_id, idbuf, t->serial, rbuf, method};

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	snprintf(rbuf, sizeof(rbuf), "%d", reason);
	if (db_run(db, "UPDATE certificates SET status = 'revoked' WHERE key_id = $1::uuid", 1, upd,
	           e) < 0)
		return -1;
	return db_run(db,
	              "INSERT INTO revocations (key_id, domain_id, serial, reason, method)"
	              " VALUES ($1::uuid, $2, $3, $4, $5)",
	              5, ins, e);
}

/* Supersede name's current certificate of purpose (and device: an encryption certificate
 * replaces only its own device's) by new_key_id, in the caller's transaction; *rows
 * (malloc'd: key_id and fingerprint) receives the superseded ones. */
int ks_store_cert_supersede(struct db *db, long long domain_id, const char *name,
                            const char *purpose, const char *device, const char *new_key_id,
                            struct ks_cert_row **rows, struct err *e)
{
	char idbuf[24];
	const char *params[5] = {idbuf, name, purpose, new_key_id, device};
	PGresult *res;
	int n;

	*rows = NULL;
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "UPDATE certificates SET status = 'superseded', superseded_at = now(),"
	              " superseded_by = $4::uuid WHERE domain_id = $1 AND name = $2"
	              " AND purpose = $3 AND device IS NOT DISTINCT FROM $5 AND status = 'current'"
	              " RETURNING key_id::text, fingerprint",
	              5, params, e);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	if (n > 0 && (*rows = calloc((size_t)n, sizeof(**rows))) == NULL) {
		PQclear(res);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (int i = 0; i < n; i++) {
		snprintf((*rows)[i].key_id, sizeof((*rows)[i].key_id), "%s", PQgetvalue(res, i, 0));
		snprintf((*rows)[i].fingerprint, sizeof((*rows)[i].fingerprint), "%s",
		         PQgetvalue(res, i, 1));
	}
	PQclear(res);
	return n;
}

int ks_store_cert_insert(struct db *db, const struct ks_cert_new *c, struct err *e)
{
	char nb[24], na[24];
	const char *params[KS_LOG_PARAMS + 12];
	char *arrays[3];
	int rc;

	if (ks_store_log_params(c->entry, params, arrays, e) < 0)
		return -1;
	snprintf(nb, sizeof(nb), "%lld", c->not_before);
	snprintf(na, sizeof(na), "%lld", c->not_after);
	const char *mine[12] = {c->key_id,      c->kind,   c->purpose, c->name, c->algorithm,
	                        c->fingerprint, c->serial, c->pem,     nb,      na,
	                        c->secret_hash, c->device};
	memcpy(params + KS_LOG_PARAMS, mine, sizeof(mine));
	rc = db_run(
	    db,
	    /* issued_at is the time of the insert, taken under the domain's lock, not the
	     * transaction's start (now()): two enrollments of one name that wait for each
	     * other are then ordered in history as they superseded each other.  The entry
	     * ($1 the domain, $2 its index) is appended by the same statement. */
	    "INSERT INTO certificates (key_id, domain_id, kind, purpose, name, algorithm,"
	    " fingerprint, serial, pem, not_before, not_after, revocation_secret_hash, issued_at,"
	    " log_seq, device) SELECT $12::uuid, $1, $13, $14, $15, $16, $17, $18, $19,"
	    " to_timestamp($20::bigint), to_timestamp($21::bigint), $22, clock_timestamp(), l.seq,"
	    " $23 FROM " KS_SQL_LOG_APPEND " AS l (seq)",
	    KS_LOG_PARAMS + 12, params, e);
	ks_store_log_params_free(arrays);
	return rc;
}

/* The domain's revocations, oldest first, as CRL entries: one allocation (the serials
 * live after the entries), one free(); *n receives how many. */
struct crl_entry *ks_store_crl_entries(struct db *db, long long domain_id, size_t *n, struct err *e)
{
	char idbuf[24];
	const char *params[1] = {idbuf};
	struct crl_entry *v;
	PGresult *res;
	size_t bytes, i;
	char *text;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db,
	              "SELECT serial, floor(extract(epoch FROM revoked_at))::bigint, reason"
	              " FROM revocations WHERE domain_id = $1 ORDER BY revoked_at",
	              1, params, e);
	if (res == NULL)
		return NULL;
	*n = (size_t)PQntuples(res);
	bytes = (*n + 1) * sizeof(*v);
	for (i = 0; i < *n; i++)
		bytes += strlen(PQgetvalue(res, (int)i, 0)) + 1;
	if ((v = calloc(1, bytes)) == NULL) {
		PQclear(res);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	text = (char *)(v + *n + 1);
	for (i = 0; i < *n; i++) {
		size_t len = strlen(PQgetvalue(res, (int)i, 0)) + 1;

		memcpy(text, PQgetvalue(res, (int)i, 0), len);
		v[i].serial_hex = text;
		text += len;
		v[i].revoked_at = (time_t)strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
		v[i].reason = (int)strtol(PQgetvalue(res, (int)i, 2), NULL, 10);
	}
	PQclear(res);
	return v;
}
