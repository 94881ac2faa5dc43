/* tlog_client.c - the relying party's side of the transparency log; see tlog_client.h. */
#include "pki/tlog_client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "pki/cert.h"
#include "pki/crypto.h"
#include "pki/jws.h"

#define HEAD_TYP "anchor-tree-head+jws"
#define HEAD_TYPE "anchor-tree-head"
#define STATE_VERSION 1

/* ---- heads ---- */

void tlog_head_clear(struct tlog_head *h)
{
	if (h == NULL)
		return;
	free(h->jws);
	memset(h, 0, sizeof(*h));
}

int tlog_head_copy(struct tlog_head *dst, const struct tlog_head *src, struct err *e)
{
	*dst = *src;
	dst->jws = NULL;
	if (src->jws != NULL && (dst->jws = strdup(src->jws)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return 0;
}

void tlog_head_describe(const struct tlog_head *h, char *out, size_t outlen)
{
	char *b64 = crypto_b64_encode(h->root, MERKLE_HASH_LEN);

	snprintf(out, outlen, "size %" PRIu64 " root %s", h->size, b64 != NULL ? b64 : "?");
	free(b64);
}

/* Fill h from a head payload (type, domain, size, root_hash, timestamp). */
static int head_from_payload(const json_t *p, const char *domain, struct tlog_head *h,
                             struct err *e)
{
	const char *type = json_string_value(json_object_get(p, "type"));
	const char *dom = json_string_value(json_object_get(p, "domain"));
	const char *ts = json_string_value(json_object_get(p, "timestamp"));
	const json_t *size = json_object_get(p, "size");
	struct err why = {0};

	if (type == NULL || strcmp(type, HEAD_TYPE) != 0)
		return err_set(e, ERR_UNPROC, "bad_tree_head",
		               "the signed object is not a tree head (type %s)",
		               type != NULL ? type : "missing");
	if (dom == NULL || strlen(dom) >= sizeof(h->domain))
		return err_set(e, ERR_UNPROC, "bad_tree_head", "the tree head names no domain");
	if (domain != NULL && strcasecmp(dom, domain) != 0)
		return err_set(e, ERR_UNPROC, "bad_tree_head", "the tree head is for %s, not %s",
		               dom, domain);
	if (!json_is_integer(size) || json_integer_value(size) < 1)
		return err_set(e, ERR_UNPROC, "bad_tree_head",
		               "the tree head's size is not a positive integer");
	if (merkle_hash_from_json(json_object_get(p, "root_hash"), h->root, &why) < 0)
		return err_set(e, ERR_UNPROC, "bad_tree_head", "the tree head's root_hash: %s",
		               why.msg);
	snprintf(h->domain, sizeof(h->domain), "%s", dom);
	for (char *c = h->domain; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	h->size = (uint64_t)json_integer_value(size);
	snprintf(h->timestamp, sizeof(h->timestamp), "%s", ts != NULL ? ts : "");
	return 0;
}

/* The signer must be a CA of the domain's chain: the issuer (or the root). */
static int signer_is_ca(X509 *leaf, struct err *e)
{
	if (X509_check_ca(leaf) < 1)
		return err_set(e, ERR_UNPROC, "bad_tree_head",
		               "the tree head is signed by an end-entity certificate, "
		               "not by the domain's issuer");
	return 0;
}

int tlog_head_verify(const char *text, size_t len, const char *domain, const char *const *pins,
                     int npins, struct tlog_head *out, struct err *e)
{
	struct jws_verified v = {0};
	json_t *payload = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (jws_verify(text, len, pins, npins, &v, e) < 0)
		return -1;
	if (v.typ == NULL || strcmp(v.typ, HEAD_TYP) != 0) {
		err_set(e, ERR_UNPROC, "bad_tree_head", "the signed object's typ is %s, not %s",
		        v.typ != NULL ? v.typ : "missing", HEAD_TYP);
		goto out;
	}
	if (signer_is_ca(v.leaf, e) < 0)
		goto out;
	payload = json_loadb(v.payload, v.payload_len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(payload)) {
		err_set(e, ERR_UNPROC, "bad_tree_head",
		        "the tree head's payload is not a JSON object");
		goto out;
	}
	if (head_from_payload(payload, domain, out, e) < 0)
		goto out;
	if ((out->jws = strndup(text, len)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		tlog_head_clear(out);
	json_decref(payload);
	jws_verified_free(&v);
	return rc;
}

char *tlog_head_peek_domain(const char *text, size_t len, struct err *e)
{
	json_t *jws = json_loadb(text, len, 0, NULL), *payload = NULL;
	const char *b64 = json_string_value(json_object_get(jws, "payload"));
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	char *domain = NULL;

	if (b64 != NULL && (raw = crypto_b64url_decode(b64, &rawlen)) != NULL)
		payload = json_loadb((const char *)raw, rawlen, 0, NULL);
	const char *d = json_string_value(json_object_get(payload, "domain"));
	if (d == NULL || *d == '\0')
		err_set(e, ERR_UNPROC, "bad_tree_head", "the tree head names no domain");
	else if ((domain = strdup(d)) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	json_decref(payload);
	json_decref(jws);
	free(raw);
	return domain;
}

/* ---- proofs ---- */

int tlog_verify_leaf(const char *leaf, uint64_t seq, uint64_t tree_size, const json_t *proof,
                     const struct tlog_head *head, struct err *e)
{
	uint8_t path[MERKLE_MAX_PROOF][MERKLE_HASH_LEN], lh[MERKLE_HASH_LEN];
	struct err why = {0};
	int n = 0;

	if (tree_size != head->size)
		return err_set(e, ERR_UNPROC, "bad_proof",
		               "the inclusion proof is for a tree of size %" PRIu64
		               ", the signed head is of size %" PRIu64,
		               tree_size, head->size);
	if (merkle_proof_from_json(proof, path, &n, &why) < 0)
		return err_set(e, ERR_UNPROC, "bad_proof", "%s", why.msg);
	if (merkle_leaf_hash(leaf, strlen(leaf), lh, e) < 0)
		return -1;
	if (merkle_verify_inclusion(seq, tree_size, lh, (const uint8_t(*)[MERKLE_HASH_LEN])path, n,
	                            head->root, &why) < 0)
		return err_set(e, ERR_UNPROC, "bad_proof", "entry %" PRIu64 ": %s", seq, why.msg);
	return 0;
}

static int int_member(const json_t *o, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int str_eq(const json_t *a, const char *key, const char *want)
{
	const char *s = json_string_value(json_object_get(a, key));

	return s != NULL && want != NULL && strcmp(s, want) == 0;
}

/* The fingerprint of the certificate the object carries (not what it says it is). */
static int object_fingerprint(const json_t *cert, char out[CERT_FPR_LEN], struct err *e)
{
	const char *pem = json_string_value(json_object_get(cert, "certificate"));
	const char *said = json_string_value(json_object_get(cert, "fingerprint"));
	X509 *x;
	int rc;

	if (pem == NULL) {
		if (said == NULL)
			return err_set(e, ERR_UNPROC, "log_mismatch",
			               "the certificate object has no certificate");
		snprintf(out, CERT_FPR_LEN, "%s", said);
		return 0;
	}
	if ((x = cert_from_pem(pem, strlen(pem), e)) == NULL)
		return -1;
	rc = cert_fingerprint(x, out, e);
	X509_free(x);
	if (rc == 0 && said != NULL && strcmp(said, out) != 0)
		return err_set(e, ERR_UNPROC, "log_mismatch",
		               "the object's fingerprint is not its certificate's");
	return rc;
}

/* What the leaf says must be this certificate's issuance. */
static int leaf_matches(const json_t *leaf, const json_t *cert, uint64_t seq, const char *salt,
                        const struct tlog_head *head, struct err *e)
{
	const char *name = json_string_value(json_object_get(cert, "name"));
	const char *key_id = json_string_value(json_object_get(cert, "key_id"));
	char fpr[CERT_FPR_LEN], subject[CRYPTO_HEX256_LEN], *salted = NULL;
	uint64_t lseq;

	if (!json_is_object(leaf))
		return err_set(e, ERR_UNPROC, "log_mismatch", "the log leaf is not a JSON object");
	if (!str_eq(leaf, "type", "issued"))
		return err_set(e, ERR_UNPROC, "log_mismatch",
		               "log entry %" PRIu64 " is not an issuance", seq);
	if (int_member(leaf, "seq", &lseq) < 0 || lseq != seq)
		return err_set(e, ERR_UNPROC, "log_mismatch",
		               "the leaf's seq is not the entry's (%" PRIu64 ")", seq);
	if (json_string_value(json_object_get(leaf, "domain")) == NULL ||
	    strcasecmp(json_string_value(json_object_get(leaf, "domain")), head->domain) != 0)
		return err_set(e, ERR_UNPROC, "log_mismatch",
		               "log entry %" PRIu64 " is not of the domain %s", seq, head->domain);
	if (!str_eq(leaf, "key_id", key_id))
		return err_set(e, ERR_UNPROC, "log_mismatch",
		               "log entry %" PRIu64 " records another key id", seq);
	if (object_fingerprint(cert, fpr, e) < 0)
		return -1;
	if (!str_eq(leaf, "fingerprint", fpr))
		return err_set(e, ERR_UNPROC, "log_mismatch",
		               "log entry %" PRIu64 " records another fingerprint than %s", seq,
		               fpr);
	/* An erased address keeps its leaf but loses the salt: the fingerprint above still
	 * binds the entry to this very certificate, and so to the name it carries. */
	if (salt == NULL)
		return 0;
	if (name == NULL)
		return err_set(e, ERR_UNPROC, "log_mismatch",
		               "the certificate object names no subject to check against entry "
		               "%" PRIu64,
		               seq);
	if (asprintf(&salted, "%s:%s", salt, name) < 0)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	crypto_sha256_hex(salted, strlen(salted), subject);
	free(salted);
	if (!str_eq(leaf, "subject", subject))
		return err_set(e, ERR_UNPROC, "log_mismatch",
		               "log entry %" PRIu64 " is about another name than %s", seq, name);
	return 0;
}

int tlog_verify_cert(const json_t *cert, const struct tlog_head *head, struct err *e)
{
	const json_t *log = json_object_get(cert, "log");
	const char *text = json_string_value(json_object_get(log, "leaf"));
	uint64_t seq = 0, size = 0;
	json_t *leaf;
	int rc;

	if (!json_is_object(log))
		return err_set(e, ERR_UNPROC, "log_missing",
		               "the certificate %s comes without its log entry and proof",
		               json_string_value(json_object_get(cert, "key_id")) ?: "?");
	if (text == NULL || int_member(log, "seq", &seq) < 0 ||
	    int_member(log, "tree_size", &size) < 0)
		return err_set(e, ERR_UNPROC, "log_mismatch",
		               "the log member needs seq, leaf and tree_size");
	leaf = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	rc =
	    leaf_matches(leaf, cert, seq, json_string_value(json_object_get(log, "salt")), head, e);
	json_decref(leaf);
	if (rc < 0)
		return -1;
	return tlog_verify_leaf(text, seq, size, json_object_get(log, "proof"), head, e);
}

int tlog_check_status(const json_t *cert, struct err *e)
{
	const json_t *rev = json_object_get(cert, "revocation");

	if (!str_eq(cert, "status", "revoked"))
		return 0;
	return err_set(e, ERR_UNPROC, "key_revoked", "the key %s of %s was revoked (%s, %s)",
	               json_string_value(json_object_get(cert, "key_id")) ?: "?",
	               json_string_value(json_object_get(cert, "name")) ?: "?",
	               json_string_value(json_object_get(rev, "reason")) ?: "unspecified",
	               json_string_value(json_object_get(rev, "time")) ?: "time unknown");
}

/* ---- the head store ---- */

struct tlog_store {
	char *path; /* or NULL */
	struct tlog_head *heads;
	size_t n, cap;
};

static struct tlog_head *store_find(const struct tlog_store *s, const char *domain)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcasecmp(s->heads[i].domain, domain) == 0)
			return &s->heads[i];
	return NULL;
}

const struct tlog_head *tlog_store_get(const struct tlog_store *s, const char *domain)
{
	return s != NULL ? store_find(s, domain) : NULL;
}

/* Remember a copy of h, replacing what the store held for its domain. */
static int store_put(struct tlog_store *s, const struct tlog_head *h, struct err *e)
{
	struct tlog_head copy, *slot = store_find(s, h->domain);

	if (tlog_head_copy(&copy, h, e) < 0)
		return -1;
	if (slot == NULL) {
		if (s->n == s->cap) {
			size_t cap = s->cap ? 2 * s->cap : 8;
			struct tlog_head *v = realloc(s->heads, cap * sizeof(*v));
			if (v == NULL) {
				tlog_head_clear(&copy);
				return err_set(e, ERR_INTERNAL, "internal", "out of memory");
			}
			s->heads = v;
			s->cap = cap;
		}
		slot = &s->heads[s->n++];
	} else {
		tlog_head_clear(slot);
	}
	*slot = copy;
	return 0;
}

static int load_one(struct tlog_store *s, const char *domain, const json_t *o, struct err *e)
{
	struct tlog_head h = {0};
	const char *jws = json_string_value(json_object_get(o, "jws"));
	const char *ts = json_string_value(json_object_get(o, "timestamp"));
	uint64_t size = 0;
	int rc;

	if (strlen(domain) >= sizeof(h.domain) || int_member(o, "size", &size) < 0 || size == 0 ||
	    merkle_hash_from_json(json_object_get(o, "root_hash"), h.root, e) < 0)
		return err_set(e, ERR_INPUT, "bad_state", "the remembered head of %s is malformed",
		               domain);
	snprintf(h.domain, sizeof(h.domain), "%s", domain);
	snprintf(h.timestamp, sizeof(h.timestamp), "%s", ts != NULL ? ts : "");
	h.size = size;
	h.jws = (char *)jws; /* store_put copies it */
	rc = store_put(s, &h, e);
	return rc;
}

static int store_load(struct tlog_store *s, struct err *e)
{
	json_error_t jerr;
	json_t *doc, *heads, *o;
	const char *domain;
	int rc = 0;

	if (access(s->path, F_OK) != 0 && errno == ENOENT)
		return 0;
	doc = json_load_file(s->path, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL)
		return err_set(e, ERR_INPUT, "bad_state", "%s: %s (line %d)", s->path, jerr.text,
		               jerr.line);
	heads = json_object_get(doc, "heads");
	if (!json_is_object(heads) ||
	    json_integer_value(json_object_get(doc, "version")) != STATE_VERSION)
		rc = err_set(e, ERR_INPUT, "bad_state", "%s is not a head store of version %d",
		             s->path, STATE_VERSION);
	json_object_foreach(heads, domain, o)
	{
		if (rc == 0 && load_one(s, domain, o, e) < 0)
			rc = -1;
	}
	json_decref(doc);
	return rc;
}

struct tlog_store *tlog_store_open(const char *path, struct err *e)
{
	struct tlog_store *s = calloc(1, sizeof(*s));

	if (s == NULL || (path != NULL && (s->path = strdup(path)) == NULL)) {
		free(s);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	if (s->path != NULL && store_load(s, e) < 0) {
		tlog_store_free(s);
		return NULL;
	}
	return s;
}

void tlog_store_free(struct tlog_store *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		tlog_head_clear(&s->heads[i]);
	free(s->heads);
	free(s->path);
	free(s);
}

static json_t *store_json(const struct tlog_store *s)
{
	json_t *heads = json_object(), *doc;

	for (size_t i = 0; heads != NULL && i < s->n; i++) {
		const struct tlog_head *h = &s->heads[i];
		json_t *root = merkle_hash_to_json(h->root, NULL);
		json_t *o = json_pack("{s:I, s:o, s:s, s:s?}", "size", (json_int_t)h->size,
		                      "root_hash", root, "timestamp", h->timestamp, "jws", h->jws);
		if (o == NULL || json_object_set_new(heads, h->domain, o) < 0) {
			json_decref(heads);
			return NULL;
		}
	}
	doc = json_pack("{s:i, s:o}", "version", STATE_VERSION, "heads", heads);
	return doc;
}

/* Make the directory of path (one level, 0700) when it is missing. */
static void make_parent(const char *path)
{
	char *dir = strdup(path), *slash = dir != NULL ? strrchr(dir, '/') : NULL;

	if (slash != NULL && slash != dir) {
		*slash = '\0';
		(void)mkdir(dir, 0700);
	}
	free(dir);
}

int tlog_store_save(struct tlog_store *s, struct err *e)
{
	json_t *doc;
	char *text = NULL, *tmp = NULL;
	int fd = -1, rc = -1;
	size_t len, off = 0;

	if (s->path == NULL)
		return 0;
	if ((doc = store_json(s)) == NULL ||
	    (text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS)) == NULL ||
	    asprintf(&tmp, "%s.XXXXXX", s->path) < 0) {
		tmp = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	make_parent(s->path);
	if ((fd = mkstemp(tmp)) < 0) { /* mkstemp creates 0600 */
		err_set(e, ERR_TEMP, "state_write", "%s: %s", tmp, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	len = strlen(text);
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			err_set(e, ERR_TEMP, "state_write", "%s: %s", tmp, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		err_set(e, ERR_TEMP, "state_write", "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, s->path) < 0) {
		err_set(e, ERR_TEMP, "state_write", "%s: %s", s->path, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	free(text);
	json_decref(doc);
	return rc;
}

static int fork_error(const struct tlog_head *old, const struct tlog_head *seen, const char *why,
                      struct err *e)
{
	char a[128], b[128];

	tlog_head_describe(old, a, sizeof(a));
	tlog_head_describe(seen, b, sizeof(b));
	return err_set(e, ERR_UNPROC, "log_fork",
	               "the log of %s forked: remembered head %s, now head %s: %s", seen->domain, a,
	               b, why);
}

/* The smaller head (sm) must be a prefix of the larger (lg): ask and check. */
static int check_consistent(const struct tlog_head *sm, const struct tlog_head *lg,
                            const struct tlog_head *old, const struct tlog_head *seen,
                            tlog_consistency_fn fetch, void *ctx, struct err *e)
{
	uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	struct err why = {0};
	int n = 0;

	if (fetch == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "no way to fetch a consistency proof");
	if (fetch(ctx, seen->domain, sm->size, lg->size, proof, &n, e) < 0)
		return -1;
	if (merkle_verify_consistency(sm->size, lg->size, sm->root, lg->root,
	                              (const uint8_t(*)[MERKLE_HASH_LEN])proof, n, &why) < 0)
		return fork_error(old, seen, why.msg, e);
	return 0;
}

int tlog_store_observe(struct tlog_store *s, const struct tlog_head *head,
                       tlog_consistency_fn fetch, void *ctx, struct err *e)
{
	const struct tlog_head *old = store_find(s, head->domain);

	if (old == NULL)
		return store_put(s, head, e) < 0 ? -1 : tlog_store_save(s, e);
	if (head->size == old->size) {
		if (!crypto_ct_equal(head->root, old->root, MERKLE_HASH_LEN))
			return fork_error(old, head, "two heads of one size with different roots",
			                  e);
		return 0;
	}
	if (head->size < old->size)
		return check_consistent(head, old, old, head, fetch, ctx, e);
	if (check_consistent(old, head, old, head, fetch, ctx, e) < 0)
		return -1;
	return store_put(s, head, e) < 0 ? -1 : tlog_store_save(s, e);
}
