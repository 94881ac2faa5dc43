/* test_merkle.c - the RFC 9162 Merkle tree: known answers, every proof of the
 * small trees against a naive recursive model, the verifiers' refusals, the
 * wire form.
 *
 * Two extra modes serve tests/integration/test_merkle_ref.py, which checks
 * this library against an independent Python implementation of the RFC:
 *   MERKLE_VECTORS=FILE  write leaves, roots and every proof for sizes 0..70
 *   MERKLE_CHECK=FILE    verify the proofs in FILE (made by the Python
 *                        reference, some tampered with) and compare each
 *                        verdict with its "expect"
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "pki/crypto.h"
#include "pki/merkle.h"

#define H MERKLE_HASH_LEN
#define NMAX 70

/* The eight leaves of the certificate-transparency test suite. */
static const struct {
	const char *data;
	size_t len;
} ct_leaves[8] = {
    {"", 0},
    {"\x00", 1},
    {"\x10", 1},
    {"\x20\x21", 2},
    {"\x30\x31", 2},
    {"\x40\x41\x42\x43", 4},
    {"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
    {"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};

/* MTH of the first n of those leaves, n = 0..8 (RFC 6962 test data). */
static const char *const ct_roots[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

/* Leaf i of the test trees: the CT leaves, then short varied byte strings. */
static size_t leaf_data(int i, uint8_t *buf)
{
	size_t len, j;

	if (i < 8) {
		memcpy(buf, ct_leaves[i].data, ct_leaves[i].len);
		return ct_leaves[i].len;
	}
	len = 1 + (size_t)(i % 13);
	buf[0] = (uint8_t)i; /* every leaf differs: no proof may serve two indices */
	for (j = 1; j < len; j++)
		buf[j] = (uint8_t)(i * 7 + (int)j);
	return len;
}

/* ---- a naive model: RFC 9162 §2.1 recursions over an array of leaf hashes ---- */

static uint8_t model_leaf[NMAX + 2][H];

static void sha(const void *a, size_t alen, uint8_t out[H])
{
	crypto_sha256(a, alen, out);
}

static void model_node(const uint8_t *l, const uint8_t *r, uint8_t out[H])
{
	uint8_t buf[1 + 2 * H];

	buf[0] = 1;
	memcpy(buf + 1, l, H);
	memcpy(buf + 1 + H, r, H);
	sha(buf, sizeof(buf), out);
}

static int model_k(int n)
{
	int k = 1;

	while (k * 2 < n)
		k *= 2;
	return k;
}

static void model_mth(int lo, int hi, uint8_t out[H])
{
	uint8_t l[H], r[H];
	int k;

	if (hi == lo) {
		sha("", 0, out);
	} else if (hi - lo == 1) {
		memcpy(out, model_leaf[lo], H);
	} else {
		k = model_k(hi - lo);
		model_mth(lo, lo + k, l);
		model_mth(lo + k, hi, r);
		model_node(l, r, out);
	}
}

static void model_path(int m, int lo, int hi, uint8_t (*out)[H], int *n)
{
	int k;

	if (hi - lo == 1)
		return;
	k = model_k(hi - lo);
	if (m < k) {
		model_path(m, lo, lo + k, out, n);
		model_mth(lo + k, hi, out[(*n)++]);
	} else {
		model_path(m - k, lo + k, hi, out, n);
		model_mth(lo, lo + k, out[(*n)++]);
	}
}

static void model_subproof(int m, int lo, int hi, int b, uint8_t (*out)[H], int *n)
{
	int k;

	if (m == hi - lo) {
		if (!b)
			model_mth(lo, hi, out[(*n)++]);
		return;
	}
	k = model_k(hi - lo);
	if (m <= k) {
		model_subproof(m, lo, lo + k, b, out, n);
		model_mth(lo + k, hi, out[(*n)++]);
	} else {
		model_subproof(m - k, lo + k, hi, 0, out, n);
		model_mth(lo, lo + k, out[(*n)++]);
	}
}

/* ---- fixtures ---- */

static struct merkle_mem tree;
static uint8_t roots[NMAX + 1][H];

static int setup_tree(void **state)
{
	uint8_t buf[32];
	struct err e = {0};
	int i, j;

	merkle_mem_init(&tree);
	for (i = 0; i < NMAX; i++) {
		size_t len = leaf_data(i, buf);

		if (merkle_mem_append(&tree, buf, len, &e) < 0)
			return -1;
		if (merkle_leaf_hash(buf, len, model_leaf[i], &e) < 0)
			return -1;
	}
	for (i = 0; i < NMAX; i++)
		for (j = 0; j < i; j++)
			if (memcmp(model_leaf[i], model_leaf[j], H) == 0)
				return -1;
	for (i = 0; i <= NMAX; i++)
		if (merkle_root((uint64_t)i, merkle_mem_get, &tree, roots[i], &e) < 0)
			return -1;
	return 0;
}

static int teardown_tree(void **state)
{
	merkle_mem_free(&tree);
	return 0;
}

static void assert_bad_proof(const struct err *e, const char *fragment)
{
	assert_int_equal(e->kind, ERR_UNPROC);
	assert_string_equal(e->code, "bad_proof");
	if (strstr(e->msg, fragment) == NULL)
		fail_msg("message \"%s\" does not mention \"%s\"", e->msg, fragment);
}

/* ---- known answers and the model ---- */

static void test_ct_roots(void **state)
{
	char hex[2 * H + 1];
	int n;

	for (n = 0; n <= 8; n++) {
		crypto_hex(roots[n], H, hex);
		assert_string_equal(hex, ct_roots[n]);
	}
}

static void test_leaf_and_empty_hash(void **state)
{
	uint8_t h[H], want[H], buf[3] = {0x00, 0xab, 0xcd};
	struct err e = {0};

	assert_int_equal(merkle_leaf_hash(buf + 1, 2, h, &e), 0);
	sha(buf, 3, want); /* 0x00 prefix, RFC 9162 §2.1.1 */
	assert_memory_equal(h, want, H);
	assert_int_equal(merkle_root(0, merkle_mem_get, &tree, h, &e), 0);
	sha("", 0, want);
	assert_memory_equal(h, want, H);
}

static void test_roots_match_model(void **state)
{
	uint8_t want[H];
	int n;

	for (n = 0; n <= NMAX; n++) {
		model_mth(0, n, want);
		assert_memory_equal(roots[n], want, H);
	}
}

/* ---- inclusion ---- */

static void check_inclusion_refusals(int i, int n, uint8_t (*p)[H], int len)
{
	uint8_t q[MERKLE_MAX_PROOF + 1][H], other[H];
	struct err e = {0};
	int j, b;

	/* One flipped bit anywhere in the proof. */
	for (j = 0; j < len; j++) {
		for (b = 0; b < 8 * H; b += 61) {
			memcpy(q, p, (size_t)len * H);
			q[j][b / 8] ^= (uint8_t)(1u << (b % 8));
			assert_int_equal(
			    merkle_verify_inclusion((uint64_t)i, (uint64_t)n, model_leaf[i],
			                            (const uint8_t(*)[H])q, len, roots[n], &e),
			    -1);
			assert_bad_proof(&e, "root mismatch");
		}
	}
	/* Too short, too long. */
	if (len > 0) {
		assert_int_equal(merkle_verify_inclusion((uint64_t)i, (uint64_t)n, model_leaf[i],
		                                         (const uint8_t(*)[H])p, len - 1, roots[n],
		                                         &e),
		                 -1);
		assert_bad_proof(&e, "wrong proof length");
	}
	memcpy(q, p, (size_t)len * H);
	memcpy(q[len], roots[n], H);
	assert_int_equal(merkle_verify_inclusion((uint64_t)i, (uint64_t)n, model_leaf[i],
	                                         (const uint8_t(*)[H])q, len + 1, roots[n], &e),
	                 -1);
	assert_bad_proof(&e, "wrong proof length");
	/* Another leaf, another index, another size, another root. */
	memcpy(other, model_leaf[(i + 1) % NMAX], H);
	assert_int_equal(merkle_verify_inclusion((uint64_t)i, (uint64_t)n, other,
	                                         (const uint8_t(*)[H])p, len, roots[n], &e),
	                 -1);
	for (j = 0; j < n; j++)
		if (j != i)
			assert_int_equal(
			    merkle_verify_inclusion((uint64_t)j, (uint64_t)n, model_leaf[i],
			                            (const uint8_t(*)[H])p, len, roots[n], &e),
			    -1);
	if (n < NMAX)
		assert_int_equal(merkle_verify_inclusion((uint64_t)i, (uint64_t)n + 1,
		                                         model_leaf[i], (const uint8_t(*)[H])p, len,
		                                         roots[n + 1], &e),
		                 -1);
	if (n > i + 1)
		assert_int_equal(merkle_verify_inclusion((uint64_t)i, (uint64_t)n - 1,
		                                         model_leaf[i], (const uint8_t(*)[H])p, len,
		                                         roots[n - 1], &e),
		                 -1);
	assert_int_equal(merkle_verify_inclusion((uint64_t)i, (uint64_t)n, model_leaf[i],
	                                         (const uint8_t(*)[H])p, len, roots[n - 1], &e),
	                 -1);
}

static void test_inclusion_every_index_and_size(void **state)
{
	uint8_t p[MERKLE_MAX_PROOF][H], want[MERKLE_MAX_PROOF][H];
	struct err e = {0};
	int n, i, len, wlen, checked = 0;

	for (n = 1; n <= NMAX; n++) {
		for (i = 0; i < n; i++) {
			assert_int_equal(merkle_inclusion_proof((uint64_t)i, (uint64_t)n,
			                                        merkle_mem_get, &tree, p, &len, &e),
			                 0);
			wlen = 0;
			model_path(i, 0, n, want, &wlen);
			assert_int_equal(len, wlen);
			assert_int_equal(len, merkle_inclusion_proof_len((uint64_t)i, (uint64_t)n));
			if (len > 0)
				assert_memory_equal(p, want, (size_t)len * H);
			assert_int_equal(
			    merkle_verify_inclusion((uint64_t)i, (uint64_t)n, model_leaf[i],
			                            (const uint8_t(*)[H])p, len, roots[n], &e),
			    0);
			check_inclusion_refusals(i, n, p, len);
			checked++;
		}
	}
	assert_int_equal(checked, NMAX * (NMAX + 1) / 2);
}

static void test_inclusion_out_of_range(void **state)
{
	uint8_t p[MERKLE_MAX_PROOF][H];
	struct err e = {0};
	int len = 7;

	assert_int_equal(merkle_inclusion_proof(5, 5, merkle_mem_get, &tree, p, &len, &e), -1);
	assert_int_equal(len, 0);
	assert_bad_proof(&e, "out of range");
	assert_int_equal(merkle_inclusion_proof(0, 0, merkle_mem_get, &tree, p, &len, &e), -1);
	assert_int_equal(merkle_verify_inclusion(5, 5, model_leaf[0], NULL, 0, roots[5], &e), -1);
	assert_bad_proof(&e, "out of range");
	assert_int_equal(merkle_verify_inclusion(0, 0, model_leaf[0], NULL, 0, roots[0], &e), -1);
	assert_bad_proof(&e, "out of range");
	/* A tree the store does not hold: the callback's error comes back. */
	assert_int_equal(merkle_inclusion_proof(3, NMAX + 5, merkle_mem_get, &tree, p, &len, &e),
	                 -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_string_equal(e.code, "merkle_node_missing");
	/* Single leaf: empty proof, root is the leaf hash. */
	assert_int_equal(merkle_verify_inclusion(0, 1, model_leaf[0], NULL, 0, roots[1], &e), 0);
	assert_int_equal(merkle_verify_inclusion(0, 1, model_leaf[1], NULL, 0, roots[1], &e), -1);
	assert_bad_proof(&e, "root mismatch");
	assert_int_equal(merkle_verify_inclusion(0, 1, model_leaf[0], NULL, -1, roots[1], &e), -1);
	assert_bad_proof(&e, "wrong proof length");
}

/* ---- consistency ---- */

static void check_consistency_refusals(int m, int n, uint8_t (*p)[H], int len)
{
	uint8_t q[MERKLE_MAX_PROOF + 1][H];
	struct err e = {0};
	int j, b;

	for (j = 0; j < len; j++) {
		for (b = 3; b < 8 * H; b += 67) {
			memcpy(q, p, (size_t)len * H);
			q[j][b / 8] ^= (uint8_t)(1u << (b % 8));
			assert_int_equal(merkle_verify_consistency((uint64_t)m, (uint64_t)n,
			                                           roots[m], roots[n],
			                                           (const uint8_t(*)[H])q, len, &e),
			                 -1);
			assert_bad_proof(&e, "root mismatch");
		}
	}
	if (len > 0) {
		assert_int_equal(merkle_verify_consistency((uint64_t)m, (uint64_t)n, roots[m],
		                                           roots[n], (const uint8_t(*)[H])p + 1,
		                                           len - 1, &e),
		                 -1);
		assert_bad_proof(&e, "wrong proof length");
	}
	memcpy(q, p, (size_t)len * H);
	memcpy(q[len], roots[n], H);
	assert_int_equal(merkle_verify_consistency((uint64_t)m, (uint64_t)n, roots[m], roots[n],
	                                           (const uint8_t(*)[H])q, len + 1, &e),
	                 -1);
	assert_bad_proof(&e, "wrong proof length");
	/* Heads of other sizes, sizes that are not the proof's. */
	assert_int_equal(merkle_verify_consistency((uint64_t)m, (uint64_t)n, roots[m - 1], roots[n],
	                                           (const uint8_t(*)[H])p, len, &e),
	                 -1);
	if (n < NMAX) {
		assert_int_equal(merkle_verify_consistency((uint64_t)m, (uint64_t)n, roots[m],
		                                           roots[n + 1], (const uint8_t(*)[H])p,
		                                           len, &e),
		                 -1);
		assert_int_equal(merkle_verify_consistency((uint64_t)m, (uint64_t)n + 1, roots[m],
		                                           roots[n + 1], (const uint8_t(*)[H])p,
		                                           len, &e),
		                 -1);
	}
	if (m > 1)
		assert_int_equal(merkle_verify_consistency((uint64_t)m - 1, (uint64_t)n,
		                                           roots[m - 1], roots[n],
		                                           (const uint8_t(*)[H])p, len, &e),
		                 -1);
	/* Backwards. */
	if (m < n) {
		assert_int_equal(merkle_verify_consistency((uint64_t)n, (uint64_t)m, roots[n],
		                                           roots[m], (const uint8_t(*)[H])p, len,
		                                           &e),
		                 -1);
		assert_bad_proof(&e, "larger than the second");
	}
}

static void test_consistency_every_pair(void **state)
{
	uint8_t p[MERKLE_MAX_PROOF][H], want[MERKLE_MAX_PROOF][H];
	struct err e = {0};
	int n, m, len, wlen, checked = 0;

	for (n = 1; n <= NMAX; n++) {
		for (m = 1; m <= n; m++) {
			assert_int_equal(merkle_consistency_proof((uint64_t)m, (uint64_t)n,
			                                          merkle_mem_get, &tree, p, &len,
			                                          &e),
			                 0);
			wlen = 0;
			model_subproof(m, 0, n, 1, want, &wlen);
			assert_int_equal(len, wlen);
			assert_int_equal(len,
			                 merkle_consistency_proof_len((uint64_t)m, (uint64_t)n));
			if (len > 0)
				assert_memory_equal(p, want, (size_t)len * H);
			if (m < n)
				assert_true(len > 0);
			assert_int_equal(merkle_verify_consistency((uint64_t)m, (uint64_t)n,
			                                           roots[m], roots[n],
			                                           (const uint8_t(*)[H])p, len, &e),
			                 0);
			check_consistency_refusals(m, n, p, len);
			checked++;
		}
	}
	assert_int_equal(checked, NMAX * (NMAX + 1) / 2);
}

static void test_consistency_edges(void **state)
{
	uint8_t p[MERKLE_MAX_PROOF][H];
	struct err e = {0};
	int len = 9;

	/* m == 0: no proof exists (RFC 9162 defines 0 < m), generating or verifying. */
	assert_int_equal(merkle_consistency_proof(0, 5, merkle_mem_get, &tree, p, &len, &e), -1);
	assert_int_equal(len, 0);
	assert_bad_proof(&e, "empty tree");
	assert_int_equal(merkle_verify_consistency(0, 5, roots[0], roots[5], NULL, 0, &e), -1);
	assert_bad_proof(&e, "empty tree");
	assert_int_equal(merkle_verify_consistency(0, 0, roots[0], roots[0], NULL, 0, &e), -1);
	/* m > n */
	assert_int_equal(merkle_consistency_proof(6, 5, merkle_mem_get, &tree, p, &len, &e), -1);
	assert_bad_proof(&e, "larger than the second");
	/* m == n: empty proof, equal heads; a different head of that size is a fork. */
	assert_int_equal(merkle_consistency_proof(7, 7, merkle_mem_get, &tree, p, &len, &e), 0);
	assert_int_equal(len, 0);
	assert_int_equal(merkle_verify_consistency(7, 7, roots[7], roots[7], NULL, 0, &e), 0);
	assert_int_equal(merkle_verify_consistency(7, 7, roots[7], roots[6], NULL, 0, &e), -1);
	assert_bad_proof(&e, "same tree size");
	memcpy(p[0], roots[7], H);
	assert_int_equal(
	    merkle_verify_consistency(7, 7, roots[7], roots[7], (const uint8_t(*)[H])p, 1, &e), -1);
	assert_bad_proof(&e, "wrong proof length");
	/* m < n with an empty proof: RFC 9162 §2.1.4.2 step 1. */
	assert_int_equal(merkle_verify_consistency(4, 8, roots[4], roots[8], NULL, 0, &e), -1);
	assert_bad_proof(&e, "wrong proof length");
}

/* ---- appends ---- */

static int failing_get(void *ctx, unsigned level, uint64_t index, uint8_t out[H], struct err *e)
{
	return err_set(e, ERR_TEMP, "db_unavailable", "database down");
}

static void test_append_nodes(void **state)
{
	struct merkle_node nodes[MERKLE_MAX_APPEND_NODES];
	uint8_t leaf[H] = {7}, want[H];
	struct err e = {0};
	uint64_t i;
	int n, j;

	for (i = 0; i < NMAX; i++) {
		assert_int_equal(
		    merkle_append_nodes(i, model_leaf[i], merkle_mem_get, &tree, nodes, &n, &e), 0);
		/* Level 0 is the leaf, then one level per trailing one bit of i. */
		assert_int_equal(n, 1 + __builtin_ctzll(~i));
		for (j = 0; j < n; j++) {
			assert_int_equal(nodes[j].level, j);
			assert_int_equal(nodes[j].index, i >> j);
			model_mth((int)((i >> j) << j), (int)(((i >> j) + 1) << j), want);
			assert_memory_equal(nodes[j].hash, want, H);
		}
	}
	/* Appending the leaf after index 6 (binary 111) needs three left siblings. */
	assert_int_equal(merkle_append_nodes(7, leaf, failing_get, NULL, nodes, &n, &e), -1);
	assert_int_equal(n, 0);
	assert_int_equal(e.kind, ERR_TEMP);
	assert_int_equal(merkle_append_nodes(8, leaf, failing_get, NULL, nodes, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(
	    merkle_append_nodes(MERKLE_MAX_SIZE, leaf, failing_get, NULL, nodes, &n, &e), -1);
	assert_string_equal(e.code, "log_full");
}

/* ---- cost and very large trees, through a synthetic store ---- */

struct counting {
	unsigned long calls;
};

/* A virtual tree as large as wanted: leaf i is leaf (i mod 16) of the test
 * tree, so a perfect subtree below level 4 is hashed from its leaves and
 * every subtree at level l >= 4 has the same hash. */
static void periodic_node(unsigned level, uint64_t index, uint8_t out[H])
{
	uint8_t l[H], r[H];

	if (level == 0) {
		memcpy(out, model_leaf[index % 16], H);
	} else if (level > 4) {
		periodic_node(level - 1, 0, l);
		model_node(l, l, out);
	} else {
		periodic_node(level - 1, 2 * index, l);
		periodic_node(level - 1, 2 * index + 1, r);
		model_node(l, r, out);
	}
}

static int synthetic_get(void *ctx, unsigned level, uint64_t index, uint8_t out[H], struct err *e)
{
	struct counting *c = ctx;

	c->calls++;
	periodic_node(level, index, out);
	return 0;
}

static int bits(uint64_t x)
{
	return x ? 64 - __builtin_clzll(x) : 0;
}

static void test_cost_and_huge_trees(void **state)
{
	static const uint64_t sizes[] = {1000,
	                                 1000000,
	                                 10000001,
	                                 (uint64_t)1 << 40,
	                                 ((uint64_t)1 << 62) + 12345,
	                                 MERKLE_MAX_SIZE - 1,
	                                 MERKLE_MAX_SIZE};
	uint8_t p[MERKLE_MAX_PROOF][H], root[H], root_m[H], leaf[H];
	struct counting c = {0};
	struct err e = {0};
	size_t s;
	int len;

	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint64_t n = sizes[s], idx[3] = {0, n / 3, n - 1}, m;
		unsigned long limit = 2ul * (unsigned long)bits(n - 1) + 1;
		int k;

		c.calls = 0;
		assert_int_equal(merkle_root(n, synthetic_get, &c, root, &e), 0);
		assert_int_equal(c.calls, __builtin_popcountll(n));
		for (k = 0; k < 3; k++) {
			c.calls = 0;
			assert_int_equal(
			    merkle_inclusion_proof(idx[k], n, synthetic_get, &c, p, &len, &e), 0);
			assert_true(c.calls <= limit);
			assert_true(len <= 63);
			assert_int_equal(synthetic_get(&c, 0, idx[k], leaf, &e), 0);
			assert_int_equal(merkle_verify_inclusion(idx[k], n, leaf,
			                                         (const uint8_t(*)[H])p, len, root,
			                                         &e),
			                 0);
		}
		for (m = 1; m < n; m = m * 3 + 1) {
			c.calls = 0;
			assert_int_equal(
			    merkle_consistency_proof(m, n, synthetic_get, &c, p, &len, &e), 0);
			assert_true(c.calls <= limit);
			assert_int_equal(merkle_root(m, synthetic_get, &c, root_m, &e), 0);
			assert_int_equal(merkle_verify_consistency(m, n, root_m, root,
			                                           (const uint8_t(*)[H])p, len, &e),
			                 0);
		}
	}
	/* The longest proofs fit MERKLE_MAX_PROOF, and nothing larger is accepted. */
	assert_int_equal(merkle_consistency_proof_len(3, MERKLE_MAX_SIZE), 64);
	assert_int_equal(merkle_inclusion_proof_len(1, MERKLE_MAX_SIZE), 63);
	assert_int_equal(merkle_inclusion_proof_len(0, MERKLE_MAX_SIZE + 1), -1);
	assert_int_equal(merkle_root(MERKLE_MAX_SIZE + 1, synthetic_get, &c, root, &e), -1);
	assert_int_equal(merkle_verify_inclusion(0, MERKLE_MAX_SIZE + 1, leaf, NULL, 0, root, &e),
	                 -1);
	assert_int_equal(merkle_verify_consistency(1, UINT64_MAX, leaf, root, NULL, 0, &e), -1);
	assert_int_equal(
	    merkle_verify_inclusion(UINT64_MAX - 1, UINT64_MAX, leaf, NULL, 0, root, &e), -1);
}

/* ---- wire form ---- */

static void test_json_round_trip(void **state)
{
	uint8_t p[MERKLE_MAX_PROOF][H], back[MERKLE_MAX_PROOF][H];
	struct err e = {0};
	json_t *arr;
	int len, n2;

	assert_int_equal(merkle_inclusion_proof(5, 13, merkle_mem_get, &tree, p, &len, &e), 0);
	arr = merkle_proof_to_json((const uint8_t(*)[H])p, len, &e);
	assert_non_null(arr);
	assert_int_equal(json_array_size(arr), (size_t)len);
	assert_int_equal(strlen(json_string_value(json_array_get(arr, 0))), 44);
	assert_int_equal(merkle_proof_from_json(arr, back, &n2, &e), 0);
	assert_int_equal(n2, len);
	assert_memory_equal(back, p, (size_t)len * H);
	json_decref(arr);
}

static void expect_bad_json(const char *text, const char *fragment)
{
	uint8_t p[MERKLE_MAX_PROOF][H];
	struct err e = {0};
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	int n = 5;

	assert_non_null(v);
	assert_int_equal(merkle_proof_from_json(v, p, &n, &e), -1);
	assert_int_equal(n, 0);
	assert_int_equal(e.kind, ERR_INPUT);
	assert_string_equal(e.code, "bad_proof");
	if (strstr(e.msg, fragment) == NULL)
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, e.msg, fragment);
	json_decref(v);
}

static void test_json_refusals(void **state)
{
	static const char good[] = "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"";
	char big[70 * 48 + 8];
	size_t off = 0;
	int i;

	expect_bad_json("{}", "array");
	expect_bad_json("\"AAAA\"", "array");
	expect_bad_json("[1]", "base64 string");
	expect_bad_json("[null]", "base64 string");
	expect_bad_json("[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\"]", "32 bytes"); /* 31 */
	expect_bad_json("[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]", "32 bytes"); /* 33 */
	expect_bad_json("[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_=\"]", "32 bytes"); /* url */
	expect_bad_json("[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]",
	                "32 bytes"); /* unpadded */
	expect_bad_json("[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\\u0000\"]", "NUL");
	big[off++] = '[';
	for (i = 0; i < MERKLE_MAX_PROOF + 1; i++)
		off += (size_t)snprintf(big + off, sizeof(big) - off, "%s%s", i ? "," : "", good);
	big[off++] = ']';
	big[off] = '\0';
	expect_bad_json(big, "at most 64");
}

/* ---- modes for tests/integration/test_merkle_ref.py ---- */

static json_t *hash_json(const uint8_t h[H])
{
	struct err e = {0};
	json_t *s = merkle_hash_to_json(h, &e);

	assert_non_null(s);
	return s;
}

static void test_write_vectors(void **state)
{
	uint8_t p[MERKLE_MAX_PROOF][H], buf[32];
	json_t *doc = json_object(), *leaves = json_array(), *rts = json_array();
	json_t *inc = json_array(), *con = json_array();
	struct err e = {0};
	int n, i, len;
	char *text;

	for (i = 0; i < NMAX; i++) {
		size_t dlen = leaf_data(i, buf);

		text = crypto_b64_encode(buf, dlen);
		json_array_append_new(leaves, json_string(text));
		free(text);
	}
	for (n = 0; n <= NMAX; n++)
		json_array_append_new(rts, hash_json(roots[n]));
	for (n = 1; n <= NMAX; n++) {
		for (i = 0; i < n; i++) {
			assert_int_equal(merkle_inclusion_proof((uint64_t)i, (uint64_t)n,
			                                        merkle_mem_get, &tree, p, &len, &e),
			                 0);
			json_array_append_new(
			    inc, json_pack("{s:i,s:i,s:o}", "index", i, "size", n, "proof",
			                   merkle_proof_to_json((const uint8_t(*)[H])p, len, &e)));
		}
		for (i = 1; i <= n; i++) {
			assert_int_equal(merkle_consistency_proof((uint64_t)i, (uint64_t)n,
			                                          merkle_mem_get, &tree, p, &len,
			                                          &e),
			                 0);
			json_array_append_new(
			    con, json_pack("{s:i,s:i,s:o}", "m", i, "n", n, "proof",
			                   merkle_proof_to_json((const uint8_t(*)[H])p, len, &e)));
		}
	}
	json_object_set_new(doc, "leaves", leaves);
	json_object_set_new(doc, "roots", rts);
	json_object_set_new(doc, "inclusion", inc);
	json_object_set_new(doc, "consistency", con);
	assert_int_equal(json_dump_file(doc, getenv("MERKLE_VECTORS"), JSON_COMPACT), 0);
	json_decref(doc);
}

static int json_u64(const json_t *o, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* One entry of the check file: 1 when the C verifier accepts it. */
static int check_verdict(const json_t *item, int consistency)
{
	uint8_t p[MERKLE_MAX_PROOF][H], a[H], b[H];
	struct err e = {0};
	uint64_t x, y;
	int len;

	if (merkle_proof_from_json(json_object_get(item, "proof"), p, &len, &e) < 0)
		return 0;
	if (consistency) {
		assert_int_equal(json_u64(item, "m", &x), 0);
		assert_int_equal(json_u64(item, "n", &y), 0);
		assert_int_equal(merkle_hash_from_json(json_object_get(item, "root_m"), a, &e), 0);
		assert_int_equal(merkle_hash_from_json(json_object_get(item, "root_n"), b, &e), 0);
		return merkle_verify_consistency(x, y, a, b, (const uint8_t(*)[H])p, len, &e) == 0;
	}
	assert_int_equal(json_u64(item, "index", &x), 0);
	assert_int_equal(json_u64(item, "size", &y), 0);
	assert_int_equal(merkle_hash_from_json(json_object_get(item, "leaf"), a, &e), 0);
	assert_int_equal(merkle_hash_from_json(json_object_get(item, "root"), b, &e), 0);
	return merkle_verify_inclusion(x, y, a, (const uint8_t(*)[H])p, len, b, &e) == 0;
}

static void test_check_file(void **state)
{
	static const char *const kinds[2] = {"inclusion", "consistency"};
	struct merkle_mem mine;
	uint8_t h[H], want[H];
	struct err e = {0};
	json_error_t je;
	json_t *doc = json_load_file(getenv("MERKLE_CHECK"), 0, &je), *item, *leaves;
	int counts[2] = {0, 0}, bad = 0, k;
	size_t i;

	assert_non_null(doc);
	/* The reference's roots for its own leaves, recomputed here. */
	leaves = json_object_get(doc, "leaves");
	merkle_mem_init(&mine);
	for (i = 0; i <= json_array_size(leaves); i++) {
		assert_int_equal(merkle_root(mine.size, merkle_mem_get, &mine, h, &e), 0);
		assert_int_equal(merkle_hash_from_json(
		                     json_array_get(json_object_get(doc, "roots"), i), want, &e),
		                 0);
		if (memcmp(h, want, H) != 0) {
			printf("merkle_check: root of size %zu differs\n", i);
			bad++;
		}
		if (i < json_array_size(leaves)) {
			size_t dlen = 0;
			uint8_t *data =
			    crypto_b64_decode(json_string_value(json_array_get(leaves, i)), &dlen);

			assert_non_null(data);
			assert_int_equal(merkle_mem_append(&mine, data, dlen, &e), 0);
			free(data);
		}
	}
	merkle_mem_free(&mine);
	for (k = 0; k < 2; k++) {
		json_array_foreach(json_object_get(doc, kinds[k]), i, item)
		{
			int expect = json_is_true(json_object_get(item, "expect"));

			if (check_verdict(item, k) != expect) {
				printf("merkle_check: %s #%zu (%s): C says %s\n", kinds[k], i,
				       json_string_value(json_object_get(item, "why")),
				       expect ? "invalid" : "valid");
				bad++;
			}
			counts[k]++;
		}
	}
	printf("merkle_check: %d inclusion, %d consistency, %d disagreements\n", counts[0],
	       counts[1], bad);
	json_decref(doc);
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ct_roots),
	    cmocka_unit_test(test_leaf_and_empty_hash),
	    cmocka_unit_test(test_roots_match_model),
	    cmocka_unit_test(test_inclusion_every_index_and_size),
	    cmocka_unit_test(test_inclusion_out_of_range),
	    cmocka_unit_test(test_consistency_every_pair),
	    cmocka_unit_test(test_consistency_edges),
	    cmocka_unit_test(test_append_nodes),
	    cmocka_unit_test(test_cost_and_huge_trees),
	    cmocka_unit_test(test_json_round_trip),
	    cmocka_unit_test(test_json_refusals),
	};
	const struct CMUnitTest vectors[] = {cmocka_unit_test(test_write_vectors)};
	const struct CMUnitTest check[] = {cmocka_unit_test(test_check_file)};

	if (getenv("MERKLE_VECTORS") != NULL)
		return cmocka_run_group_tests_name("merkle_vectors", vectors, setup_tree,
		                                   teardown_tree);
	if (getenv("MERKLE_CHECK") != NULL)
		return cmocka_run_group_tests_name("merkle_check", check, NULL, NULL);
	return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}
