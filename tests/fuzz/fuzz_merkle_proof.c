/* fuzz_merkle_proof.c - the proof parser and the verifiers on arbitrary input.
 *
 * Input: byte 0 picks the mode, bytes 1..16 two 64-bit numbers, the rest
 * either a JSON proof (parsed with merkle_proof_from_json) or edits applied
 * to a genuine proof of a 100-leaf tree.  Whatever the verifiers accept must
 * be genuine: the leaf at that index, the proof the library itself makes for
 * those sizes.  Anything else verifying would be a verifier bug (or a
 * SHA-256 collision), and aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pki/merkle.h"

#define H MERKLE_HASH_LEN
#define LEAVES 100

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct merkle_mem tree;
static uint8_t roots[LEAVES + 1][H];

static void build_tree(void)
{
	struct err e = {0};
	uint64_t i;

	merkle_mem_init(&tree);
	for (i = 0; i < LEAVES; i++)
		if (merkle_mem_append(&tree, &i, sizeof(i), &e) < 0)
			abort();
	for (i = 0; i <= LEAVES; i++)
		if (merkle_root(i, merkle_mem_get, &tree, roots[i], &e) < 0)
			abort();
}

static uint64_t read_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void must_be_genuine_inclusion(uint64_t idx, uint64_t n, const uint8_t *leaf,
                                      uint8_t (*p)[H], int len)
{
	uint8_t want[MERKLE_MAX_PROOF][H];
	struct err e = {0};
	int wlen;

	if (merkle_inclusion_proof(idx, n, merkle_mem_get, &tree, want, &wlen, &e) < 0 ||
	    wlen != len || memcmp(want, p, (size_t)len * H) != 0 ||
	    memcmp(leaf, tree.level[0][idx], H) != 0)
		abort();
}

static void must_be_genuine_consistency(uint64_t m, uint64_t n, uint8_t (*p)[H], int len)
{
	uint8_t want[MERKLE_MAX_PROOF][H];
	struct err e = {0};
	int wlen;

	if (merkle_consistency_proof(m, n, merkle_mem_get, &tree, want, &wlen, &e) < 0 ||
	    wlen != len || memcmp(want, p, (size_t)len * H) != 0)
		abort();
}

/* Check (a, b) as an inclusion and as a consistency claim in the small tree. */
static void verify_small(uint64_t a, uint64_t b, uint8_t (*p)[H], int len, uint8_t pick)
{
	uint64_t n = b % (LEAVES + 1), idx = a % (LEAVES + 1), m = a % (LEAVES + 1);
	const uint8_t *leaf =
	    idx < LEAVES ? tree.level[0][pick % 2 ? idx : (idx + 1) % LEAVES] : roots[0];
	struct err e = {0};

	if (merkle_verify_inclusion(idx, n, leaf, (const uint8_t(*)[H])p, len, roots[n], &e) == 0)
		must_be_genuine_inclusion(idx, n, leaf, p, len);
	if (merkle_verify_consistency(m, n, roots[m], roots[n], (const uint8_t(*)[H])p, len, &e) ==
	    0)
		must_be_genuine_consistency(m, n, p, len);
}

/* Raw numbers, no tree: nothing may crash or read past the proof. */
static void verify_raw(uint64_t a, uint64_t b, uint8_t (*p)[H], int len)
{
	struct err e = {0};

	(void)merkle_verify_inclusion(a, b, p[0], (const uint8_t(*)[H])p, len, p[1], &e);
	(void)merkle_verify_consistency(a, b, p[0], p[1], (const uint8_t(*)[H])p, len, &e);
	(void)merkle_inclusion_proof_len(a, b);
	(void)merkle_consistency_proof_len(a, b);
}

/* Start from the genuine proof for the sizes, then apply the input's edits:
 * pairs (position, xor byte); position 0xff truncates, 0xfe appends a root. */
static int edited_proof(uint64_t a, uint64_t b, const uint8_t *ed, size_t nd, uint8_t (*p)[H])
{
	struct err e = {0};
	uint64_t n = b % (LEAVES + 1), x = a % (LEAVES + 1);
	int len = 0;
	size_t i;

	if (x < n && (ed[0] & 1))
		(void)merkle_inclusion_proof(x, n, merkle_mem_get, &tree, p, &len, &e);
	else if (x > 0 && x <= n)
		(void)merkle_consistency_proof(x, n, merkle_mem_get, &tree, p, &len, &e);
	for (i = 1; i + 1 < nd; i += 2) {
		if (ed[i] == 0xff && len > 0) {
			len--;
		} else if (ed[i] == 0xfe && len < MERKLE_MAX_PROOF) {
			memcpy(p[len++], roots[ed[i + 1] % (LEAVES + 1)], H);
		} else if (len > 0) {
			p[ed[i] / H % len][ed[i] % H] ^= ed[i + 1];
		}
	}
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t proof[MERKLE_MAX_PROOF + 2][H];
	struct err e = {0};
	json_error_t je;
	uint64_t a, b;
	json_t *v;
	int len;

	if (tree.size == 0)
		build_tree();
	if (size < 18)
		return 0;
	a = read_u64(data + 1);
	b = read_u64(data + 9);
	memset(proof, 0, sizeof(proof));
	if (data[0] & 1) {
		v = json_loadb((const char *)data + 17, size - 17, JSON_DECODE_ANY | JSON_ALLOW_NUL,
		               &je);
		if (v == NULL)
			return 0;
		if (merkle_proof_from_json(v, proof, &len, &e) == 0) {
			if (len < 0 || len > MERKLE_MAX_PROOF)
				abort();
			verify_raw(a, b, proof, len);
			verify_small(a, b, proof, len, data[0] >> 1);
		}
		json_decref(v);
	} else {
		len = edited_proof(a, b, data + 17, size - 17, proof);
		verify_raw(a, b, proof, len);
		verify_small(a, b, proof, len, data[0] >> 1);
	}
	return 0;
}
