/*
 * merkle.h - the append-only Merkle tree of RFC 9162 §2.1: tree heads,
 * inclusion and consistency proofs, and their verifiers.
 *
 * Hashing (RFC 9162 §2.1.1): a leaf is SHA-256(0x00 || data), an interior
 * node SHA-256(0x01 || left || right), the hash of the empty tree
 * SHA-256("").  The tree over n leaves splits at k, the largest power of two
 * smaller than n.
 *
 * Storage is the caller's.  The tree is read through a callback returning
 * the hash of a *perfect* subtree: level l, index i is the hash of the leaves
 * [i * 2^l, (i + 1) * 2^l), level 0 being the leaf hashes.  Those nodes never
 * change once complete, so a store keeps a table (level, index, hash) and
 * adds the nodes merkle_append_nodes() returns on every append.  Every other
 * hash the RFC needs (the root of a tree that is not a power of two, a right
 * sibling that is not perfect) is computed from perfect subtrees.
 *
 * Cost, in callbacks: merkle_root() makes popcount(size) lookups (at most
 * 64); merkle_inclusion_proof() and merkle_consistency_proof() make at most
 * 2 * ceil(log2(size)) + 1, i.e. O(log n): in RFC 9162's recursion at most
 * one sibling is not a perfect subtree, and that sibling's hash costs one
 * lookup per level it spans.
 *
 * Errors from the generators are the callback's, or ERR_UNPROC "bad_proof"
 * for arguments outside the tree.  The verifiers return 0 when the proof
 * holds and -1 with ERR_UNPROC "bad_proof" and a message saying what failed.
 */
#ifndef ANCHOR_MERKLE_H
#define ANCHOR_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

#define MERKLE_HASH_LEN 32
/* Largest tree: 2^63 leaves, so that no proof is longer than MERKLE_MAX_PROOF
 * (an inclusion proof has at most 63 hashes, a consistency proof 64). */
#define MERKLE_MAX_SIZE ((uint64_t)1 << 63)
#define MERKLE_MAX_PROOF 64
/* Most nodes one append completes: the leaf and one per level above it. */
#define MERKLE_MAX_APPEND_NODES 64

/* Hash of the perfect subtree (level, index) into out; 0, or -1 with *e filled
 * (ERR_NOTFOUND when the store does not hold it, ERR_TEMP when the database is down). */
typedef int (*merkle_node_fn)(void *ctx, unsigned level, uint64_t index,
                              uint8_t out[MERKLE_HASH_LEN], struct err *e);

struct merkle_node {
	unsigned level;
	uint64_t index;
	uint8_t hash[MERKLE_HASH_LEN];
};

/* SHA-256(0x00 || data).  Returns 0, or -1 when OpenSSL fails (ERR_INTERNAL). */
int merkle_leaf_hash(const void *data, size_t len, uint8_t out[MERKLE_HASH_LEN], struct err *e);
/* SHA-256(0x01 || left || right). */
int merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN], const uint8_t right[MERKLE_HASH_LEN],
                     uint8_t out[MERKLE_HASH_LEN], struct err *e);

/* The tree had new_leaf_index leaves and gains leaf_hash: fill out[] (room for
 * MERKLE_MAX_APPEND_NODES) with the perfect subtrees this completes, (0, i)
 * first and then (l, i >> l) for each l with (i + 1) a multiple of 2^l; *nout
 * is their number.  The left siblings are read through get.  The caller
 * stores them all before the tree is read at the new size. */
int merkle_append_nodes(uint64_t new_leaf_index, const uint8_t leaf_hash[MERKLE_HASH_LEN],
                        merkle_node_fn get, void *ctx, struct merkle_node *out, int *nout,
                        struct err *e);

/* MTH of the first size leaves (size 0: SHA-256 of the empty string). */
int merkle_root(uint64_t size, merkle_node_fn get, void *ctx, uint8_t out[MERKLE_HASH_LEN],
                struct err *e);

/* PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf to root, into proof[]
 * (room for MERKLE_MAX_PROOF); *n is its length.  Needs index < size. */
int merkle_inclusion_proof(uint64_t index, uint64_t size, merkle_node_fn get, void *ctx,
                           uint8_t (*proof)[MERKLE_HASH_LEN], int *n, struct err *e);

/* PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1.  Needs
 * 0 < m <= n; m == n gives the empty proof (the two heads must then be equal).
 * m == 0 is refused: the RFC defines no proof from the empty tree, which
 * every tree extends. */
int merkle_consistency_proof(uint64_t m, uint64_t n, merkle_node_fn get, void *ctx,
                             uint8_t (*proof)[MERKLE_HASH_LEN], int *len, struct err *e);

/* Number of hashes in a correct proof (-1 when the arguments admit none). */
int merkle_inclusion_proof_len(uint64_t index, uint64_t size);
int merkle_consistency_proof_len(uint64_t m, uint64_t n);

/* RFC 9162 §2.1.3.2: leaf_hash is leaf index of the tree of size whose head
 * is root.  A proof of the wrong length is refused before any hashing. */
int merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf_hash[MERKLE_HASH_LEN],
                            const uint8_t (*proof)[MERKLE_HASH_LEN], int n,
                            const uint8_t root[MERKLE_HASH_LEN], struct err *e);

/* RFC 9162 §2.1.4.2: the tree of size m (head root_m) is a prefix of the tree
 * of size n (head root_n).  0 < m < n runs the RFC's algorithm; m == n holds
 * only with an empty proof and root_m == root_n (two heads for one size that
 * differ are a fork); m == 0 and m > n fail. */
int merkle_verify_consistency(uint64_t m, uint64_t n, const uint8_t root_m[MERKLE_HASH_LEN],
                              const uint8_t root_n[MERKLE_HASH_LEN],
                              const uint8_t (*proof)[MERKLE_HASH_LEN], int len, struct err *e);

/* ---- wire form: a hash is a base64 string, a proof an array of them ---- */

/* New JSON string / array (NULL on allocation failure, *e filled). */
json_t *merkle_hash_to_json(const uint8_t hash[MERKLE_HASH_LEN], struct err *e);
json_t *merkle_proof_to_json(const uint8_t (*proof)[MERKLE_HASH_LEN], int n, struct err *e);
/* Parse; ERR_INPUT "bad_proof" unless a string of exactly 32 bytes in base64
 * (an array of at most MERKLE_MAX_PROOF of them). */
int merkle_hash_from_json(const json_t *str, uint8_t out[MERKLE_HASH_LEN], struct err *e);
int merkle_proof_from_json(const json_t *arr, uint8_t (*proof)[MERKLE_HASH_LEN], int *n,
                           struct err *e);

/* ---- an in-memory store (tests, benchmarks, client-side audits) ---- */

struct merkle_mem {
	uint8_t (*level[MERKLE_MAX_APPEND_NODES])[MERKLE_HASH_LEN]; /* complete nodes */
	uint64_t count[MERKLE_MAX_APPEND_NODES];
	uint64_t cap[MERKLE_MAX_APPEND_NODES];
	uint64_t size; /* leaves */
};

void merkle_mem_init(struct merkle_mem *m);
void merkle_mem_free(struct merkle_mem *m); /* releases the arrays; accepts NULL */
/* Make room for leaves leaves without reallocating (optional). */
int merkle_mem_reserve(struct merkle_mem *m, uint64_t leaves, struct err *e);
int merkle_mem_append(struct merkle_mem *m, const void *data, size_t len, struct err *e);
int merkle_mem_append_hash(struct merkle_mem *m, const uint8_t leaf_hash[MERKLE_HASH_LEN],
                           struct err *e);
/* The merkle_node_fn over a struct merkle_mem (ctx); ERR_NOTFOUND past the end. */
int merkle_mem_get(void *ctx, unsigned level, uint64_t index, uint8_t out[MERKLE_HASH_LEN],
                   struct err *e);

#endif
