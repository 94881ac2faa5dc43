/* test_tlog_client.c - the relying party's side of the transparency log: signed
 * heads, certificate inclusion, the status check, and the head store with its
 * fork detection, over logs built here in memory and heads signed here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "pki/cert.h"
#include "pki/crypto.h"
#include "pki/jws.h"
#include "pki/merkle.h"
#include "pki/tlog_client.h"

#define DOMAIN "log.example"
#define NLEAVES 13
#define H MERKLE_HASH_LEN

struct fixture {
	EVP_PKEY *root_key, *issuer_key, *user_key;
	X509 *root, *issuer, *user;
	char pin[CRYPTO_PIN_MAX];
	const char *pins[1];
	struct merkle_mem tree;
	char *leaves[NLEAVES];
	char user_pem_fpr[CERT_FPR_LEN];
	char *user_pem;
	char key_id[CRYPTO_UUID_LEN];
	char salt[33];
	int user_seq; /* the leaf recording the user's issuance */
};

static char *leaf_text(int seq, const char *type, const char *key_id, const char *fpr,
                       const char *salt, const char *name)
{
	char subject[CRYPTO_HEX256_LEN], *salted = NULL, *text;
	json_t *o;

	assert_true(asprintf(&salted, "%s:%s", salt, name) > 0);
	crypto_sha256_hex(salted, strlen(salted), subject);
	free(salted);
	o = json_pack("{s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "v", 1, "seq", seq, "domain",
	              DOMAIN, "type", type, "time", "2026-01-01T00:00:00Z", "key_id", key_id,
	              "fingerprint", fpr, "kind", "user", "subject", subject);
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	assert_non_null(text);
	return text;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct cert_issue req = {CERT_PURPOSE_SMIME, "alice@" DOMAIN, NULL, 30};
	struct err e = {0};

	assert_non_null(f);
	f->root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	f->issuer_key = crypto_key_generate(KEY_ED25519, 0, &e);
	f->user_key = crypto_key_generate(KEY_ED25519, 0, &e);
	assert_non_null(f->user_key);
	f->root = cert_make_root(f->root_key, DOMAIN, 30, &e);
	f->issuer = cert_make_issuer(f->issuer_key, f->root, f->root_key, DOMAIN, 30, &e);
	assert_non_null(f->issuer);
	assert_int_equal(crypto_uuid_v4(f->key_id, &e), 0);
	req.key_id = f->key_id;
	f->user = cert_issue_leaf(&req, f->user_key, f->issuer, f->issuer_key, &e);
	assert_non_null(f->user);
	assert_int_equal(cert_fingerprint(f->user, f->user_pem_fpr, &e), 0);
	f->user_pem = cert_to_pem(f->user, &e);
	assert_int_equal(crypto_key_pin(f->root_key, f->pin, &e), 0);
	f->pins[0] = f->pin;
	snprintf(f->salt, sizeof(f->salt), "00112233445566778899aabbccddeeff");
	f->user_seq = 6;
	merkle_mem_init(&f->tree);
	for (int i = 0; i < NLEAVES; i++) {
		if (i == f->user_seq)
			f->leaves[i] = leaf_text(i, "issued", f->key_id, f->user_pem_fpr, f->salt,
			                         "alice@" DOMAIN);
		else
			f->leaves[i] = leaf_text(i, i % 3 ? "issued" : "route_set",
			                         "00000000-0000-4000-8000-000000000000",
			                         "sha256:00", "0123", "other@" DOMAIN);
		assert_int_equal(
		    merkle_mem_append(&f->tree, f->leaves[i], strlen(f->leaves[i]), &e), 0);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < NLEAVES; i++)
		free(f->leaves[i]);
	merkle_mem_free(&f->tree);
	free(f->user_pem);
	X509_free(f->root);
	X509_free(f->issuer);
	X509_free(f->user);
	EVP_PKEY_free(f->root_key);
	EVP_PKEY_free(f->issuer_key);
	EVP_PKEY_free(f->user_key);
	free(f);
	return 0;
}

/* A head over root for size, signed by key whose chain is chain[0..n). */
static char *sign_head_raw(EVP_PKEY *key, X509 **chain, int n, const char *typ, const char *type,
                           const char *domain, long long size, const uint8_t root[H])
{
	struct err e = {0};
	char *b64 = crypto_b64_encode(root, H), *payload, *jws;
	json_t *o =
	    json_pack("{s:s, s:s, s:I, s:s, s:s}", "type", type, "domain", domain, "size",
	              (json_int_t)size, "root_hash", b64, "timestamp", "2026-01-01T00:00:00Z");

	payload = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	jws = jws_sign(payload, strlen(payload), key, chain, n, typ, &e);
	assert_non_null(jws);
	json_decref(o);
	free(payload);
	free(b64);
	return jws;
}

static char *sign_head(struct fixture *f, uint64_t size, const uint8_t *root_override)
{
	X509 *chain[2] = {f->issuer, f->root};
	uint8_t root[H];
	struct err e = {0};

	if (root_override != NULL)
		memcpy(root, root_override, H);
	else
		assert_int_equal(merkle_root(size, merkle_mem_get, &f->tree, root, &e), 0);
	return sign_head_raw(f->issuer_key, chain, 2, "anchor-tree-head+jws", "anchor-tree-head",
	                     DOMAIN, (long long)size, root);
}

static void verified_head(struct fixture *f, uint64_t size, struct tlog_head *h)
{
	char *jws = sign_head(f, size, NULL);
	struct err e = {0};

	assert_int_equal(tlog_head_verify(jws, strlen(jws), DOMAIN, f->pins, 1, h, &e), 0);
	free(jws);
}

/* ---- heads ---- */

static void test_head_verifies(void **state)
{
	struct fixture *f = *state;
	struct tlog_head h;
	struct err e = {0};
	uint8_t root[H];
	char *jws = sign_head(f, NLEAVES, NULL), *dom;

	assert_int_equal(tlog_head_verify(jws, strlen(jws), "LOG.example", f->pins, 1, &h, &e), 0);
	assert_int_equal(h.size, NLEAVES);
	assert_string_equal(h.domain, DOMAIN);
	assert_int_equal(merkle_root(NLEAVES, merkle_mem_get, &f->tree, root, &e), 0);
	assert_memory_equal(h.root, root, H);
	assert_string_equal(h.jws, jws);
	dom = tlog_head_peek_domain(jws, strlen(jws), &e);
	assert_string_equal(dom, DOMAIN);
	free(dom);
	tlog_head_clear(&h);
	free(jws);
}

static void expect_head_error(struct fixture *f, const char *jws, const char *domain,
                              const char *const *pins, const char *code)
{
	struct tlog_head h;
	struct err e = {0};

	assert_int_equal(tlog_head_verify(jws, strlen(jws), domain, pins, 1, &h, &e), -1);
	assert_string_equal(e.code, code);
	assert_null(h.jws);
}

static void test_head_refusals(void **state)
{
	struct fixture *f = *state;
	X509 *ichain[2] = {f->issuer, f->root}, *uchain[3] = {f->user, f->issuer, f->root};
	uint8_t root[H] = {1};
	const char *other_pin[1] = {"sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="};
	char *good = sign_head(f, 5, NULL), *jws, *p;

	expect_head_error(f, good, "other.example", f->pins, "bad_tree_head");
	expect_head_error(f, good, DOMAIN, other_pin, "pin_mismatch");
	/* a flipped signature character */
	jws = strdup(good);
	p = strstr(jws, "\"signature\":\"") + 14;
	*p = *p == 'A' ? 'B' : 'A';
	expect_head_error(f, jws, DOMAIN, f->pins, "jws_signature");
	free(jws);
	/* signed by a user's key, with a valid chain: not the issuer */
	jws = sign_head_raw(f->user_key, uchain, 3, "anchor-tree-head+jws", "anchor-tree-head",
	                    DOMAIN, 5, root);
	expect_head_error(f, jws, DOMAIN, f->pins, "bad_tree_head");
	free(jws);
	/* a route answer is not a head */
	jws = sign_head_raw(f->issuer_key, ichain, 2, "anchor-route+jws", "anchor-tree-head",
	                    DOMAIN, 5, root);
	expect_head_error(f, jws, DOMAIN, f->pins, "bad_tree_head");
	free(jws);
	jws = sign_head_raw(f->issuer_key, ichain, 2, "anchor-tree-head+jws", "anchor-route",
	                    DOMAIN, 5, root);
	expect_head_error(f, jws, DOMAIN, f->pins, "bad_tree_head");
	free(jws);
	jws = sign_head_raw(f->issuer_key, ichain, 2, "anchor-tree-head+jws", "anchor-tree-head",
	                    DOMAIN, 0, root);
	expect_head_error(f, jws, DOMAIN, f->pins, "bad_tree_head");
	free(jws);
	expect_head_error(f, "{not json", DOMAIN, f->pins, "bad_jws");
	free(good);
}

/* ---- certificates ---- */

/* The certificate object a lookup returns, with its log member at size. */
static json_t *cert_object(struct fixture *f, uint64_t size)
{
	uint8_t proof[MERKLE_MAX_PROOF][H];
	struct err e = {0};
	int n = 0;

	assert_int_equal(merkle_inclusion_proof((uint64_t)f->user_seq, size, merkle_mem_get,
	                                        &f->tree, proof, &n, &e),
	                 0);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:n, s:{s:i, s:s, s:s, s:I, s:o}}", "key_id",
	                 f->key_id, "name", "alice@" DOMAIN, "fingerprint", f->user_pem_fpr,
	                 "certificate", f->user_pem, "status", "current", "revocation", "log",
	                 "seq", f->user_seq, "leaf", f->leaves[f->user_seq], "salt", f->salt,
	                 "tree_size", (json_int_t)size, "proof",
	                 merkle_proof_to_json((const uint8_t(*)[H])proof, n, &e));
}

static void test_cert_included(void **state)
{
	struct fixture *f = *state;
	struct err e = {0};

	for (uint64_t size = (uint64_t)f->user_seq + 1; size <= NLEAVES; size++) {
		struct tlog_head h;
		json_t *c = cert_object(f, size);

		verified_head(f, size, &h);
		assert_int_equal(tlog_verify_cert(c, &h, &e), 0);
		assert_int_equal(tlog_check_status(c, &e), 0);
		json_decref(c);
		tlog_head_clear(&h);
	}
}

static void expect_cert_error(struct fixture *f, json_t *c, const struct tlog_head *h,
                              const char *code)
{
	struct err e = {0};

	assert_int_equal(tlog_verify_cert(c, h, &e), -1);
	assert_string_equal(e.code, code);
	json_decref(c);
}

static void test_cert_refusals(void **state)
{
	struct fixture *f = *state;
	struct tlog_head h, small;
	json_t *c, *log, *proof;
	uint8_t wrong[H] = {0};

	verified_head(f, NLEAVES, &h);
	verified_head(f, NLEAVES - 1, &small);

	/* proof one hash short, one hash too long */
	c = cert_object(f, NLEAVES);
	proof = json_object_get(json_object_get(c, "log"), "proof");
	json_array_remove(proof, json_array_size(proof) - 1);
	expect_cert_error(f, c, &h, "bad_proof");
	c = cert_object(f, NLEAVES);
	proof = json_object_get(json_object_get(c, "log"), "proof");
	json_array_append_new(proof, json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
	expect_cert_error(f, c, &h, "bad_proof");
	/* a proof for another size than the head's */
	expect_cert_error(f, cert_object(f, NLEAVES - 1), &h, "bad_proof");
	/* ... even when it claims the head's size */
	c = cert_object(f, NLEAVES - 1);
	json_object_set_new(json_object_get(c, "log"), "tree_size", json_integer(NLEAVES));
	expect_cert_error(f, c, &h, "bad_proof");
	/* a tampered hash */
	c = cert_object(f, NLEAVES);
	proof = json_object_get(json_object_get(c, "log"), "proof");
	json_array_set_new(proof, 0, merkle_hash_to_json(wrong, NULL));
	expect_cert_error(f, c, &small, "bad_proof");
	c = cert_object(f, NLEAVES);
	json_array_set_new(json_object_get(json_object_get(c, "log"), "proof"), 0,
	                   merkle_hash_to_json(wrong, NULL));
	expect_cert_error(f, c, &h, "bad_proof");
	/* the leaf is about another name, another key, another seq */
	c = cert_object(f, NLEAVES);
	json_object_set_new(c, "name", json_string("mallory@" DOMAIN));
	expect_cert_error(f, c, &h, "log_mismatch");
	c = cert_object(f, NLEAVES);
	json_object_set_new(c, "key_id", json_string("11111111-1111-4111-8111-111111111111"));
	expect_cert_error(f, c, &h, "log_mismatch");
	c = cert_object(f, NLEAVES);
	json_object_set_new(json_object_get(c, "log"), "seq", json_integer(f->user_seq + 1));
	expect_cert_error(f, c, &h, "log_mismatch");
	/* the object claims the logged fingerprint but carries another certificate */
	c = cert_object(f, NLEAVES);
	{
		struct err e = {0};
		char *issuer_pem = cert_to_pem(f->issuer, &e);
		json_object_set_new(c, "certificate", json_string(issuer_pem));
		free(issuer_pem);
	}
	expect_cert_error(f, c, &h, "log_mismatch");
	/* a salt that is not the leaf's */
	c = cert_object(f, NLEAVES);
	json_object_set_new(json_object_get(c, "log"), "salt", json_string("ff"));
	expect_cert_error(f, c, &h, "log_mismatch");
	/* an erased address (no salt): the fingerprint binds the entry, it verifies */
	c = cert_object(f, NLEAVES);
	json_object_del(json_object_get(c, "log"), "salt");
	{
		struct err e = {0};
		assert_int_equal(tlog_verify_cert(c, &h, &e), 0);
	}
	json_decref(c);
	/* no log at all */
	c = cert_object(f, NLEAVES);
	json_object_del(c, "log");
	expect_cert_error(f, c, &h, "log_missing");
	/* a leaf of another entry with a valid proof for it */
	c = cert_object(f, NLEAVES);
	log = json_object_get(c, "log");
	json_object_set_new(log, "leaf", json_string(f->leaves[f->user_seq - 1]));
	expect_cert_error(f, c, &h, "log_mismatch");
	tlog_head_clear(&h);
	tlog_head_clear(&small);
}

static void test_status(void **state)
{
	struct err e = {0};
	json_t *c = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "key_id", "k", "name",
	                      "a@b.example", "status", "revoked", "revocation", "reason",
	                      "keyCompromise", "method", "secret", "time", "2026-01-02T03:04:05Z");

	assert_int_equal(tlog_check_status(c, &e), -1);
	assert_string_equal(e.code, "key_revoked");
	assert_non_null(strstr(e.msg, "keyCompromise"));
	json_object_set_new(c, "status", json_string("superseded"));
	assert_int_equal(tlog_check_status(c, &e), 0);
	json_decref(c);
}

/* ---- the head store ---- */

struct fetcher {
	struct merkle_mem *tree;
	int calls;
	int fail;     /* answer with an error */
	int truncate; /* drop the proof's last hash */
	int corrupt;  /* flip a bit of the first hash */
};

static int fetch_proof(void *ctx, const char *domain, uint64_t first, uint64_t second,
                       uint8_t (*proof)[H], int *n, struct err *e)
{
	struct fetcher *fx = ctx;

	fx->calls++;
	assert_string_equal(domain, DOMAIN);
	if (fx->fail)
		return err_set(e, ERR_TEMP, "network", "the key server did not answer");
	if (merkle_consistency_proof(first, second, merkle_mem_get, fx->tree, proof, n, e) < 0)
		return -1;
	if (fx->truncate && *n > 0)
		(*n)--;
	if (fx->corrupt && *n > 0)
		proof[0][0] ^= 1;
	return 0;
}

static void test_store_grows(void **state)
{
	struct fixture *f = *state;
	struct fetcher fx = {.tree = &f->tree};
	struct tlog_store *s = tlog_store_open(NULL, &(struct err){0});
	struct err e = {0};

	assert_non_null(s);
	assert_null(tlog_store_get(s, DOMAIN));
	for (uint64_t size = 1; size <= NLEAVES; size += 2) {
		struct tlog_head h;
		verified_head(f, size, &h);
		assert_int_equal(tlog_store_observe(s, &h, fetch_proof, &fx, &e), 0);
		assert_int_equal(tlog_store_get(s, DOMAIN)->size, size);
		/* seeing the same head again costs nothing */
		assert_int_equal(tlog_store_observe(s, &h, fetch_proof, &fx, &e), 0);
		tlog_head_clear(&h);
	}
	assert_int_equal(fx.calls, (NLEAVES - 1) / 2);
	/* an older head that is consistent is fine; the newest stays remembered */
	{
		struct tlog_head old;
		verified_head(f, 4, &old);
		assert_int_equal(tlog_store_observe(s, &old, fetch_proof, &fx, &e), 0);
		assert_int_equal(tlog_store_get(s, DOMAIN)->size, NLEAVES);
		tlog_head_clear(&old);
	}
	tlog_store_free(s);
}

static struct tlog_store *store_at(struct fixture *f, uint64_t size)
{
	struct tlog_store *s = tlog_store_open(NULL, &(struct err){0});
	struct tlog_head h;
	struct err e = {0};

	verified_head(f, size, &h);
	assert_int_equal(tlog_store_observe(s, &h, NULL, NULL, &e), 0);
	tlog_head_clear(&h);
	return s;
}

static void expect_fork(struct tlog_store *s, const struct tlog_head *h, struct fetcher *fx,
                        const char *root_a, const char *root_b)
{
	struct err e = {0};
	uint64_t before = tlog_store_get(s, h->domain)->size;

	assert_int_equal(tlog_store_observe(s, h, fetch_proof, fx, &e), -1);
	assert_string_equal(e.code, "log_fork");
	assert_non_null(strstr(e.msg, root_a));
	assert_non_null(strstr(e.msg, root_b));
	assert_int_equal(tlog_store_get(s, h->domain)->size, before);
}

static void test_store_forks(void **state)
{
	struct fixture *f = *state;
	struct fetcher fx = {.tree = &f->tree};
	struct merkle_mem other;
	struct tlog_store *s = store_at(f, 8);
	struct tlog_head h, forked;
	uint8_t root[H];
	char *jws, *ra, *rb;
	struct err e = {0};

	/* the same size with another root: a fork, whatever the proofs say */
	merkle_mem_init(&other);
	for (int i = 0; i < NLEAVES; i++) {
		const char *leaf = i == 5 ? "rewritten" : f->leaves[i];
		assert_int_equal(merkle_mem_append(&other, leaf, strlen(leaf), &e), 0);
	}
	assert_int_equal(merkle_root(8, merkle_mem_get, &other, root, &e), 0);
	jws = sign_head(f, 8, root);
	assert_int_equal(tlog_head_verify(jws, strlen(jws), DOMAIN, f->pins, 1, &forked, &e), 0);
	free(jws);
	ra = crypto_b64_encode(tlog_store_get(s, DOMAIN)->root, H);
	rb = crypto_b64_encode(forked.root, H);
	expect_fork(s, &forked, &fx, ra, rb);
	assert_int_equal(fx.calls, 0);
	free(rb);
	tlog_head_clear(&forked);

	/* a larger head of the rewritten tree: no proof the honest server gives joins them */
	assert_int_equal(merkle_root(NLEAVES, merkle_mem_get, &other, root, &e), 0);
	jws = sign_head(f, NLEAVES, root);
	assert_int_equal(tlog_head_verify(jws, strlen(jws), DOMAIN, f->pins, 1, &forked, &e), 0);
	free(jws);
	rb = crypto_b64_encode(forked.root, H);
	expect_fork(s, &forked, &fx, ra, rb);
	/* nor one the forked server makes from its own tree */
	fx.tree = &other;
	expect_fork(s, &forked, &fx, ra, rb);
	/* nor an older head of it */
	tlog_head_clear(&forked);
	assert_int_equal(merkle_root(6, merkle_mem_get, &other, root, &e), 0);
	jws = sign_head(f, 6, root);
	assert_int_equal(tlog_head_verify(jws, strlen(jws), DOMAIN, f->pins, 1, &forked, &e), 0);
	free(jws);
	free(rb);
	rb = crypto_b64_encode(forked.root, H);
	expect_fork(s, &forked, &fx, ra, rb);
	fx.tree = &f->tree;

	/* honest heads, dishonest proofs: too short, or corrupted */
	verified_head(f, NLEAVES, &h);
	fx.truncate = 1;
	free(rb);
	rb = crypto_b64_encode(h.root, H);
	expect_fork(s, &h, &fx, ra, rb);
	fx.truncate = 0;
	fx.corrupt = 1;
	expect_fork(s, &h, &fx, ra, rb);
	fx.corrupt = 0;
	/* no answer is no verdict: the error passes through, nothing is remembered */
	fx.fail = 1;
	assert_int_equal(tlog_store_observe(s, &h, fetch_proof, &fx, &e), -1);
	assert_string_equal(e.code, "network");
	assert_int_equal(tlog_store_get(s, DOMAIN)->size, 8);
	fx.fail = 0;
	/* and the honest proof is accepted */
	assert_int_equal(tlog_store_observe(s, &h, fetch_proof, &fx, &e), 0);
	assert_int_equal(tlog_store_get(s, DOMAIN)->size, NLEAVES);

	free(ra);
	free(rb);
	tlog_head_clear(&h);
	tlog_head_clear(&forked);
	merkle_mem_free(&other);
	tlog_store_free(s);
}

static void test_store_file(void **state)
{
	struct fixture *f = *state;
	char dir[] = "/tmp/tlog-test-XXXXXX", path[64];
	struct tlog_store *s;
	struct tlog_head h, again;
	struct stat st;
	struct err e = {0};
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub/heads.json", dir);
	s = tlog_store_open(path, &e);
	assert_non_null(s);
	verified_head(f, 9, &h);
	assert_int_equal(tlog_store_observe(s, &h, NULL, NULL, &e), 0);
	tlog_store_free(s);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	s = tlog_store_open(path, &e);
	assert_non_null(s);
	assert_non_null(tlog_store_get(s, DOMAIN));
	assert_int_equal(tlog_store_get(s, DOMAIN)->size, 9);
	assert_memory_equal(tlog_store_get(s, DOMAIN)->root, h.root, H);
	assert_string_equal(tlog_store_get(s, DOMAIN)->jws, h.jws);
	/* what the file remembers still catches a fork in a later run */
	{
		uint8_t root[H] = {7};
		char *jws = sign_head(f, 9, root);
		assert_int_equal(tlog_head_verify(jws, strlen(jws), DOMAIN, f->pins, 1, &again, &e),
		                 0);
		free(jws);
		assert_int_equal(tlog_store_observe(s, &again, NULL, NULL, &e), -1);
		assert_string_equal(e.code, "log_fork");
		tlog_head_clear(&again);
	}
	tlog_store_free(s);

	/* a damaged file is an error, not an empty memory */
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("{\"version\": 1, \"heads\": {\"x.example\": {\"size\": \"big\"}}}", fp);
	fclose(fp);
	assert_null(tlog_store_open(path, &e));
	assert_string_equal(e.code, "bad_state");
	fp = fopen(path, "w");
	fputs("not json", fp);
	fclose(fp);
	assert_null(tlog_store_open(path, &e));
	assert_string_equal(e.code, "bad_state");

	unlink(path);
	snprintf(path, sizeof(path), "%s/sub", dir);
	rmdir(path);
	rmdir(dir);
	tlog_head_clear(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_head_verifies), cmocka_unit_test(test_head_refusals),
	    cmocka_unit_test(test_cert_included), cmocka_unit_test(test_cert_refusals),
	    cmocka_unit_test(test_status),        cmocka_unit_test(test_store_grows),
	    cmocka_unit_test(test_store_forks),   cmocka_unit_test(test_store_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
