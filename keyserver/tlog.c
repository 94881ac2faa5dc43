/*
 * tlog.c - each domain's transparency log, hashed as RFC 9162 does
 * (lib/pki/merkle.c), stored in PostgreSQL, and also read as the change feed.
 *
 * An append runs inside the transaction of the change it records, under a
 * lock on the domain row, so entries are gap-free and in commit order: the
 * leaf text and the perfect-subtree hashes it completes.  Once that
 * transaction has committed, the signer process signs one tree head for the
 * newest size, covering every entry committed since the last head
 * (ks_log_publish, a group commit: group.c; keyserver/publish.c), after
 * checking that the log extends the head it signed before.  A leaf names its subject only as
 * SHA-256(salt ":" name); salt and name sit beside the leaf and can be erased
 * without changing a hash.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki/crypto.h"
#include "core/log.h"
#include "pki/merkle.h"
#include "cert_json.h"
#include "log_batch.h"
#include "store.h"

#define LOG_PAGE_MAX 1000
#define SALT_BYTES 16

static void rfc3339_now(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The leaf text: canonical JSON (sorted keys, compact) of the event. */
static char *leaf_text(const struct ks_domain *d, const struct ks_event *ev, long long seq,
                       const char *salt, char subject[CRYPTO_HEX256_LEN])
{
	char now[32], *text = NULL;
	json_t *o;

	rfc3339_now(now);
	o = json_pack("{s:i, s:I, s:s, s:s, s:s}", "v", 1, "seq", (json_int_t)seq, "domain",
	              d->name, "type", ev->type, "time", now);
	if (o == NULL)
		return NULL;
	if (ev->details != NULL)
		json_object_update_missing(o, ev->details);
	if (ev->name != NULL) {
		char *salted = NULL;
		if (asprintf(&salted, "%s:%s", salt, ev->name) < 0)
			goto out;
		crypto_sha256_hex(salted, strlen(salted), subject);
		free(salted);
		json_object_set_new(o, "subject", json_string(subject));
	}
	if (ev->key_id != NULL)
		json_object_set_new(o, "key_id", json_string(ev->key_id));
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
out:
	json_decref(o);
	return text;
}

int ks_log_prepare(struct ks_req *r, const struct ks_domain *d, const struct ks_event *ev,
                   struct ks_log_pending *p, struct err *e)
{
	uint8_t leaf_hash[MERKLE_HASH_LEN], salt_raw[SALT_BYTES];
	char subject[CRYPTO_HEX256_LEN];

	memset(&p->row, 0, sizeof(p->row));
	p->leaf = NULL;
	p->nnodes = 0;
	if ((p->seq = ks_log_batch_start(r, d, &p->local, &p->ctx, e)) < 0 ||
	    crypto_random_bytes(salt_raw, sizeof(salt_raw), e) < 0)
		goto fail;
	crypto_hex(salt_raw, sizeof(salt_raw), p->salt);
	if ((p->leaf = leaf_text(d, ev, p->seq, p->salt, subject)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if (merkle_leaf_hash(p->leaf, strlen(p->leaf), leaf_hash, e) < 0 ||
	    merkle_append_nodes((uint64_t)p->seq, leaf_hash, ks_log_batch_node, p->ctx, p->nodes,
	                        &p->nnodes, e) < 0)
		goto fail;
	crypto_hex(leaf_hash, MERKLE_HASH_LEN, p->hash_hex);
	snprintf(p->seqbuf, sizeof(p->seqbuf), "%lld", p->seq);
	p->row = (struct ks_log_append_row){.domain_id = p->ctx->domain_id,
	                                    .seq = p->seqbuf,
	                                    .ev = ev,
	                                    .leaf = p->leaf,
	                                    .hash_hex = p->hash_hex,
	                                    .salt = p->salt,
	                                    .nodes = p->nodes,
	                                    .nnodes = p->nnodes};
	return 0;
fail:
	ks_log_finish(r, p, -1);
	return -1;
}

int ks_log_finish(struct ks_req *r, struct ks_log_pending *p, int stored)
{
	if (stored == 0 && p->ctx != &p->local) /* the batch goes on from here */
		ks_log_batch_appended(r->log_batch, p->seq, p->nodes, p->nnodes);
	if (stored < 0) /* /metrics, for the alerts */
		atomic_fetch_add(&r->ks->log_append_failures, 1);
	free(p->leaf);
	p->leaf = NULL;
	p->row.leaf = NULL;
	return stored;
}

int ks_log_append(struct ks_req *r, const struct ks_domain *d, const struct ks_event *ev,
                  long long *seq_out, struct err *e)
{
	struct ks_log_pending p;

	if (ks_log_prepare(r, d, ev, &p, e) < 0)
		return -1;
	if (ks_log_finish(r, &p, ks_store_log_append(r->db, &p.row, e)) < 0)
		return -1;
	if (seq_out != NULL)
		*seq_out = p.seq;
	return 0;
}

struct publish_arg {
	struct ks *ks;
	const char *domain;
};

static int publish_round(void *arg, long long *size, struct err *e)
{
	const struct publish_arg *p = arg;

	return ks_signer_publish(p->ks, p->domain, size, e);
}

void ks_log_publish(struct ks_req *r, const struct ks_domain *d)
{
	struct publish_arg p = {.ks = r->ks, .domain = d->name};
	struct err e = {0};
	long long size = 0;
	int rc = r->ks->heads != NULL
	             ? ks_group_run(r->ks->heads, d->id, publish_round, &p, &size, &e)
	             : publish_round(&p, &size, &e);

	if (rc < 0)
		log_warn(r->http ? r->http->reqid : NULL,
		         "the new tree head of %s is not signed yet: %s (%s)", d->name, e.msg,
		         e.code);
}

/* ---- reading ---- */

static int query_ll(const struct http_request *h, const char *name, long long def, long long min,
                    long long max, long long *out, struct err *e)
{
	const char *v = http_query_arg(h, name);
	char *end;

	if (v == NULL) {
		if (def < 0)
			return err_set(e, ERR_INPUT, "bad_request", "the query needs %s=", name);
		*out = def;
		return 0;
	}
	*out = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || *out < min || *out > max)
		return err_set(e, ERR_INPUT, "bad_request", "%s must be a number from %lld to %lld",
		               name, min, max);
	return 0;
}

/* A change whose head the signer could not sign at the time (it was restarting) gets
 * it when the newest head is read. */
static void publish_missing(struct ks_req *r, const struct ks_domain *d)
{
	struct err e = {0};
	long long newest = 0, size = ks_log_size(r->db, d->id, &e);
	char *jws = size > 0 ? ks_store_log_head_jws(r->db, d->id, 0, &newest, &e) : NULL;

	free(jws);
	if (size > 0 && newest < size)
		ks_log_publish(r, d);
}

void ks_log_head(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct err e = {0};
	long long size = 0;
	char *jws;

	if (d == NULL)
		return;
	if (query_ll(r->http, "size", 0, 1, INT64_MAX, &size, &e) == 0 && size == 0)
		publish_missing(r, d);
	if (e.kind != ERR_NONE ||
	    (jws = ks_store_log_head_jws(r->db, d->id, size, NULL, &e)) == NULL)
		ks_fail(r, &e);
	else
		http_reply_text(r->resp, 200, "application/jose+json", jws, strlen(jws));
	/* A head names its size: once a size has a head it never changes, but "the newest"
	 * does with every append, so it is cached only briefly. */
	if (size == 0 && r->cache_max_age > 10)
		r->cache_max_age = 10;
	ks_domain_free(d);
}

void ks_log_entries(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct err e = {0}, ignore = {0};
	struct ks_log_page *page = NULL;
	long long start = 0, end = 0;
	json_t *arr;
	int admin;

	if (d == NULL)
		return;
	if (query_ll(r->http, "start", 0, 0, INT64_MAX, &start, &e) < 0 ||
	    query_ll(r->http, "end", start + LOG_PAGE_MAX, start, INT64_MAX, &end, &e) < 0)
		goto fail;
	if (end - start > LOG_PAGE_MAX)
		end = start + LOG_PAGE_MAX;
	/* Outsiders get the leaves; the domain's own admin also gets the names, to audit. */
	admin = http_bearer_token(r->http) != NULL && ks_auth_domain_admin(r, d, &ignore) == 0;
	if (http_bearer_token(r->http) != NULL && !admin) {
		e = ignore;
		goto fail;
	}
	if ((page = ks_store_log_entries(r->db, d->id, start, end, admin, &e)) == NULL)
		goto fail;
	if ((arr = ks_log_page_json(page)) == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	http_reply_json(r->resp, 200,
	                json_pack("{s:s, s:I, s:o}", "domain", d->name, "start", (json_int_t)start,
	                          "entries", arr));
	ks_log_page_free(page);
	ks_domain_free(d);
	return;
fail:
	ks_log_page_free(page);
	ks_domain_free(d);
	ks_fail(r, &e);
}

void ks_feed(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct ks_log_page *page = NULL;
	struct err e = {0};
	long long since = 0, limit = 0, size;
	json_t *arr = NULL;

	if (d == NULL)
		return;
	if (query_ll(r->http, "since", 0, 0, INT64_MAX, &since, &e) < 0 ||
	    query_ll(r->http, "limit", 100, 1, LOG_PAGE_MAX, &limit, &e) < 0 ||
	    (size = ks_log_size(r->db, d->id, &e)) < 0 ||
	    (page = ks_store_log_entries(r->db, d->id, since, since + limit, 0, &e)) == NULL ||
	    (arr = ks_log_page_json(page)) == NULL) {
		if (e.kind == ERR_NONE)
			err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		ks_log_page_free(page);
		ks_domain_free(d);
		ks_fail(r, &e);
		return;
	}
	http_reply_json(r->resp, 200,
	                json_pack("{s:s, s:I, s:I, s:I, s:o}", "domain", d->name, "since",
	                          (json_int_t)since, "next",
	                          (json_int_t)(since + (long long)page->n), "size",
	                          (json_int_t)size, "entries", arr));
	ks_log_page_free(page);
	ks_domain_free(d);
}

void ks_log_consistency(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	struct ks_log_nodes ctx;
	struct err e = {0};
	long long first = 0, second = 0, size;
	int n = 0;

	if (d == NULL)
		return;
	ks_log_nodes_init(&ctx, r->db, d->id);
	ks_log_nodes_edge(&ctx, r->ks->edge);
	if (query_ll(r->http, "first", -1, 1, INT64_MAX, &first, &e) < 0 ||
	    query_ll(r->http, "second", -1, first, INT64_MAX, &second, &e) < 0 ||
	    (size = ks_log_size(r->db, d->id, &e)) < 0)
		goto fail;
	if (second > size) {
		err_set(&e, ERR_NOTFOUND, "not_found", "the log has only %lld entries", size);
		goto fail;
	}
	/* A dry run notes the nodes the proof needs; one query fetches them. */
	ctx.recording = 1;
	if (merkle_consistency_proof((uint64_t)first, (uint64_t)second, ks_log_node, &ctx, proof,
	                             &n, &e) < 0 ||
	    ks_log_nodes_fetch(&ctx, &e) < 0 ||
	    merkle_consistency_proof((uint64_t)first, (uint64_t)second, ks_log_node, &ctx, proof,
	                             &n, &e) < 0)
		goto fail;
	http_reply_json(r->resp, 200,
	                json_pack("{s:I, s:I, s:o}", "first", (json_int_t)first, "second",
	                          (json_int_t)second, "proof", merkle_proof_to_json(proof, n, &e)));
	ks_domain_free(d);
	return;
fail:
	ks_domain_free(d);
	ks_fail(r, &e);
}

/* PATH(seq, D[size]) as JSON. */
static json_t *inclusion_json(struct ks_log_nodes *ctx, long long seq, long long size,
                              struct err *e)
{
	uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	int n = 0;

	ctx->recording = 1; /* a dry run notes the nodes; one query fetches them */
	if (merkle_inclusion_proof((uint64_t)seq, (uint64_t)size, ks_log_node, ctx, proof, &n, e) <
	        0 ||
	    ks_log_nodes_fetch(ctx, e) < 0 ||
	    merkle_inclusion_proof((uint64_t)seq, (uint64_t)size, ks_log_node, ctx, proof, &n, e) <
	        0)
		return NULL;
	return json_pack("{s:I, s:I, s:o}", "seq", (json_int_t)seq, "tree_size", (json_int_t)size,
	                 "proof", merkle_proof_to_json(proof, n, e));
}

void ks_log_inclusion(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct ks_log_nodes ctx;
	struct err e = {0};
	long long seq = 0, size = 0, max;
	json_t *o;

	if (d == NULL)
		return;
	ks_log_nodes_init(&ctx, r->db, d->id);
	ks_log_nodes_edge(&ctx, r->ks->edge);
	if ((max = ks_log_size(r->db, d->id, &e)) < 0 ||
	    query_ll(r->http, "size", max, 1, max, &size, &e) < 0 ||
	    query_ll(r->http, "seq", -1, 0, size - 1, &seq, &e) < 0 ||
	    (o = inclusion_json(&ctx, seq, size, &e)) == NULL) {
		ks_domain_free(d);
		ks_fail(r, &e);
		return;
	}
	http_reply_json(r->resp, 200, o);
	ks_domain_free(d);
}

/* The inclusion proof with the entry's leaf and salt: given (the caller's, freed here), or
 * read when leaf is NULL. */
static int proof_with_leaf(struct ks_req *r, long long domain_id, long long seq, long long size,
                           char *leaf, char *salt, json_t **out, struct err *e)
{
	struct ks_log_nodes ctx;

	ks_log_nodes_init(&ctx, r->db, domain_id);
	ks_log_nodes_edge(&ctx, r->ks->edge);
	*out = inclusion_json(&ctx, seq, size, e);
	if (*out == NULL || (leaf == NULL && ks_store_log_entry_leaf(r->db, ctx.domain_id, seq,
	                                                             &leaf, &salt, e) < 0)) {
		json_decref(*out);
		*out = NULL;
		free(leaf);
		free(salt);
		return -1;
	}
	if (leaf != NULL)
		json_object_set_new(*out, "leaf", json_string(leaf));
	if (salt != NULL)
		json_object_set_new(*out, "salt", json_string(salt));
	free(leaf);
	free(salt);
	return 0;
}

int ks_log_proof_leaf(struct ks_req *r, long long domain_id, long long seq, long long size,
                      char *leaf, char *salt, json_t **out, struct err *e)
{
	return proof_with_leaf(r, domain_id, seq, size, leaf, salt, out, e);
}

int ks_log_proof_for(struct ks_req *r, long long domain_id, long long seq, long long size,
                     json_t **out, struct err *e)
{
	return proof_with_leaf(r, domain_id, seq, size, NULL, NULL, out, e);
}

/* The newest signed head of one answer's domain, read once for all its proofs. */
struct newest_head {
	char *jws;
	long long size;
};

/* Entry seq's proof to the newest head (*proof NULL when that head does not cover it yet:
 * its head is being signed, and it goes out without a proof rather than not at all).  The
 * answer's first proof reads the head with its leaf, in one query. */
static int proof_to_newest(struct ks_req *r, struct newest_head *h, long long domain_id,
                           long long seq, json_t **proof, struct err *e)
{
	char *leaf = NULL, *salt = NULL;

	*proof = NULL;
	if (h->jws == NULL &&
	    ks_store_log_head_leaf(r->db, domain_id, seq, &h->jws, &h->size, &leaf, &salt, e) < 0)
		return -1;
	if (seq >= h->size) {
		free(leaf);
		free(salt);
		return 0;
	}
	/* An entry without its row (leaf NULL) is looked for once more, and goes without. */
	return proof_with_leaf(r, domain_id, seq, h->size, leaf, salt, proof, e);
}

/* The head as the answer's "tree_head" member (NULL when none was read); frees it. */
static json_t *head_json(struct newest_head *h)
{
	json_t *o = h->jws ? json_string(h->jws) : NULL;

	free(h->jws);
	h->jws = NULL;
	return o;
}

int ks_log_proof_newest(struct ks_req *r, long long domain_id, long long seq, json_t **proof,
                        json_t **head, struct err *e)
{
	struct newest_head h = {0};
	int rc = proof_to_newest(r, &h, domain_id, seq, proof, e);

	*head = head_json(&h);
	if (rc < 0) {
		json_decref(*head);
		*head = NULL;
	}
	return rc;
}

/* c's object with its "log" member: an erased one, or one issued before the log, has none. */
static json_t *cert_with_proof(struct ks_req *r, struct newest_head *h, const struct ks_cert *c,
                               struct err *e)
{
	json_t *o = ks_cert_json(c), *proof = NULL;

	if (o == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	if (c->erased[0] != '\0' || c->log_seq < 0)
		return o;
	if (proof_to_newest(r, h, c->domain_id, c->log_seq, &proof, e) < 0) {
		json_decref(o);
		return NULL;
	}
	if (proof != NULL)
		json_object_set_new(o, "log", proof);
	return o;
}

json_t *ks_log_cert_json(struct ks_req *r, const struct ks_cert *c, json_t **head, struct err *e)
{
	struct newest_head h = {0};
	json_t *o = cert_with_proof(r, &h, c, e);

	*head = head_json(&h);
	if (o == NULL) {
		json_decref(*head);
		*head = NULL;
	}
	return o;
}

json_t *ks_log_cert_answer_json(struct ks_req *r, struct ks_cert_answer *a, json_t **head,
                                struct err *e)
{
	struct newest_head h = {.jws = a->head_jws, .size = a->head_size};
	const struct ks_cert *c = a->c;
	json_t *o = ks_cert_json(c), *proof = NULL;
	char *leaf = a->leaf, *salt = a->salt;

	a->head_jws = a->leaf = a->salt = NULL;
	if (o == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	/* As cert_with_proof: no proof for an erased one, or one the head does not cover. */
	if (o != NULL && c->erased[0] == '\0' && c->log_seq >= 0 && h.jws != NULL &&
	    c->log_seq < h.size) {
		if (proof_with_leaf(r, c->domain_id, c->log_seq, h.size, leaf, salt, &proof, e) <
		    0) {
			json_decref(o);
			o = NULL;
		} else if (proof != NULL)
			json_object_set_new(o, "log", proof);
		leaf = salt = NULL; /* proof_with_leaf freed them */
	}
	free(leaf);
	free(salt);
	*head = head_json(&h);
	if (o == NULL) {
		json_decref(*head);
		*head = NULL;
	}
	return o;
}

json_t *ks_log_certs_json(struct ks_req *r, const struct ks_cert_list *l, json_t **head,
                          struct err *e)
{
	struct newest_head h = {0};
	json_t *arr = json_array(), *o;

	if (arr == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	/* Every certificate of one answer belongs to one domain: one head for all. */
	for (size_t i = 0; arr != NULL && i < l->n; i++) {
		if ((o = cert_with_proof(r, &h, &l->v[i], e)) == NULL) {
			json_decref(arr);
			arr = NULL;
		} else
			json_array_append_new(arr, o);
	}
	*head = head_json(&h);
	if (arr == NULL) {
		json_decref(*head);
		*head = NULL;
	}
	return arr;
}
