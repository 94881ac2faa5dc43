/*
 * tlog_client.h - the relying party's side of a domain's transparency log
 * (PROTOCOL.md §10): verify signed tree heads and the inclusion proofs that
 * come with certificate objects, remember the newest head seen per domain,
 * and check that every new head is consistent with it.
 *
 * A fork is the one thing a key server cannot explain away: two heads of one
 * size with different roots, or two heads that no consistency proof joins.
 * It is a hard error, ERR_UNPROC "log_fork", whose message names both heads
 * (size and root) and whose heads the caller can keep as evidence.
 *
 * Heads are remembered in memory and, when the store has a path, in a JSON
 * file (created 0600, replaced atomically) so that a command-line client
 * remembers between runs:
 *
 *   {"version": 1, "heads": {"<domain>": {"size": N, "root_hash": "<b64>",
 *    "timestamp": "...", "jws": "<the signed head>"}}}
 */
#ifndef ANCHOR_TLOG_CLIENT_H
#define ANCHOR_TLOG_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "pki/merkle.h"

#define TLOG_DOMAIN_MAX 256
#define TLOG_TIME_MAX 40
#define TLOG_ROOT_B64_MAX 48 /* base64 of 32 bytes is 44 characters */

struct tlog_head {
	char domain[TLOG_DOMAIN_MAX];
	uint64_t size;
	uint8_t root[MERKLE_HASH_LEN];
	char timestamp[TLOG_TIME_MAX];
	char *jws; /* the signed head it came from (malloc'd), or NULL */
};

/* Release h->jws and zero h; accepts NULL. */
void tlog_head_clear(struct tlog_head *h);
/* Deep copy (the jws too); 0, or -1 on allocation failure. */
int tlog_head_copy(struct tlog_head *dst, const struct tlog_head *src, struct err *e);
/* "size N root <b64>" for messages. */
void tlog_head_describe(const struct tlog_head *h, char *out, size_t outlen);

/*
 * Verify a signed tree head: a JWS whose x5c chain verifies up to a root with
 * one of pins, signed by a CA certificate of that chain (the issuer or the
 * root: a user's key cannot sign heads), typ "anchor-tree-head+jws", payload
 * {"type": "anchor-tree-head", "domain": domain, "size", "root_hash",
 * "timestamp"}.  Fills *out (its jws a copy of text).  Errors: those of
 * jws_verify(), and ERR_UNPROC "bad_tree_head" for a head that verifies but
 * is not a head of this domain (wrong type, wrong domain, bad size or root).
 */
int tlog_head_verify(const char *text, size_t len, const char *domain, const char *const *pins,
                     int npins, struct tlog_head *out, struct err *e);

/* The domain a head claims, without verifying anything (to know which pins to
 * fetch); malloc'd, or NULL with ERR_UNPROC "bad_tree_head". */
char *tlog_head_peek_domain(const char *text, size_t len, struct err *e);

/*
 * Check that leaf (the exact text hashed into the log) is entry seq of the
 * tree of size tree_size whose verified head is head: the size must be the
 * head's (ERR_UNPROC "bad_proof" otherwise) and the RFC 9162 inclusion proof
 * (a JSON array of base64 hashes) must lead from SHA-256(0x00 || leaf) to
 * the head's root (ERR_UNPROC "bad_proof", with merkle's reason).
 */
int tlog_verify_leaf(const char *leaf, uint64_t seq, uint64_t tree_size, const json_t *proof,
                     const struct tlog_head *head, struct err *e);

/*
 * Check a certificate object's "log" member ({"seq", "leaf", "salt",
 * "tree_size", "proof"}) against a verified head: the leaf is the issuance of
 * this certificate (type "issued", same seq, domain, key_id and fingerprint),
 * its subject is hex(SHA-256(salt ":" name)) for the object's name (unless the
 * address was erased: no salt, and the fingerprint alone binds the entry), and the
 * inclusion proof holds (tlog_verify_leaf).  Errors: ERR_UNPROC "log_missing"
 * (no log member), "log_mismatch" (the leaf says something else), "bad_proof".
 */
int tlog_verify_cert(const json_t *cert, const struct tlog_head *head, struct err *e);

/* A certificate object that is usable: ERR_UNPROC "key_revoked" (with the
 * reason and time) when its status is revoked. */
int tlog_check_status(const json_t *cert, struct err *e);

/* ---- the head store ---- */

struct tlog_store;

/*
 * Fetch a consistency proof between sizes first < second of domain's log
 * (GET /v1/domains/{d}/log/consistency?first=&second=) into proof (room for
 * MERKLE_MAX_PROOF); *n its length.  0, or -1 with *e filled.
 */
typedef int (*tlog_consistency_fn)(void *ctx, const char *domain, uint64_t first, uint64_t second,
                                   uint8_t (*proof)[MERKLE_HASH_LEN], int *n, struct err *e);

/* A store kept in memory only (path NULL), or backed by the JSON file path,
 * read now when it exists.  A file that does not parse is an error
 * (ERR_INPUT "bad_state"), never silently forgotten heads. */
struct tlog_store *tlog_store_open(const char *path, struct err *e);
void tlog_store_free(struct tlog_store *s); /* accepts NULL */

/* The head remembered for domain, or NULL. */
const struct tlog_head *tlog_store_get(const struct tlog_store *s, const char *domain);

/*
 * A verified head was seen.  Nothing remembered: remember it.  Same size:
 * the roots must be equal.  Larger: fetch a consistency proof from the
 * remembered size and verify it, then remember the new head.  Smaller: the
 * new head must be consistent with the remembered one (it stays).  A
 * failure of any of these is ERR_UNPROC "log_fork" naming both heads; a
 * failure to fetch the proof is passed on as it is (no verdict: nothing is
 * remembered).  The file, when there is one, is written before returning.
 */
int tlog_store_observe(struct tlog_store *s, const struct tlog_head *head,
                       tlog_consistency_fn fetch, void *ctx, struct err *e);

/* Write the file now (a no-op for a memory store). */
int tlog_store_save(struct tlog_store *s, struct err *e);

#endif
