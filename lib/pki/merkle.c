/* merkle.c - RFC 9162 Merkle tree over perfect-subtree storage; see merkle.h. */
#include "pki/merkle.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "pki/crypto.h"

/* ---- hashing ---- */

/* OpenSSL 3 looks EVP_sha256() up on every use and a digest context costs an
 * allocation: fetching once and keeping one context per thread (freed when
 * the thread ends) makes a node hash several times cheaper, which shows in
 * appends and verifications per second. */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_fetched;
static pthread_key_t ctx_key;
static int ctx_key_ok;

static void ctx_destroy(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void md_init(void)
{
	md_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
	ctx_key_ok = pthread_key_create(&ctx_key, ctx_destroy) == 0;
}

/* This thread's context, or NULL when none can be kept (the caller makes one). */
static EVP_MD_CTX *thread_ctx(void)
{
	EVP_MD_CTX *ctx;

	if (!ctx_key_ok)
		return NULL;
	ctx = pthread_getspecific(ctx_key);
	if (ctx == NULL) {
		ctx = EVP_MD_CTX_new();
		if (ctx != NULL && pthread_setspecific(ctx_key, ctx) != 0) {
			EVP_MD_CTX_free(ctx);
			ctx = NULL;
		}
	}
	return ctx;
}

/* SHA-256(prefix || a || b); prefix is one byte, or none when NULL. */
static int hash3(const uint8_t *prefix, const void *a, size_t alen, const void *b, size_t blen,
                 uint8_t out[MERKLE_HASH_LEN], struct err *e)
{
	EVP_MD_CTX *kept, *ctx;
	unsigned int n = 0;
	int ok;

	pthread_once(&md_once, md_init);
	kept = thread_ctx();
	ctx = kept != NULL ? kept : EVP_MD_CTX_new();
	ok = ctx != NULL &&
	     EVP_DigestInit_ex2(ctx, md_fetched != NULL ? md_fetched : EVP_sha256(), NULL) == 1 &&
	     (prefix == NULL || EVP_DigestUpdate(ctx, prefix, 1) == 1) &&
	     EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
	     EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == MERKLE_HASH_LEN;
	if (ctx != kept)
		EVP_MD_CTX_free(ctx);
	if (!ok)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "SHA-256 failed");
	return 0;
}

int merkle_leaf_hash(const void *data, size_t len, uint8_t out[MERKLE_HASH_LEN], struct err *e)
{
	static const uint8_t leaf = 0x00;

	return hash3(&leaf, data, len, "", 0, out, e);
}

int merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN], const uint8_t right[MERKLE_HASH_LEN],
                     uint8_t out[MERKLE_HASH_LEN], struct err *e)
{
	static const uint8_t node = 0x01;

	return hash3(&node, left, MERKLE_HASH_LEN, right, MERKLE_HASH_LEN, out, e);
}

#define BAD_PROOF(e, ...) err_set((e), ERR_UNPROC, "bad_proof", __VA_ARGS__)

/* ---- tree shape ---- */

/* A range of leaves [start, start + count) that is a node of RFC 9162's tree. */
struct span {
	uint64_t start, count;
};

static unsigned floor_log2(uint64_t x) /* x > 0 */
{
	return 63u - (unsigned)__builtin_clzll(x);
}

/* k of RFC 9162: the largest power of two smaller than n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
	return (uint64_t)1 << floor_log2(n - 1);
}

/* The hashes of PATH(index, D[size]), leaf to root, as spans; returns their number. */
static int inclusion_plan(uint64_t index, uint64_t size, struct span *out)
{
	struct span top[MERKLE_MAX_PROOF];
	uint64_t a = 0, m = index, n = size, k;
	int depth = 0, i;

	while (n > 1) {
		k = split_point(n);
		if (m < k) {
			top[depth++] = (struct span){a + k, n - k};
			n = k;
		} else {
			top[depth++] = (struct span){a, k};
			a += k;
			m -= k;
			n -= k;
		}
	}
	for (i = 0; i < depth; i++)
		out[i] = top[depth - 1 - i];
	return depth;
}

/* The hashes of SUBPROOF(m, D[n], true), in the RFC's order, as spans. */
static int consistency_plan(uint64_t m, uint64_t n, struct span *out)
{
	struct span top[MERKLE_MAX_PROOF];
	uint64_t a = 0, k;
	int depth = 0, len = 0, i, whole = 1;

	while (m != n) {
		k = split_point(n);
		if (m <= k) {
			top[depth++] = (struct span){a + k, n - k};
			n = k;
		} else {
			top[depth++] = (struct span){a, k};
			a += k;
			m -= k;
			n -= k;
			whole = 0;
		}
	}
	if (!whole) /* the old tree's root is not a node of the new one: send it */
		out[len++] = (struct span){a, n};
	for (i = depth - 1; i >= 0; i--)
		out[len++] = top[i];
	return len;
}

int merkle_inclusion_proof_len(uint64_t index, uint64_t size)
{
	struct span s[MERKLE_MAX_PROOF];

	if (index >= size || size > MERKLE_MAX_SIZE)
		return -1;
	return inclusion_plan(index, size, s);
}

int merkle_consistency_proof_len(uint64_t m, uint64_t n)
{
	struct span s[MERKLE_MAX_PROOF];

	if (m == 0 || m > n || n > MERKLE_MAX_SIZE)
		return -1;
	return consistency_plan(m, n, s);
}

/* MTH of a span: the perfect subtrees it decomposes into, folded from the right. */
static int span_hash(merkle_node_fn get, void *ctx, struct span s, uint8_t out[MERKLE_HASH_LEN],
                     struct err *e)
{
	uint8_t parts[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	unsigned level;
	int np = 0;

	while (s.count > 0) {
		level = floor_log2(s.count);
		if (s.start & (((uint64_t)1 << level) - 1))
			return err_set(e, ERR_INTERNAL, "internal",
			               "merkle: range at %" PRIu64 " is not a tree node", s.start);
		if (get(ctx, level, s.start >> level, parts[np], e) < 0)
			return -1;
		np++;
		s.start += (uint64_t)1 << level;
		s.count -= (uint64_t)1 << level;
	}
	if (np == 0)
		return err_set(e, ERR_INTERNAL, "internal", "merkle: empty range");
	memcpy(out, parts[np - 1], MERKLE_HASH_LEN);
	while (--np > 0)
		if (merkle_node_hash(parts[np - 1], out, out, e) < 0)
			return -1;
	return 0;
}

static int spans_hash(merkle_node_fn get, void *ctx, const struct span *s, int n,
                      uint8_t (*out)[MERKLE_HASH_LEN], struct err *e)
{
	int i;

	for (i = 0; i < n; i++)
		if (span_hash(get, ctx, s[i], out[i], e) < 0)
			return -1;
	return 0;
}

/* ---- generation ---- */

int merkle_append_nodes(uint64_t new_leaf_index, const uint8_t leaf_hash[MERKLE_HASH_LEN],
                        merkle_node_fn get, void *ctx, struct merkle_node *out, int *nout,
                        struct err *e)
{
	uint64_t i = new_leaf_index;
	uint8_t left[MERKLE_HASH_LEN];
	unsigned level;
	int n = 0;

	*nout = 0;
	if (i >= MERKLE_MAX_SIZE)
		return err_set(e, ERR_UNPROC, "log_full", "merkle: the log is full");
	out[n++] = (struct merkle_node){.level = 0, .index = i};
	memcpy(out[0].hash, leaf_hash, MERKLE_HASH_LEN);
	/* Each trailing one bit of i closes a subtree whose right half was just completed. */
	for (level = 1; (i >> (level - 1)) & 1; level++) {
		if (get(ctx, level - 1, (i >> (level - 1)) - 1, left, e) < 0)
			return -1;
		out[n].level = level;
		out[n].index = i >> level;
		if (merkle_node_hash(left, out[n - 1].hash, out[n].hash, e) < 0)
			return -1;
		n++;
	}
	*nout = n;
	return 0;
}

int merkle_root(uint64_t size, merkle_node_fn get, void *ctx, uint8_t out[MERKLE_HASH_LEN],
                struct err *e)
{
	if (size > MERKLE_MAX_SIZE)
		return BAD_PROOF(e, "tree size %" PRIu64 " exceeds the largest log", size);
	if (size == 0)
		return hash3(NULL, "", 0, "", 0, out, e); /* SHA-256 of the empty string */
	return span_hash(get, ctx, (struct span){0, size}, out, e);
}

int merkle_inclusion_proof(uint64_t index, uint64_t size, merkle_node_fn get, void *ctx,
                           uint8_t (*proof)[MERKLE_HASH_LEN], int *n, struct err *e)
{
	struct span s[MERKLE_MAX_PROOF];
	int len;

	*n = 0;
	if (index >= size)
		return BAD_PROOF(
		    e, "leaf index %" PRIu64 " is out of range for a tree of size %" PRIu64, index,
		    size);
	if (size > MERKLE_MAX_SIZE)
		return BAD_PROOF(e, "tree size %" PRIu64 " exceeds the largest log", size);
	len = inclusion_plan(index, size, s);
	if (spans_hash(get, ctx, s, len, proof, e) < 0)
		return -1;
	*n = len;
	return 0;
}

int merkle_consistency_proof(uint64_t m, uint64_t n, merkle_node_fn get, void *ctx,
                             uint8_t (*proof)[MERKLE_HASH_LEN], int *len, struct err *e)
{
	struct span s[MERKLE_MAX_PROOF];
	int k;

	*len = 0;
	if (m == 0)
		return BAD_PROOF(e,
		                 "no consistency proof from the empty tree (RFC 9162 needs 0 < m)");
	if (m > n)
		return BAD_PROOF(
		    e, "first tree size %" PRIu64 " is larger than the second %" PRIu64, m, n);
	if (n > MERKLE_MAX_SIZE)
		return BAD_PROOF(e, "tree size %" PRIu64 " exceeds the largest log", n);
	k = consistency_plan(m, n, s);
	if (spans_hash(get, ctx, s, k, proof, e) < 0)
		return -1;
	*len = k;
	return 0;
}

/* ---- verification (RFC 9162 §2.1.3.2 and §2.1.4.2, step by step) ---- */

static int proof_len_ok(int n, int want, const char *what, uint64_t a, uint64_t b, struct err *e)
{
	if (n == want)
		return 0;
	return err_set(e, ERR_UNPROC, "bad_proof",
	               "wrong proof length: %d hashes, %s (%" PRIu64 ", %" PRIu64 ") needs %d", n,
	               what, a, b, want);
}

int merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf_hash[MERKLE_HASH_LEN],
                            const uint8_t (*proof)[MERKLE_HASH_LEN], int n,
                            const uint8_t root[MERKLE_HASH_LEN], struct err *e)
{
	uint8_t r[MERKLE_HASH_LEN];
	uint64_t fn, sn;
	int i;

	if (index >= size)
		return BAD_PROOF(
		    e, "leaf index %" PRIu64 " is out of range for a tree of size %" PRIu64, index,
		    size);
	if (size > MERKLE_MAX_SIZE)
		return BAD_PROOF(e, "tree size %" PRIu64 " exceeds the largest log", size);
	if (proof_len_ok(n, merkle_inclusion_proof_len(index, size), "inclusion at", index, size,
	                 e) < 0)
		return -1;
	fn = index;
	sn = size - 1;
	memcpy(r, leaf_hash, MERKLE_HASH_LEN);
	for (i = 0; i < n; i++) {
		if (sn == 0)
			return BAD_PROOF(e, "inclusion proof longer than the tree is deep");
		if ((fn & 1) || fn == sn) {
			if (merkle_node_hash(proof[i], r, r, e) < 0)
				return -1;
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else if (merkle_node_hash(r, proof[i], r, e) < 0) {
			return -1;
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return BAD_PROOF(e, "inclusion proof shorter than the tree is deep");
	if (memcmp(r, root, MERKLE_HASH_LEN) != 0)
		return BAD_PROOF(e,
		                 "root mismatch: leaf %" PRIu64
		                 " is not in the tree of size %" PRIu64 " with this head",
		                 index, size);
	return 0;
}

int merkle_verify_consistency(uint64_t m, uint64_t n, const uint8_t root_m[MERKLE_HASH_LEN],
                              const uint8_t root_n[MERKLE_HASH_LEN],
                              const uint8_t (*proof)[MERKLE_HASH_LEN], int len, struct err *e)
{
	uint8_t fr[MERKLE_HASH_LEN], sr[MERKLE_HASH_LEN];
	const uint8_t *first;
	uint64_t fn, sn;
	int i;

	if (m == 0)
		return BAD_PROOF(e,
		                 "no consistency proof from the empty tree (RFC 9162 needs 0 < m)");
	if (m > n)
		return BAD_PROOF(e,
		                 "first tree size %" PRIu64 " is larger than the second %" PRIu64
		                 " (the log went backwards)",
		                 m, n);
	if (n > MERKLE_MAX_SIZE)
		return BAD_PROOF(e, "tree size %" PRIu64 " exceeds the largest log", n);
	if (proof_len_ok(len, merkle_consistency_proof_len(m, n), "consistency between", m, n, e) <
	    0)
		return -1;
	if (m == n) {
		if (memcmp(root_m, root_n, MERKLE_HASH_LEN) != 0)
			return BAD_PROOF(e, "two different heads for the same tree size %" PRIu64,
			                 m);
		return 0;
	}
	/* Step 2: when m is a power of two the old root is a node of the new tree
	 * and the proof leaves it out; it is the first value of the path. */
	if ((m & (m - 1)) == 0) {
		first = root_m;
	} else {
		first = proof[0];
		proof++;
		len--;
	}
	fn = m - 1;
	sn = n - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	memcpy(fr, first, MERKLE_HASH_LEN);
	memcpy(sr, first, MERKLE_HASH_LEN);
	for (i = 0; i < len; i++) {
		if (sn == 0)
			return BAD_PROOF(e, "consistency proof longer than the tree is deep");
		if ((fn & 1) || fn == sn) {
			if (merkle_node_hash(proof[i], fr, fr, e) < 0 ||
			    merkle_node_hash(proof[i], sr, sr, e) < 0)
				return -1;
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else if (merkle_node_hash(sr, proof[i], sr, e) < 0) {
			return -1;
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return BAD_PROOF(e, "consistency proof shorter than the tree is deep");
	if (memcmp(fr, root_m, MERKLE_HASH_LEN) != 0)
		return BAD_PROOF(
		    e, "root mismatch: the proof does not lead to the head of size %" PRIu64, m);
	if (memcmp(sr, root_n, MERKLE_HASH_LEN) != 0)
		return BAD_PROOF(
		    e, "root mismatch: the proof does not lead to the head of size %" PRIu64, n);
	return 0;
}

/* ---- wire form ---- */

json_t *merkle_hash_to_json(const uint8_t hash[MERKLE_HASH_LEN], struct err *e)
{
	char *text = crypto_b64_encode(hash, MERKLE_HASH_LEN);
	json_t *s = text != NULL ? json_string(text) : NULL;

	free(text);
	if (s == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return s;
}

json_t *merkle_proof_to_json(const uint8_t (*proof)[MERKLE_HASH_LEN], int n, struct err *e)
{
	json_t *arr = json_array();
	int i;

	if (arr == NULL)
		goto fail;
	for (i = 0; i < n; i++)
		if (json_array_append_new(arr, merkle_hash_to_json(proof[i], e)) < 0)
			goto fail;
	return arr;
fail:
	json_decref(arr);
	err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return NULL;
}

int merkle_hash_from_json(const json_t *str, uint8_t out[MERKLE_HASH_LEN], struct err *e)
{
	const char *text = json_string_value(str);
	uint8_t *raw;
	size_t len = 0;

	if (text == NULL)
		return err_set(e, ERR_INPUT, "bad_proof", "a hash must be a base64 string");
	if (json_string_length(str) != strlen(text))
		return err_set(e, ERR_INPUT, "bad_proof", "a hash must not contain NUL");
	raw = crypto_b64_decode(text, &len);
	if (raw == NULL || len != MERKLE_HASH_LEN) {
		free(raw);
		return err_set(e, ERR_INPUT, "bad_proof", "a hash must be 32 bytes in base64");
	}
	memcpy(out, raw, MERKLE_HASH_LEN);
	free(raw);
	return 0;
}

int merkle_proof_from_json(const json_t *arr, uint8_t (*proof)[MERKLE_HASH_LEN], int *n,
                           struct err *e)
{
	size_t i, count;

	*n = 0;
	if (!json_is_array(arr))
		return err_set(e, ERR_INPUT, "bad_proof", "a proof must be an array of hashes");
	count = json_array_size(arr);
	if (count > MERKLE_MAX_PROOF)
		return err_set(e, ERR_INPUT, "bad_proof", "a proof has at most %d hashes, not %zu",
		               MERKLE_MAX_PROOF, count);
	for (i = 0; i < count; i++) {
		if (merkle_hash_from_json(json_array_get(arr, i), proof[i], e) < 0) {
			char why[ERR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", e != NULL ? e->msg : "");
			return err_set(e, ERR_INPUT, "bad_proof", "proof hash %zu: %s", i, why);
		}
	}
	*n = (int)count;
	return 0;
}

/* ---- in-memory store ---- */

void merkle_mem_init(struct merkle_mem *m)
{
	memset(m, 0, sizeof(*m));
}

void merkle_mem_free(struct merkle_mem *m)
{
	unsigned l;

	if (m == NULL)
		return;
	for (l = 0; l < MERKLE_MAX_APPEND_NODES; l++)
		free(m->level[l]);
	merkle_mem_init(m);
}

static int mem_grow(struct merkle_mem *m, unsigned level, uint64_t want, struct err *e)
{
	uint8_t(*p)[MERKLE_HASH_LEN];
	uint64_t cap = m->cap[level] ? m->cap[level] : 16;

	while (cap < want)
		cap *= 2;
	if (cap == m->cap[level])
		return 0;
	if (cap > SIZE_MAX / MERKLE_HASH_LEN)
		return err_set(e, ERR_INTERNAL, "internal", "merkle: tree too large for memory");
	p = realloc(m->level[level], (size_t)cap * MERKLE_HASH_LEN);
	if (p == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "merkle: out of memory");
	m->level[level] = p;
	m->cap[level] = cap;
	return 0;
}

int merkle_mem_reserve(struct merkle_mem *m, uint64_t leaves, struct err *e)
{
	unsigned l;

	for (l = 0; l < MERKLE_MAX_APPEND_NODES && (leaves >> l) > 0; l++)
		if (mem_grow(m, l, leaves >> l, e) < 0)
			return -1;
	return 0;
}

int merkle_mem_append_hash(struct merkle_mem *m, const uint8_t leaf_hash[MERKLE_HASH_LEN],
                           struct err *e)
{
	struct merkle_node nodes[MERKLE_MAX_APPEND_NODES];
	int n, i;

	if (merkle_append_nodes(m->size, leaf_hash, merkle_mem_get, m, nodes, &n, e) < 0)
		return -1;
	/* Room first, so that a failed append leaves the store as it was. */
	for (i = 0; i < n; i++) {
		unsigned l = nodes[i].level;

		if (nodes[i].index != m->count[l])
			return err_set(e, ERR_INTERNAL, "internal", "merkle: node out of order");
		if (m->count[l] == m->cap[l] && mem_grow(m, l, m->count[l] + 1, e) < 0)
			return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned l = nodes[i].level;

		memcpy(m->level[l][m->count[l]++], nodes[i].hash, MERKLE_HASH_LEN);
	}
	m->size++;
	return 0;
}

int merkle_mem_append(struct merkle_mem *m, const void *data, size_t len, struct err *e)
{
	uint8_t h[MERKLE_HASH_LEN];

	if (merkle_leaf_hash(data, len, h, e) < 0)
		return -1;
	return merkle_mem_append_hash(m, h, e);
}

int merkle_mem_get(void *ctx, unsigned level, uint64_t index, uint8_t out[MERKLE_HASH_LEN],
                   struct err *e)
{
	const struct merkle_mem *m = ctx;

	if (level >= MERKLE_MAX_APPEND_NODES || index >= m->count[level])
		return err_set(e, ERR_NOTFOUND, "merkle_node_missing",
		               "merkle: no node at level %u index %" PRIu64, level, index);
	memcpy(out, m->level[level][index], MERKLE_HASH_LEN);
	return 0;
}
