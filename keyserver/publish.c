/*
 * publish.c - what the signer signs besides certificates: the domain's tree
 * heads, its CRL and its route answers.  Each is built by the signer from
 * the rows it reads itself; the HTTPS process only names the domain (and the
 * route's name), so it cannot choose what is signed.
 *
 * Tree heads.  Log entries are appended, unsigned, inside the transaction of
 * the change they record; publishing then signs, under the domain's lock, a
 * head for every size the log reached since the newest signed head.  Before
 * it signs, the signer checks that newest head's signature (a head row it did
 * not sign is not trusted), that every new leaf hashes to its stored hash and
 * names this domain and its own index, and that each new tree extends the
 * signed one (an RFC 9162 consistency proof from the log's own nodes,
 * verified against the signed root).  Heads are stored in the same
 * transaction and only sizes beyond the newest are signed, so the signer
 * never signs two heads of one size: the log cannot be forked through it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "pki/cert.h"
#include "pki/crl.h"
#include "pki/jws.h"
#include "core/log.h"
#include "pki/merkle.h"
#include "ks_signer.h"
#include "store.h"

#define CRL_NEXT_UPDATE (24 * 3600)

/* payload as compact JSON with sorted keys, signed by the domain's issuer, x5c [issuer, root]. */
static char *sign_json(const struct ks_signer_domain *sd, json_t *payload, const char *typ,
                       struct err *e)
{
	char *text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
	X509 *chain[2] = {sd->issuer, sd->root};
	char *jws;

	if (text == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	jws = jws_sign(text, strlen(text), sd->key, chain, 2, typ, e);
	free(text);
	return jws;
}

static void rfc3339(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- tree heads ---- */

struct signed_head {
	long long size;
	uint8_t root[MERKLE_HASH_LEN];
};

static int head_refused(const struct ks_signer_domain *sd, const char *why, struct err *e)
{
	log_err(NULL,
	        "signer: the newest tree head of %s is not one a signer made (%s): "
	        "refusing to sign on top of it",
	        sd->d->name, why);
	return err_set(e, ERR_FORBIDDEN, "head_unsigned",
	               "the newest tree head of %s does not verify; the signer signs no more heads",
	               sd->d->name);
}

/* The head row's JWS: our issuer's signature over exactly this domain, size and root. */
static int head_check(const struct ks_signer_domain *sd, const char *jws,
                      const struct signed_head *h, struct err *e)
{
	char pin[CRYPTO_PIN_MAX];
	const char *pins[1] = {pin};
	struct jws_verified v = {0};
	struct err why = {0};
	json_t *p = NULL;
	uint8_t root[MERKLE_HASH_LEN];
	int ok = 0;

	if (crypto_key_pin(X509_get0_pubkey(sd->root), pin, e) < 0)
		return -1;
	if (jws_verify(jws, strlen(jws), pins, 1, &v, &why) == 0 &&
	    crypto_key_matches(X509_get0_pubkey(v.leaf), sd->key) &&
	    (p = json_loads(v.payload, 0, NULL)) != NULL &&
	    json_is_string(json_object_get(p, "type")) &&
	    strcmp(json_string_value(json_object_get(p, "type")), "anchor-tree-head") == 0 &&
	    json_is_string(json_object_get(p, "domain")) &&
	    strcmp(json_string_value(json_object_get(p, "domain")), sd->d->name) == 0 &&
	    json_integer_value(json_object_get(p, "size")) == h->size &&
	    merkle_hash_from_json(json_object_get(p, "root_hash"), root, &why) == 0 &&
	    memcmp(root, h->root, MERKLE_HASH_LEN) == 0)
		ok = 1;
	json_decref(p);
	jws_verified_free(&v);
	return ok ? 0 : head_refused(sd, why.msg[0] ? why.msg : "its payload differs", e);
}

/* The newest head row (size 0 when there is none), checked. */
static int newest_head(struct db *db, const struct ks_signer_domain *sd, const char *idbuf,
                       struct signed_head *h, struct err *e)
{
	const char *params[1] = {idbuf};
	PGresult *res;
	int rc = 0;

	memset(h, 0, sizeof(*h));
	res = db_exec(db,
	              "SELECT size, encode(root_hash, 'hex'), jws FROM tree_heads"
	              " WHERE domain_id = $1 ORDER BY size DESC LIMIT 1",
	              1, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		h->size = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		rc = ks_hex_decode32(PQgetvalue(res, 0, 1), h->root) < 0
		         ? head_refused(sd, "a malformed root", e)
		         : head_check(sd, PQgetvalue(res, 0, 2), h, e);
	}
	PQclear(res);
	return rc;
}

/* Entries [from, to): each leaf hashes to its stored hash and to the log's level-0
 * node, and names this domain and its own index. */
static int leaves_check(struct db *db, const struct ks_signer_domain *sd,
                        struct ks_log_nodes *nodes, long long from, long long to, struct err *e)
{
	char fbuf[24], tbuf[24];
	const char *params[3] = {nodes->domain_id, fbuf, tbuf};
	PGresult *res;
	int rc = 0;

	snprintf(fbuf, sizeof(fbuf), "%lld", from);
	snprintf(tbuf, sizeof(tbuf), "%lld", to);
	res = db_exec(db,
	              "SELECT seq, leaf, encode(leaf_hash, 'hex') FROM log_entries"
	              " WHERE domain_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
	              3, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != to - from)
		rc =
		    err_set(e, ERR_FORBIDDEN, "log_damaged", "the log of %s has gaps", sd->d->name);
	for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
		long long seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		const char *leaf = PQgetvalue(res, i, 1);
		uint8_t want[MERKLE_HASH_LEN], stored[MERKLE_HASH_LEN], node[MERKLE_HASH_LEN];
		json_t *o = json_loads(leaf, 0, NULL);
		const char *dom = json_string_value(json_object_get(o, "domain"));
		int ok = seq == from + i && o != NULL && dom != NULL &&
		         strcmp(dom, sd->d->name) == 0 &&
		         json_integer_value(json_object_get(o, "seq")) == seq &&
		         merkle_leaf_hash(leaf, strlen(leaf), want, e) == 0 &&
		         ks_hex_decode32(PQgetvalue(res, i, 2), stored) == 0 &&
		         ks_log_node(nodes, 0, (uint64_t)seq, node, e) == 0 &&
		         memcmp(want, stored, MERKLE_HASH_LEN) == 0 &&
		         memcmp(want, node, MERKLE_HASH_LEN) == 0;
		json_decref(o);
		if (!ok) {
			log_err(NULL,
			        "signer: entry %lld of the log of %s is not well formed; "
			        "no head signed",
			        seq, sd->d->name);
			rc = err_set(e, ERR_FORBIDDEN, "log_damaged",
			             "entry %lld of the log of %s is not well formed", seq,
			             sd->d->name);
		}
	}
	PQclear(res);
	return rc;
}

/* Sign and store the head of size, after checking it extends the signed head h. */
static int head_sign(struct db *db, const struct ks_signer_domain *sd, struct ks_log_nodes *nodes,
                     const struct signed_head *h, long long size, struct err *e)
{
	uint8_t root[MERKLE_HASH_LEN], proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	char now[32], hex[65], sizebuf[24];
	json_t *payload;
	char *jws;
	int n = 0, rc;

	if (merkle_root((uint64_t)size, ks_log_node, nodes, root, e) < 0)
		return -1;
	if (h->size > 0 &&
	    (merkle_consistency_proof((uint64_t)h->size, (uint64_t)size, ks_log_node, nodes, proof,
	                              &n, e) < 0 ||
	     merkle_verify_consistency((uint64_t)h->size, (uint64_t)size, h->root, root,
	                               (const uint8_t(*)[MERKLE_HASH_LEN])proof, n, e) < 0)) {
		log_err(NULL,
		        "signer: the log of %s at size %lld does not extend its signed head "
		        "of size %lld: %s; no head signed",
		        sd->d->name, size, h->size, e->msg);
		return err_set(e, ERR_FORBIDDEN, "log_fork",
		               "the log of %s does not extend its signed head", sd->d->name);
	}
	rfc3339(time(NULL), now);
	payload = json_pack("{s:s, s:s, s:I, s:o, s:s}", "type", "anchor-tree-head", "domain",
	                    sd->d->name, "size", (json_int_t)size, "root_hash",
	                    merkle_hash_to_json(root, e), "timestamp", now);
	jws = payload ? sign_json(sd, payload, "anchor-tree-head+jws", e) : NULL;
	json_decref(payload);
	if (jws == NULL)
		return e->kind != ERR_NONE ? -1
		                           : err_set(e, ERR_INTERNAL, "internal", "out of memory");
	crypto_hex(root, MERKLE_HASH_LEN, hex);
	snprintf(sizebuf, sizeof(sizebuf), "%lld", size);
	const char *params[4] = {nodes->domain_id, sizebuf, hex, jws};
	rc = db_run(db,
	            "INSERT INTO tree_heads (domain_id, size, root_hash, jws)"
	            " VALUES ($1, $2, decode($3, 'hex'), $4)",
	            4, params, e);
	free(jws);
	return rc;
}

int ks_publish_heads(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                     long long *size, struct err *e)
{
	struct ks_log_nodes nodes;
	struct signed_head h;
	long long n;

	(void)sg;
	ks_log_nodes_init(&nodes, db, sd->d->id);
	const char *lock[1] = {nodes.domain_id};
	if (db_begin(db, e) < 0)
		return -1;
	/* Appends take this lock too: the log holds still while it is signed. */
	if (db_run(db, "SELECT 1 FROM domains WHERE id = $1 FOR UPDATE", 1, lock, e) < 0 ||
	    (n = ks_log_size(db, sd->d->id, e)) < 0 ||
	    newest_head(db, sd, nodes.domain_id, &h, e) < 0)
		goto fail;
	if (h.size > n) {
		err_set(e, ERR_FORBIDDEN, "log_damaged",
		        "the log of %s is shorter than its signed head", sd->d->name);
		goto fail;
	}
	if (h.size < n && leaves_check(db, sd, &nodes, h.size, n, e) < 0)
		goto fail;
	for (long long s = h.size + 1; s <= n; s++)
		if (head_sign(db, sd, &nodes, &h, s, e) < 0)
			goto fail;
	if (db_commit(db, e) < 0)
		goto fail;
	*size = n;
	return 0;
fail:
	db_rollback(db);
	return -1;
}

/* ---- the CRL ---- */

unsigned char *ks_sign_crl(struct db *db, const struct ks_signer_domain *sd, size_t *len,
                           struct err *e)
{
	char idbuf[24];
	const char *params[1] = {idbuf};
	struct crl_entry *v = NULL;
	unsigned char *der = NULL;
	X509_CRL *crl = NULL;
	PGresult *res;
	size_t n;

	snprintf(idbuf, sizeof(idbuf), "%lld", sd->d->id);
	res = db_exec(db,
	              "SELECT serial, floor(extract(epoch FROM revoked_at))::bigint, reason"
	              " FROM revocations WHERE domain_id = $1 ORDER BY revoked_at",
	              1, params, e);
	if (res == NULL)
		return NULL;
	n = (size_t)PQntuples(res);
	if ((v = calloc(n + 1, sizeof(*v))) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		v[i].serial_hex = PQgetvalue(res, (int)i, 0);
		v[i].revoked_at = (time_t)strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
		v[i].reason = (int)strtol(PQgetvalue(res, (int)i, 2), NULL, 10);
	}
	/* The number of revocations only grows: a monotonic CRL number. */
	if ((crl = crl_make(sd->issuer, sd->key, v, n, (long long)n + 1, CRL_NEXT_UPDATE, e)) !=
	    NULL)
		der = crl_to_der(crl, len, e);
out:
	X509_CRL_free(crl);
	free(v);
	PQclear(res);
	return der;
}

/* ---- route answers ---- */

char *ks_sign_route(struct db *db, const struct ks_signer_domain *sd, const char *name,
                    struct err *e)
{
	struct ks_route rt = {0};
	json_t *payload;
	char *jws = NULL;

	if (strcmp(name, sd->d->name) != 0 && strcmp(ks_address_domain(name), sd->d->name) != 0) {
		err_set(e, ERR_INPUT, "address_outside_domain", "%s is not %s or an address of it",
		        name, sd->d->name);
		return NULL;
	}
	if (ks_store_route_effective(db, sd->d, name, &rt, e) < 0)
		return NULL;
	if ((payload = ks_route_payload(sd->d, name, &rt)) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	else
		jws = sign_json(sd, payload, "anchor-route+jws", e);
	json_decref(payload);
	ks_route_free(&rt);
	return jws;
}
