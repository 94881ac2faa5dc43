/*
 * enroll.c - certificates come into being here: enrollment tokens, user
 * enrollment (PKCS#10 proof of possession + one-time token) and server
 * certificates issued by the domain admin.
 *
 * Each issuance is one transaction: supersede the name's current certificate,
 * insert the new one, consume the token, notify the other nodes; the answer
 * is sent only after the commit, so an acknowledged certificate is durable.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cache.h"
#include "cert.h"
#include "crypto.h"
#include "log.h"
#include "ks.h"

#define TOKEN_TTL_DEFAULT (7 * 86400)
#define TOKEN_TTL_MIN 60
#define TOKEN_TTL_MAX (30 * 86400)

void ks_token_issue(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	char token[CRYPTO_TOKEN_LEN], hash[CRYPTO_HEX256_LEN], idbuf[24], ttlbuf[24];
	struct err e = {0};
	const char *addr_in;
	char *addr = NULL;
	json_t *ttl_v;
	long long ttl = TOKEN_TTL_DEFAULT;
	PGresult *res = NULL;

	if (d == NULL)
		return;
	if (ks_auth_domain_admin(r, d, &e) < 0 ||
	    (addr_in = http_json_str(r->http->json, "address", 1, &e)) == NULL)
		goto fail;
	ttl_v = json_object_get(r->http->json, "ttl");
	if (ttl_v != NULL) {
		if (!json_is_integer(ttl_v) || json_integer_value(ttl_v) < TOKEN_TTL_MIN ||
		    json_integer_value(ttl_v) > TOKEN_TTL_MAX) {
			err_set(&e, ERR_INPUT, "bad_request",
				"\"ttl\" must be a whole number of seconds from %d to %d",
				TOKEN_TTL_MIN, TOKEN_TTL_MAX);
			goto fail;
		}
		ttl = json_integer_value(ttl_v);
	}
	if ((addr = ks_lower_dup(addr_in)) == NULL)
		goto fail;
	if (name_check_address(addr, &e) < 0)
		goto fail;
	if (strcmp(ks_address_domain(addr), d->name) != 0) {
		err_set(&e, ERR_INPUT, "address_outside_domain", "%s is not an address of %s",
			addr, d->name);
		goto fail;
	}
	if (crypto_random_token(token, &e) < 0)
		goto fail;
	crypto_token_hash(token, hash);
	snprintf(idbuf, sizeof(idbuf), "%lld", d->id);
	snprintf(ttlbuf, sizeof(ttlbuf), "%lld", ttl);
	const char *params[4] = {idbuf, hash, addr, ttlbuf};
	res = db_exec(r->db,
		      "INSERT INTO enroll_tokens (domain_id, token_hash, address, expires_at)"
		      " VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint))"
		      " RETURNING to_char(expires_at AT TIME ZONE 'UTC',"
		      " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
		      4, params, &e);
	if (res == NULL)
		goto fail;
	log_info(r->http->reqid, "enrollment token for %s (hash %.8s) expires %s", addr, hash,
		 PQgetvalue(res, 0, 0));
	http_reply_json(r->resp, 201,
			json_pack("{s:s, s:s, s:s}", "token", token, "address", addr, "expires",
				  PQgetvalue(res, 0, 0)));
	PQclear(res);
	free(addr);
	ks_domain_free(d);
	return;
fail:
	if (e.kind == ERR_NONE)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	free(addr);
	ks_domain_free(d);
	ks_fail(r, &e);
}

/* What one issuance needs; filled step by step, released by issuance_free. */
struct issuance {
	const struct ks_domain *d;
	enum cert_kind kind;
	enum cert_purpose purpose;
	X509_REQ *csr;
	char *name;
	X509 *issuer;
	EVP_PKEY *issuer_key;
	X509 *cert;
	char key_id[CRYPTO_UUID_LEN];
	char revocation_secret[CRYPTO_TOKEN_LEN]; /* user certificates: shown once */
};

static void issuance_free(struct issuance *is)
{
	X509_REQ_free(is->csr);
	free(is->name);
	X509_free(is->issuer);
	EVP_PKEY_free(is->issuer_key);
	X509_free(is->cert);
	OPENSSL_cleanse(is->revocation_secret, sizeof(is->revocation_secret));
}

/* Parse and check the request: proof of possession, allowed key, a well-formed name. */
static int issuance_check_csr(struct issuance *is, const char *csr_pem, struct err *e)
{
	if ((is->csr = csr_from_pem(csr_pem, strlen(csr_pem), e)) == NULL ||
	    csr_verify(is->csr, e) < 0 ||
	    (is->name = csr_requested_name(is->csr, is->kind, e)) == NULL)
		return -1;
	if (is->kind == CERT_USER && strcmp(ks_address_domain(is->name), is->d->name) != 0)
		return err_set(e, ERR_INPUT, "address_outside_domain",
			       "the request is for %s, which is not an address of %s", is->name,
			       is->d->name);
	if (is->kind == CERT_SERVER && !name_in_domain(is->name, is->d->name))
		return err_set(e, ERR_INPUT, "address_outside_domain",
			       "the request is for %s, which is not %s or a name under it",
			       is->name, is->d->name);
	return 0;
}

static int issuance_sign(struct ks_req *r, struct issuance *is, struct err *e)
{
	struct cert_issue req = {.purpose = is->purpose,
				 .name = is->name,
				 .key_id = is->key_id,
				 .days = (int)r->ks->cfg.cert_days};
	EVP_PKEY *pub = X509_REQ_get0_pubkey(is->csr);

	if (crypto_uuid_v4(is->key_id, e) < 0)
		return -1;
	if ((is->issuer = cert_from_pem(is->d->issuer_pem, strlen(is->d->issuer_pem), e)) == NULL)
		return -1;
	if ((is->issuer_key = ks_issuer_key_load(r->ks, is->d, e)) == NULL)
		return -1;
	is->cert = cert_issue_leaf(&req, pub, is->issuer, is->issuer_key, e);
	return is->cert == NULL ? -1 : 0;
}

/* Supersede the name's current certificate for the purpose, and log each one superseded. */
static int supersede_current(struct ks_req *r, struct issuance *is, const char *idbuf,
			     struct err *e)
{
	const char *purpose = cert_purpose_name(is->purpose);
	const char *sup[4] = {idbuf, is->name, purpose, is->key_id};
	PGresult *res;
	int rc = 0;

	res = db_exec(r->db,
		      "UPDATE certificates SET status = 'superseded', superseded_at = now(),"
		      " superseded_by = $4::uuid WHERE domain_id = $1 AND name = $2"
		      " AND purpose = $3 AND status = 'current' RETURNING key_id::text, fingerprint",
		      4, sup, e);
	if (res == NULL)
		return -1;
	for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
		json_t *details = json_pack("{s:s, s:s, s:s}", "fingerprint", PQgetvalue(res, i, 1),
					    "purpose", purpose, "superseded_by", is->key_id);
		struct ks_event ev = {.type = "superseded",
				      .name = is->name,
				      .key_id = PQgetvalue(res, i, 0),
				      .details = details};
		rc = ks_log_append(r, is->d, &ev, NULL, e);
		json_decref(details);
	}
	PQclear(res);
	return rc;
}

/* Log the issuance and remember which entry recorded it. */
static int log_issued(struct ks_req *r, struct issuance *is, const char *fpr, struct err *e)
{
	json_t *details = json_pack("{s:s, s:s, s:s}", "fingerprint", fpr, "purpose",
				    cert_purpose_name(is->purpose), "kind",
				    is->kind == CERT_USER ? "user" : "server");
	struct ks_event ev = {.type = "issued", .name = is->name, .key_id = is->key_id,
			      .details = details};
	long long seq = -1;
	char seqbuf[24];
	int rc = ks_log_append(r, is->d, &ev, &seq, e);

	json_decref(details);
	if (rc < 0)
		return -1;
	snprintf(seqbuf, sizeof(seqbuf), "%lld", seq);
	const char *params[2] = {seqbuf, is->key_id};
	return db_run(r->db, "UPDATE certificates SET log_seq = $1 WHERE key_id = $2::uuid", 2,
		      params, e);
}

/* Inside the caller's transaction: supersede the current certificate, insert the new one,
 * log both.  A user certificate comes with a fresh revocation secret (stored hashed). */
static int issuance_store(struct ks_req *r, struct issuance *is, struct err *e)
{
	char idbuf[24], fpr[CERT_FPR_LEN], nb[24], na[24], secret_hash[CRYPTO_HEX256_LEN];
	char *pem = NULL, *serial = NULL;
	int rc = -1;

	snprintf(idbuf, sizeof(idbuf), "%lld", is->d->id);
	snprintf(nb, sizeof(nb), "%lld", (long long)cert_not_before(is->cert));
	snprintf(na, sizeof(na), "%lld", (long long)cert_not_after(is->cert));
	if (cert_fingerprint(is->cert, fpr, e) < 0 || (pem = cert_to_pem(is->cert, e)) == NULL ||
	    (serial = cert_serial_hex(is->cert)) == NULL)
		goto out;
	if (is->kind == CERT_USER) {
		if (crypto_random_token(is->revocation_secret, e) < 0)
			goto out;
		crypto_token_hash(is->revocation_secret, secret_hash);
	}
	/* Two enrollments of one name at once would both see "no current certificate" and
	 * collide on insert: take the domain's lock (the log append needs it anyway) first. */
	const char *lock[1] = {idbuf};
	if (db_run(r->db, "SELECT 1 FROM domains WHERE id = $1 FOR UPDATE", 1, lock, e) < 0 ||
	    supersede_current(r, is, idbuf, e) < 0)
		goto out;
	const char *ins[12] = {is->key_id,
			       idbuf,
			       is->kind == CERT_USER ? "user" : "server",
			       cert_purpose_name(is->purpose),
			       is->name,
			       crypto_key_alg_name(X509_get0_pubkey(is->cert)),
			       fpr,
			       serial,
			       pem,
			       nb,
			       na,
			       is->kind == CERT_USER ? secret_hash : NULL};
	rc = db_run(r->db,
		    "INSERT INTO certificates (key_id, domain_id, kind, purpose, name, algorithm,"
		    " fingerprint, serial, pem, not_before, not_after, revocation_secret_hash)"
		    " VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, to_timestamp($10::bigint),"
		    " to_timestamp($11::bigint), $12)",
		    12, ins, e);
	if (rc == 0)
		rc = log_issued(r, is, fpr, e);
	if (rc == 0)
		rc = ks_store_notify_change(r->db, is->d->name, e);
out:
	free(pem);
	free(serial);
	return rc;
}

/* After the commit: the certificate object plus the chain up to the root. */
static void issuance_reply(struct ks_req *r, struct issuance *is)
{
	struct err e = {0};
	json_t *obj = ks_store_cert_by(r->db, "key_id", is->key_id, &e), *head = NULL;

	if (obj == NULL || ks_log_attach_proofs(r, obj, &head, &e) < 0) {
		json_decref(obj);
		ks_fail(r, &e);
		return;
	}
	json_object_set_new(obj, "tree_head", head ? head : json_null());
	json_object_set_new(obj, "chain",
			    json_pack("[s, s]", is->d->issuer_pem, is->d->root_pem));
	/* The lost-key revocation path: the user keeps this offline; we keep its hash. */
	if (is->revocation_secret[0] != '\0')
		json_object_set_new(obj, "revocation_secret", json_string(is->revocation_secret));
	http_reply_json(r->resp, 201, obj);
}

/* Lock the token row and check it against the request; inside the transaction. */
static int token_consume(struct ks_req *r, struct issuance *is, const char *token, struct err *e)
{
	char hash[CRYPTO_HEX256_LEN], idbuf[24];
	const char *params[2] = {hash, idbuf};
	PGresult *res;
	int rc = -1;

	crypto_token_hash(token, hash);
	snprintf(idbuf, sizeof(idbuf), "%lld", is->d->id);
	res = db_exec(r->db,
		      "SELECT id, address, used_at IS NOT NULL, expires_at <= now()"
		      " FROM enroll_tokens WHERE token_hash = $1 AND domain_id = $2 FOR UPDATE",
		      2, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		err_set(e, ERR_NOTFOUND, "token_unknown",
			"the enrollment token is not known for %s", is->d->name);
	else if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
		err_set(e, ERR_CONFLICT, "token_used", "the enrollment token was already used");
	else if (strcmp(PQgetvalue(res, 0, 3), "t") == 0)
		err_set(e, ERR_GONE, "token_expired",
			"the enrollment token has expired; ask the domain admin for a new one");
	else if (strcmp(PQgetvalue(res, 0, 1), is->name) != 0)
		err_set(e, ERR_INPUT, "address_mismatch",
			"the request is for %s but the token was issued for %s", is->name,
			PQgetvalue(res, 0, 1));
	else
		rc = 0;
	if (rc == 0) {
		const char *upd[1] = {PQgetvalue(res, 0, 0)};
		rc = db_run(r->db, "UPDATE enroll_tokens SET used_at = now() WHERE id = $1", 1,
			    upd, e);
	}
	PQclear(res);
	return rc;
}

void ks_enroll(struct ks_req *r, const char *domain)
{
	struct issuance is = {.kind = CERT_USER, .purpose = CERT_PURPOSE_SMIME};
	struct ks_domain *d;
	struct err e = {0};
	const char *token, *csr;

	if ((token = http_json_str(r->http->json, "token", 1, &e)) == NULL ||
	    (csr = http_json_str(r->http->json, "csr", 1, &e)) == NULL) {
		ks_fail(r, &e);
		return;
	}
	if ((d = ks_load_domain(r, domain)) == NULL)
		return;
	is.d = d;
	if (issuance_check_csr(&is, csr, &e) < 0)
		goto fail;
	if (db_begin(r->db, &e) < 0)
		goto fail;
	if (token_consume(r, &is, token, &e) < 0 || issuance_sign(r, &is, &e) < 0 ||
	    issuance_store(r, &is, &e) < 0 || db_commit(r->db, &e) < 0) {
		db_rollback(r->db);
		goto fail;
	}
	ks_cache_invalidate(r->ks->cache);
	atomic_fetch_add(&r->ks->enrollments, 1);
	log_info(r->http->reqid, "enrolled %s key_id=%s", is.name, is.key_id);
	issuance_reply(r, &is);
	issuance_free(&is);
	ks_domain_free(d);
	return;
fail:
	issuance_free(&is);
	ks_domain_free(d);
	ks_fail(r, &e);
}

void ks_server_issue(struct ks_req *r, const char *domain)
{
	struct issuance is = {.kind = CERT_SERVER};
	struct ks_domain *d = ks_load_domain(r, domain);
	struct err e = {0};
	const char *csr, *purpose;

	if (d == NULL)
		return;
	is.d = d;
	if (ks_auth_domain_admin(r, d, &e) < 0 ||
	    (csr = http_json_str(r->http->json, "csr", 1, &e)) == NULL ||
	    (purpose = http_json_str(r->http->json, "purpose", 1, &e)) == NULL ||
	    cert_purpose_parse(purpose, &is.purpose, &e) < 0)
		goto fail;
	if (is.purpose == CERT_PURPOSE_SMIME) {
		err_set(&e, ERR_INPUT, "bad_request",
			"server certificates are for mta, keyserver or signing; users enroll");
		goto fail;
	}
	if (issuance_check_csr(&is, csr, &e) < 0 || db_begin(r->db, &e) < 0)
		goto fail;
	if (issuance_sign(r, &is, &e) < 0 || issuance_store(r, &is, &e) < 0 ||
	    db_commit(r->db, &e) < 0) {
		db_rollback(r->db);
		goto fail;
	}
	ks_cache_invalidate(r->ks->cache);
	log_info(r->http->reqid, "issued %s certificate for %s key_id=%s", purpose, is.name,
		 is.key_id);
	issuance_reply(r, &is);
	issuance_free(&is);
	ks_domain_free(d);
	return;
fail:
	issuance_free(&is);
	ks_domain_free(d);
	ks_fail(r, &e);
}

void ks_server_list(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct err e = {0};
	json_t *servers = NULL;

	if (d == NULL)
		return;
	json_t *head = NULL;

	if (ks_auth_domain_admin(r, d, &e) < 0 ||
	    (servers = ks_store_server_certs(r->db, d->id, &e)) == NULL ||
	    ks_log_attach_proofs(r, servers, &head, &e) < 0) {
		json_decref(servers);
		ks_domain_free(d);
		ks_fail(r, &e);
		return;
	}
	http_reply_json(r->resp, 200,
			json_pack("{s:s, s:o, s:o}", "domain", d->name, "servers", servers,
				  "tree_head", head ? head : json_null()));
	ks_domain_free(d);
}
