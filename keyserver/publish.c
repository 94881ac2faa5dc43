/*
 * publish.c - what the signer signs besides certificates: the domain's tree
 * heads, its CRL and its route answers.  Each is built by the signer from
 * the rows it reads itself; the HTTPS process only names the domain (and the
 * route's name), so it cannot choose what is signed.
 *
 * Tree heads.  Log entries are appended, unsigned, inside the transaction of
 * the change they record; publishing then signs, under the domain's heads
 * lock, one head for the size the log has reached: a group commit, one head
 * for every entry committed since the newest signed head (group.c gathers the
 * writers waiting for it).  Appends take the domain's row lock, not the heads
 * lock, and commit in index order, so the entries below the size read here
 * are committed and hold still while they are checked and signed, and new
 * appends go on meanwhile.  Before it signs, the signer checks that newest
 * head's signature (a head row it did not sign is not trusted), that every
 * new leaf hashes to its stored hash and names this domain and its own index,
 * and that the new tree extends the signed one (an RFC 9162 consistency proof
 * from the log's own nodes, verified against the signed root).  Heads are
 * stored in the same transaction and only sizes beyond the newest are signed,
 * so the signer never signs two heads of one size: the log cannot be forked
 * through it.
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
#include "log_edge.h"
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

/* The round opens: the heads lock, the log's size *n and the newest head row (size 0
 * when there is none), checked. */
static int round_open(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                      long long *n, struct signed_head *h, struct err *e)
{
	char root_hex[65];
	char *jws = NULL;
	int found, rc = 0;

	memset(h, 0, sizeof(*h));
	if ((found = ks_store_log_heads_open(db, sd->d->id, n, &h->size, root_hex, &jws, e)) < 0)
		return -1;
	if (found && ks_hex_decode32(root_hex, h->root) < 0)
		rc = head_refused(sd, "a malformed root", e);
	/* A row of exactly the bytes this signer signed or checked before needs no second
	 * look (signer_memo.c); any other is verified. */
	else if (found && !ks_signer_memo_head_known(sg->memo, sd, h->size, root_hex, jws) &&
	         (rc = head_check(sd, jws, h, e)) == 0)
		ks_signer_memo_head_put(sg->memo, sd, h->size, root_hex, jws);
	free(jws);
	return rc;
}

struct leaves_ctx {
	const struct ks_signer_domain *sd;
	long long from;
};

/* One entry: its leaf hashes to its stored hash and to the log's level-0 node, and
 * names this domain and its own index. */
static int leaf_check(void *arg, int i, long long seq, const char *leaf, const char *hash_hex,
                      const char *node_hex, struct err *e)
{
	struct leaves_ctx *c = arg;
	const struct ks_signer_domain *sd = c->sd;
	uint8_t want[MERKLE_HASH_LEN], stored[MERKLE_HASH_LEN], node[MERKLE_HASH_LEN];
	json_t *o = json_loads(leaf, 0, NULL);
	const char *dom = json_string_value(json_object_get(o, "domain"));
	int ok;

	if (seq != c->from + i) { /* rows come in seq order: an index skipped is a gap */
		json_decref(o);
		return err_set(e, ERR_FORBIDDEN, "log_damaged", "the log of %s has gaps",
		               sd->d->name);
	}
	ok = o != NULL && dom != NULL && strcmp(dom, sd->d->name) == 0 &&
	     json_integer_value(json_object_get(o, "seq")) == seq &&
	     merkle_leaf_hash(leaf, strlen(leaf), want, e) == 0 &&
	     ks_hex_decode32(hash_hex, stored) == 0 && ks_hex_decode32(node_hex, node) == 0 &&
	     memcmp(want, stored, MERKLE_HASH_LEN) == 0 && memcmp(want, node, MERKLE_HASH_LEN) == 0;

	json_decref(o);
	if (ok)
		return 0;
	log_err(NULL, "signer: entry %lld of the log of %s is not well formed; no head signed", seq,
	        sd->d->name);
	return err_set(e, ERR_FORBIDDEN, "log_damaged",
	               "entry %lld of the log of %s is not well formed", seq, sd->d->name);
}

/* Entries [from, to) with their level-0 nodes, in one query: no gaps, each well formed
 * (leaf_check). */
static int leaves_check(struct db *db, const struct ks_signer_domain *sd, const char *domain_id,
                        long long from, long long to, struct err *e)
{
	struct leaves_ctx c = {.sd = sd, .from = from};
	int n = ks_store_log_each_leaf(db, domain_id, from, to, leaf_check, &c, e);

	if (n < 0)
		return -1;
	if (n != to - from)
		return err_set(e, ERR_FORBIDDEN, "log_damaged", "the log of %s has gaps",
		               sd->d->name);
	return 0;
}

/* Sign and store the head of size, after checking it extends the signed head h. */
static int head_sign(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                     struct ks_log_nodes *nodes, const struct signed_head *h, long long size,
                     char **keep, struct err *e)
{
	uint8_t root[MERKLE_HASH_LEN], proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	char now[32], hex[65];
	json_t *payload;
	char *jws;
	int n = 0, rc;

	/* A dry run notes the nodes the root and the proof need; one query fetches them. */
	nodes->recording = 1;
	if (merkle_root((uint64_t)size, ks_log_node, nodes, root, e) < 0 ||
	    (h->size > 0 && merkle_consistency_proof((uint64_t)h->size, (uint64_t)size, ks_log_node,
	                                             nodes, proof, &n, e) < 0) ||
	    ks_log_nodes_fetch(nodes, e) < 0 ||
	    merkle_root((uint64_t)size, ks_log_node, nodes, root, e) < 0)
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
	rc = ks_store_log_head_put(db, nodes->domain_id, size, hex, jws, e);
	if (rc == 0) /* should the commit fail, the row read next differs: checked then */
		ks_signer_memo_head_put(sg->memo, sd, size, hex, jws);
	if (rc == 0 && keep != NULL) {
		*keep = jws;
		jws = NULL;
	}
	free(jws);
	return rc;
}

int ks_publish_heads_in(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                        struct ks_log_nodes *nodes, struct ks_log_own *own, long long *size,
                        struct err *e)
{
	struct signed_head h;
	long long n, check_to;

	/* One signer at a time per domain, on every node; entries below n hold still. */
	if (round_open(sg, db, sd, &n, &h, e) < 0)
		return -1;
	if (h.size > n)
		return err_set(e, ERR_FORBIDDEN, "log_damaged",
		               "the log of %s is shorter than its signed head", sd->d->name);
	/* The entries this transaction appended itself, up to the log's size, were made and
	 * hashed here and no other transaction can touch them before it commits: only those
	 * before them are read back and checked. */
	check_to = own != NULL && own->to == n && own->from >= h.size ? own->from : n;
	/* One head for the whole batch: the newest size only. */
	if (h.size < n &&
	    ((h.size < check_to &&
	      leaves_check(db, sd, nodes->domain_id, h.size, check_to, e) < 0) ||
	     head_sign(sg, db, sd, nodes, &h, n, own != NULL ? &own->jws : NULL, e) < 0))
		return -1;
	*size = n;
	return 0;
}

int ks_publish_heads(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                     long long *size, struct err *e)
{
	struct ks_log_nodes nodes;
	long long n = 0;

	ks_log_nodes_init(&nodes, db, sd->d->id);
	ks_log_nodes_edge(&nodes, sg->ks.edge);
	if (db_begin(db, e) < 0)
		return -1;
	if (ks_publish_heads_in(sg, db, sd, &nodes, NULL, &n, e) < 0 || db_commit(db, e) < 0) {
		db_rollback(db);
		return -1;
	}
	/* Committed: the nodes of the root and its proof are the edge the next round reads. */
	ks_log_edge_keep(sg->ks.edge, &nodes);
	*size = n;
	return 0;
}

/* ---- the CRL ---- */

unsigned char *ks_sign_crl(struct db *db, const struct ks_signer_domain *sd, size_t *len,
                           struct err *e)
{
	struct crl_entry *v;
	unsigned char *der = NULL;
	X509_CRL *crl = NULL;
	size_t n;

	if ((v = ks_store_crl_entries(db, sd->d->id, &n, e)) == NULL)
		return NULL;
	/* The number of revocations only grows: a monotonic CRL number. */
	if ((crl = crl_make(sd->issuer, sd->key, v, n, (long long)n + 1, CRL_NEXT_UPDATE, e)) !=
	    NULL)
		der = crl_to_der(crl, len, e);
	X509_CRL_free(crl);
	free(v);
	return der;
}

/* ---- route answers ---- */

/*
 * The address's direct endpoint in force (PROTOCOL.md §6.5) rides in its route answer:
 * "direct" with its own expiry, and the answer's ttl cut to what is left of it so that
 * no cache keeps the answer past the registration.  An address with a direct endpoint
 * but no route has an answer all the same, with "direct" alone: the sender falls back
 * to the domain's MX hosts.
 */
static int route_with_direct(struct db *db, const struct ks_signer_domain *sd, const char *name,
                             const struct ks_route *known, struct ks_route *rt,
                             struct ks_direct *dr, struct err *e)
{
	struct err re = {0};
	int has = 0;

	if (strchr(name, '@') != NULL &&
	    (has = ks_store_direct_valid(db, sd->d->id, name, dr, e)) < 0)
		return -1;
	if (known != NULL) {
		*rt = *known; /* borrowed members: the caller's */
	} else if (ks_store_route_effective(db, sd->d, name, rt, &re) < 0) {
		if (re.kind != ERR_NOTFOUND || !has) {
			*e = re;
			return -1;
		}
		rt->ttl = KS_ROUTE_TTL_DEFAULT;
		snprintf(rt->scope_name, sizeof(rt->scope_name), "%s", name);
		rt->log_seq = -1;
	}
	if (has) {
		long long left = dr->expires - (long long)time(NULL);
		if (left < rt->ttl)
			rt->ttl = left > 1 ? (int)left : 1;
	}
	return has;
}

char *ks_sign_route(struct db *db, const struct ks_signer_domain *sd, const char *name,
                    const struct ks_route *known, struct err *e)
{
	struct ks_route rt = {0};
	struct ks_direct dr = {0};
	json_t *payload;
	char *jws = NULL;
	int has;

	if (strcmp(name, sd->d->name) != 0 && strcmp(ks_address_domain(name), sd->d->name) != 0) {
		err_set(e, ERR_INPUT, "address_outside_domain", "%s is not %s or an address of it",
		        name, sd->d->name);
		return NULL;
	}
	if ((has = route_with_direct(db, sd, name, known, &rt, &dr, e)) < 0)
		return NULL;
	if ((payload = ks_route_payload(sd->d, name, &rt)) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	else if (has && json_object_set_new(payload, "direct", ks_direct_json(&dr)) < 0)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	else
		jws = sign_json(sd, payload, "anchor-route+jws", e);
	json_decref(payload);
	if (known == NULL)
		ks_route_free(&rt);
	return jws;
}
