/* test_relay_verify.c - relay/verify.c offline: messages signed here with lib/dkim,
 * keys served by a fake network (relay_verifier_set_net) that plays DNS, discovery
 * and an anchored domain's key server with a real certificate hierarchy and a real
 * transparency log built in memory; and the From: parser. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "pki/cert.h"
#include "pki/crypto.h"
#include "dns/discover.h"
#include "mail/dkim.h"
#include "pki/jws.h"
#include "pki/merkle.h"
#include "relay.h"

#define ANCHORED "anchored.test"
#define TESTING "testing.test"
#define LEGACY "legacy.test"
#define SALT "00112233445566778899aabbccddeeff"

enum { C_APEX = 0, C_S1, C_REV, C_ALICE, C_BOB_P256, NCERTS };
enum ks_mode { KS_OK = 0, KS_TIMEOUT, KS_GARBAGE };

struct logged {
	const char *name, *purpose, *kind;
	EVP_PKEY *key;
	X509 *cert;
	char key_id[CRYPTO_UUID_LEN];
	char fpr[CERT_FPR_LEN];
	int revoked;
};

struct fx {
	EVP_PKEY *root_key, *issuer_key, *other_root_key, *other_issuer_key;
	X509 *root, *issuer, *other_root, *other_issuer;
	char pin[CRYPTO_PIN_MAX];
	struct logged c[NCERTS];
	EVP_PKEY *alien_key; /* a signing key whose certificate chains elsewhere */
	X509 *alien;
	EVP_PKEY *dns_ed, *dns_rsa;
	/* the log: variant changes the first leaf (a fork), extra appends leaves */
	int variant, extra;
	enum ks_mode ks_mode;
	int dns_timeout;
	pthread_mutex_t lock;
	int ks_calls, dns_calls, consistency_calls;
	struct relay_verifier *v;
};

static struct fx *F;

/* ------------------------------------------------------------------ the log */

static char *leaf_text(struct fx *f, int seq, const struct logged *l)
{
	char subject[CRYPTO_HEX256_LEN], *salted = NULL, *text;
	json_t *o;

	if (l == NULL) { /* a filler: the domain's registration, varied for forks */
		o = json_pack("{s:i, s:i, s:s, s:s, s:s, s:i}", "v", 1, "seq", seq, "domain",
		              ANCHORED, "type", seq == 0 ? "registered" : "policy", "time",
		              "2026-01-01T00:00:00Z", "variant", seq == 0 ? f->variant : 0);
	} else {
		assert_true(asprintf(&salted, "%s:%s", SALT, l->name) > 0);
		crypto_sha256_hex(salted, strlen(salted), subject);
		free(salted);
		o = json_pack("{s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "v", 1, "seq",
		              seq, "domain", ANCHORED, "type", "issued", "time",
		              "2026-01-01T00:00:00Z", "key_id", l->key_id, "fingerprint", l->fpr,
		              "kind", l->kind, "purpose", l->purpose, "subject", subject);
	}
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	assert_non_null(text);
	return text;
}

/* Leaves: filler, each certificate (seq 1 + index), then f->extra fillers. */
static uint64_t build_tree(struct fx *f, struct merkle_mem *t)
{
	struct err e = {0};
	uint64_t n = 1 + NCERTS + (uint64_t)f->extra;

	merkle_mem_init(t);
	for (uint64_t i = 0; i < n; i++) {
		int ci = (int)i - 1;
		char *leaf = leaf_text(f, (int)i, ci >= 0 && ci < NCERTS ? &f->c[ci] : NULL);
		assert_int_equal(merkle_mem_append(t, leaf, strlen(leaf), &e), 0);
		free(leaf);
	}
	return n;
}

static char *sign_head(struct fx *f, struct merkle_mem *t, uint64_t size)
{
	X509 *chain[2] = {f->issuer, f->root};
	uint8_t root[MERKLE_HASH_LEN];
	struct err e = {0};
	char *b64, *payload, *jws;
	json_t *o;

	assert_int_equal(merkle_root(size, merkle_mem_get, t, root, &e), 0);
	b64 = crypto_b64_encode(root, sizeof(root));
	o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "type", "anchor-tree-head", "domain", ANCHORED,
	              "size", (json_int_t)size, "root_hash", b64, "timestamp",
	              "2026-01-01T00:00:00Z");
	payload = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	jws =
	    jws_sign(payload, strlen(payload), f->issuer_key, chain, 2, "anchor-tree-head+jws", &e);
	assert_non_null(jws);
	json_decref(o);
	free(payload);
	free(b64);
	return jws;
}

static json_t *head_json(struct fx *f, struct merkle_mem *t, uint64_t size)
{
	char *jws = sign_head(f, t, size);
	json_t *s = json_string(jws);

	free(jws);
	return s;
}

/* The certificate object of c[ci] (or of the alien certificate, ci < 0). */
static json_t *cert_object(struct fx *f, struct merkle_mem *t, uint64_t size, int ci)
{
	uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	const struct logged *l = ci >= 0 ? &f->c[ci] : NULL;
	struct err e = {0};
	char *pem, *leaf;
	int n = 0;
	json_t *o;

	pem = cert_to_pem(l ? l->cert : f->alien, &e);
	leaf = leaf_text(f, 1 + (ci >= 0 ? ci : C_APEX), l ? l : &f->c[C_APEX]);
	assert_int_equal(merkle_inclusion_proof((uint64_t)(1 + (ci >= 0 ? ci : C_APEX)), size,
	                                        merkle_mem_get, t, proof, &n, &e),
	                 0);
	o = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:{s:i, s:s, s:s, s:I, s:o}}", "key_id",
	    l ? l->key_id : f->c[C_APEX].key_id, "kind", l ? l->kind : "server", "purpose",
	    l ? l->purpose : "signing", "name", l ? l->name : "alien." ANCHORED, "fingerprint",
	    l ? l->fpr : "sha256:00", "status", l && l->revoked ? "revoked" : "current",
	    "certificate", pem, "revocation",
	    l && l->revoked
	        ? json_pack("{s:s, s:s}", "reason", "keyCompromise", "time", "2026-02-01T00:00:00Z")
	        : json_null(),
	    "log", "seq", 1 + (ci >= 0 ? ci : C_APEX), "leaf", leaf, "salt", SALT, "tree_size",
	    (json_int_t)size, "proof",
	    merkle_proof_to_json((const uint8_t(*)[MERKLE_HASH_LEN])proof, n, &e));
	assert_non_null(o);
	if (ci < 0) /* the alien's object says nothing true but its certificate */
		json_object_del(o, "fingerprint");
	free(pem);
	free(leaf);
	return o;
}

/* ------------------------------------------------------------------ the fake network */

static int fake_discover(void *ctx, const char *domain, struct discover_result **out, struct err *e)
{
	struct fx *f = ctx;
	struct discover_result *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	*out = r;
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	r->used_target = -1;
	if (strcmp(domain, "slow.test") == 0) {
		r->status = DISCOVER_ERROR;
		return err_set(e, ERR_TEMP, "dns_timeout", "no answer in time");
	}
	if (strcmp(domain, ANCHORED) != 0 && strcmp(domain, TESTING) != 0) {
		r->status = DISCOVER_LEGACY;
		return 0;
	}
	r->status = DISCOVER_ANCHORED;
	r->mode = strcmp(domain, TESTING) == 0 ? DNS_MODE_TESTING : DNS_MODE_ENFORCE;
	r->npins = 1;
	snprintf(r->pins[0], sizeof(r->pins[0]), "%s", f->pin);
	X509_up_ref(f->root);
	X509_up_ref(f->issuer);
	r->root = f->root;
	r->issuer = f->issuer;
	return 0;
}

static int reply(char **body, json_t *doc)
{
	*body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	assert_non_null(*body);
	return 0;
}

static int fake_keyserver_get(void *ctx, const struct discover_result *d, const char *path,
                              char **body, struct err *e)
{
	static const char *const selectors[] = {"anchor", "s1", "rev"};
	struct fx *f = ctx;
	struct merkle_mem t;
	uint64_t size, first, second;
	char want[128];
	int rc = -2;

	pthread_mutex_lock(&f->lock);
	f->ks_calls++;
	*body = NULL;
	assert_string_equal(d->domain, ANCHORED);
	if (f->ks_mode == KS_TIMEOUT) {
		pthread_mutex_unlock(&f->lock);
		return err_set(e, ERR_TEMP, "fetch_timeout", "timed out");
	}
	if (f->ks_mode == KS_GARBAGE) {
		pthread_mutex_unlock(&f->lock);
		*body = strdup("<html>502 Bad Gateway</html>");
		return 0;
	}
	size = build_tree(f, &t);
	for (int i = 0; i < 3 && rc == -2; i++) {
		snprintf(want, sizeof(want), "/v1/domains/" ANCHORED "/dkim/%s", selectors[i]);
		if (strcmp(path, want) == 0) {
			json_t *o = cert_object(f, &t, size, i);
			json_object_set_new(o, "tree_head", head_json(f, &t, size));
			rc = reply(body, o);
		}
	}
	if (rc == -2 && strcmp(path, "/v1/domains/" ANCHORED "/dkim/alien") == 0) {
		json_t *o = cert_object(f, &t, size, -1);
		json_object_set_new(o, "tree_head", head_json(f, &t, size));
		rc = reply(body, o);
	}
	if (rc == -2 && (strcmp(path, "/v1/addresses/alice%40" ANCHORED) == 0 ||
	                 strcmp(path, "/v1/addresses/bob%40" ANCHORED) == 0)) {
		int ci = path[14] == 'a' ? C_ALICE : C_BOB_P256;
		json_t *certs = json_array();
		json_array_append_new(certs, cert_object(f, &t, size, ci));
		rc = reply(body,
		           json_pack("{s:s, s:o, s:o}", "address", f->c[ci].name, "certificates",
		                     certs, "tree_head", head_json(f, &t, size)));
	}
	if (rc == -2 &&
	    sscanf(path,
	           "/v1/domains/" ANCHORED "/log/consistency?first=%" SCNu64 "&second=%" SCNu64,
	           &first, &second) == 2) {
		uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
		int n = 0;
		f->consistency_calls++;
		/* like the key server: no proof to a size the log does not have */
		if (merkle_consistency_proof(first, second, merkle_mem_get, &t, proof, &n, e) < 0)
			rc = err_set(e, ERR_UNPROC, "fetch_status", "HTTP 400 bad_request");
		else
			rc = reply(body,
			           json_pack("{s:I, s:I, s:o}", "first", (json_int_t)first,
			                     "second", (json_int_t)second, "proof",
			                     merkle_proof_to_json(
			                         (const uint8_t(*)[MERKLE_HASH_LEN])proof, n, e)));
	}
	merkle_mem_free(&t);
	pthread_mutex_unlock(&f->lock);
	if (rc == -2)
		return err_set(e, ERR_NOTFOUND, "not_found", "HTTP 404 for %s", path);
	return rc;
}

static int fake_dns_txt(void *ctx, const char *name, char **text, struct err *e)
{
	struct fx *f = ctx;
	struct err ign = {0};

	pthread_mutex_lock(&f->lock);
	f->dns_calls++;
	pthread_mutex_unlock(&f->lock);
	*text = NULL;
	if (f->dns_timeout || strcmp(name, "slow._domainkey." LEGACY) == 0)
		return err_set(e, ERR_TEMP, "dns_timeout", "no answer in time");
	if (strcmp(name, "ed._domainkey." LEGACY) == 0)
		*text = dkim_key_record(f->dns_ed, &ign);
	else if (strcmp(name, "rsa._domainkey." LEGACY) == 0)
		*text = dkim_key_record(f->dns_rsa, &ign);
	else if (strcmp(name, "gone._domainkey." LEGACY) == 0)
		*text = strdup("v=DKIM1; k=ed25519; p=");
	if (*text == NULL)
		return err_set(e, ERR_NOTFOUND, "dkim_no_key", "NXDOMAIN %s", name);
	return 0;
}

/* ------------------------------------------------------------------ fixture */

static void make_cert(struct fx *f, struct logged *l, const char *name, enum cert_purpose p,
                      enum key_alg alg)
{
	struct err e = {0};
	struct cert_issue req = {p, name, NULL, 30};

	l->name = name;
	l->purpose = cert_purpose_name(p);
	l->kind = p == CERT_PURPOSE_SMIME ? "user" : "server";
	l->key = crypto_key_generate(alg, alg == KEY_RSA ? 2048 : 0, &e);
	assert_non_null(l->key);
	assert_int_equal(crypto_uuid_v4(l->key_id, &e), 0);
	req.key_id = l->key_id;
	l->cert = cert_issue_leaf(&req, l->key, f->issuer, f->issuer_key, &e);
	assert_non_null(l->cert);
	assert_int_equal(cert_fingerprint(l->cert, l->fpr, &e), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct err e = {0};
	struct relay_settings s = {0};
	struct cert_issue alien = {CERT_PURPOSE_SIGNING, "alien." ANCHORED, "x", 30};

	assert_non_null(f);
	pthread_mutex_init(&f->lock, NULL);
	f->root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	f->issuer_key = crypto_key_generate(KEY_ED25519, 0, &e);
	f->other_root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	f->other_issuer_key = crypto_key_generate(KEY_ED25519, 0, &e);
	f->root = cert_make_root(f->root_key, ANCHORED, 30, &e);
	f->issuer = cert_make_issuer(f->issuer_key, f->root, f->root_key, ANCHORED, 30, &e);
	f->other_root = cert_make_root(f->other_root_key, ANCHORED, 30, &e);
	f->other_issuer = cert_make_issuer(f->other_issuer_key, f->other_root, f->other_root_key,
	                                   ANCHORED, 30, &e);
	assert_non_null(f->other_issuer);
	assert_int_equal(crypto_key_pin(f->root_key, f->pin, &e), 0);
	make_cert(f, &f->c[C_APEX], ANCHORED, CERT_PURPOSE_SIGNING, KEY_ED25519);
	make_cert(f, &f->c[C_S1], "s1." ANCHORED, CERT_PURPOSE_SIGNING, KEY_RSA);
	make_cert(f, &f->c[C_REV], "rev." ANCHORED, CERT_PURPOSE_SIGNING, KEY_ED25519);
	f->c[C_REV].revoked = 1;
	make_cert(f, &f->c[C_ALICE], "alice@" ANCHORED, CERT_PURPOSE_SMIME, KEY_ED25519);
	make_cert(f, &f->c[C_BOB_P256], "bob@" ANCHORED, CERT_PURPOSE_SMIME, KEY_P256);
	f->alien_key = crypto_key_generate(KEY_ED25519, 0, &e);
	alien.key_id = f->c[C_APEX].key_id;
	f->alien = cert_issue_leaf(&alien, f->alien_key, f->other_issuer, f->other_issuer_key, &e);
	assert_non_null(f->alien);
	f->dns_ed = crypto_key_generate(KEY_ED25519, 0, &e);
	f->dns_rsa = crypto_key_generate(KEY_RSA, 2048, &e);
	assert_non_null(f->dns_rsa);

	s.lookup_timeout_ms = 500;
	s.key_cache_ttl = 3600;
	s.dns_server = "127.0.0.1:9"; /* never asked: the fake network answers */
	f->v = relay_verifier_new(&s, &e);
	assert_non_null(f->v);
	struct relay_verify_net net = {fake_discover, fake_keyserver_get, fake_dns_txt, f};
	relay_verifier_set_net(f->v, &net);
	F = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	relay_verifier_free(f->v);
	for (int i = 0; i < NCERTS; i++) {
		X509_free(f->c[i].cert);
		EVP_PKEY_free(f->c[i].key);
	}
	X509_free(f->alien);
	EVP_PKEY_free(f->alien_key);
	X509_free(f->root);
	X509_free(f->issuer);
	X509_free(f->other_root);
	X509_free(f->other_issuer);
	EVP_PKEY_free(f->root_key);
	EVP_PKEY_free(f->issuer_key);
	EVP_PKEY_free(f->other_root_key);
	EVP_PKEY_free(f->other_issuer_key);
	EVP_PKEY_free(f->dns_ed);
	EVP_PKEY_free(f->dns_rsa);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return 0;
}

/* Each test starts from a served, unforked log and an empty key cache. */
static int reset(void **state)
{
	struct fx *f = *state;

	f->ks_mode = KS_OK;
	f->dns_timeout = 0;
	f->ks_calls = f->dns_calls = f->consistency_calls = 0;
	relay_verifier_flush(f->v);
	return 0;
}

/* ------------------------------------------------------------------ messages */

static const char BODY[] = "Hello,\r\n\r\nthis is the body.\r\n";

static char *message(const char *from, const char *subject)
{
	char *m = NULL;

	assert_true(asprintf(&m,
	                     "From: %s\r\nTo: bob@example.net\r\nSubject: %s\r\n"
	                     "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\n%s",
	                     from, subject, BODY) > 0);
	return m;
}

/* msg with a signature by key prepended (msg is freed). */
static char *sign(char *msg, EVP_PKEY *key, const char *d, const char *s, const char *i)
{
	struct dkim_sign_opts o = {.d = d, .s = s, .i = i};
	struct err e = {0};
	char *field = dkim_sign(msg, strlen(msg), &o, key, &e), *out = NULL;

	assert_non_null(field);
	assert_true(asprintf(&out, "%s\r\n%s", field, msg) > 0);
	free(field);
	free(msg);
	return out;
}

static void verify(struct fx *f, const char *msg, struct relay_auth *a)
{
	struct err e = {0};

	assert_int_equal(relay_verify_message(f->v, msg, strlen(msg), a, &e), 0);
}

/* ------------------------------------------------------------------ legacy domains */

static void test_legacy_ed25519_and_rsa_pass(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	char *m = message("Alice <alice@" LEGACY ">", "hi");

	m = sign(m, f->dns_ed, LEGACY, "ed", NULL);
	m = sign(m, f->dns_rsa, LEGACY, "rsa", NULL);
	verify(f, m, &a);
	assert_int_equal(a.nsigs, 2);
	/* top to bottom: the RSA signature was added last */
	assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
	assert_string_equal(a.sigs[0].r.a, "rsa-sha256");
	assert_int_equal(a.sigs[1].r.status, DKIM_PASS);
	assert_string_equal(a.sigs[1].r.a, "ed25519-sha256");
	assert_int_equal(a.sigs[0].source, RELAY_KEY_DNS);
	assert_string_equal(a.from_addr, "alice@" LEGACY);
	assert_string_equal(a.from_domain, LEGACY);
	assert_true(a.domain_verified);
	assert_false(a.domain_anchored);
	assert_false(a.user_verified);
	assert_false(a.sender_anchored);
	assert_non_null(strstr(a.why, "domain verified"));
	relay_auth_clear(&a);
	assert_null(a.sigs);
	free(m);
}

static void test_tampered_body_and_header_fail(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	char *m = sign(message("alice@" LEGACY, "original"), f->dns_ed, LEGACY, "ed", NULL);
	char *p;

	/* the body */
	p = strstr(m, "the body");
	p[4] = 'B';
	verify(f, m, &a);
	assert_int_equal(a.nsigs, 1);
	assert_int_equal(a.sigs[0].r.status, DKIM_FAIL);
	assert_string_equal(a.sigs[0].r.code, "dkim_body_hash");
	assert_false(a.domain_verified);
	relay_auth_clear(&a);
	p[4] = 'b';
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
	relay_auth_clear(&a);

	/* a signed header */
	p = strstr(m, "Subject: original");
	p[9] = 'O';
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_FAIL);
	assert_string_equal(a.sigs[0].r.code, "dkim_bad_signature");
	assert_false(a.domain_verified);
	relay_auth_clear(&a);
	free(m);
}

static void test_legacy_temperror_not_cached_permerror_cached(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	char *m = sign(message("alice@" LEGACY, "x"), f->dns_ed, LEGACY, "slow", NULL);
	char *n = sign(message("alice@" LEGACY, "x"), f->dns_ed, LEGACY, "missing", NULL);
	char *g = sign(message("alice@" LEGACY, "x"), f->dns_ed, LEGACY, "gone", NULL);

	for (int round = 1; round <= 2; round++) {
		verify(f, m, &a);
		assert_int_equal(a.sigs[0].r.status, DKIM_TEMPERROR);
		assert_int_equal(f->dns_calls, round); /* asked again: not cached */
		relay_auth_clear(&a);
	}
	f->dns_calls = 0;
	for (int round = 1; round <= 2; round++) {
		verify(f, n, &a);
		assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
		assert_string_equal(a.sigs[0].r.code, "dkim_no_key");
		assert_int_equal(f->dns_calls, 1); /* the NXDOMAIN is remembered */
		relay_auth_clear(&a);
	}
	verify(f, g, &a); /* p= empty: the key was revoked in DNS */
	assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
	assert_string_equal(a.sigs[0].r.code, "dkim_key_revoked");
	relay_auth_clear(&a);
	/* discovery itself timing out is temporary too */
	free(m);
	m = sign(message("alice@slow.test", "x"), f->dns_ed, "slow.test", "ed", NULL);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_TEMPERROR);
	relay_auth_clear(&a);
	free(m);
	free(n);
	free(g);
}

static void test_wrong_key_and_malformed_signature(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	/* signed with the RSA key, published ed25519 key under the selector "ed" */
	char *m = sign(message("alice@" LEGACY, "x"), f->dns_rsa, LEGACY, "ed", NULL);
	char *bad = NULL;

	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
	assert_string_equal(a.sigs[0].r.code, "dkim_key_mismatch");
	relay_auth_clear(&a);
	free(m);

	m = message("alice@" LEGACY, "x");
	assert_true(
	    asprintf(&bad, "DKIM-Signature: v=1; a=rsa-sha256; d=" LEGACY "; b=!!!\r\n%s", m) > 0);
	verify(f, bad, &a);
	assert_int_equal(a.nsigs, 1);
	assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
	assert_int_equal(a.sigs[0].source, RELAY_KEY_NONE);
	relay_auth_clear(&a);
	free(bad);
	free(m);
}

/* ------------------------------------------------------------------ anchored domains */

static void test_anchored_pass_ed25519_and_rsa(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	char *m = message("\"Alice A.\" <Alice@Anchored.Test>", "hi");

	m = sign(m, f->c[C_APEX].key, ANCHORED, "anchor", NULL);
	m = sign(m, f->c[C_S1].key, ANCHORED, "s1", NULL);
	verify(f, m, &a);
	assert_int_equal(a.nsigs, 2);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(a.sigs[k].r.status, DKIM_PASS);
		assert_int_equal(a.sigs[k].source, RELAY_KEY_ANCHOR);
	}
	assert_string_equal(a.sigs[0].r.a, "rsa-sha256");
	assert_string_equal(a.from_addr, "alice@" ANCHORED);
	assert_true(a.domain_verified);
	assert_true(a.domain_anchored);
	assert_true(a.sender_anchored);
	assert_false(a.sender_mode_testing);
	assert_false(a.user_verified);
	int calls = f->ks_calls;
	relay_auth_clear(&a);

	/* The keys are cached: no key server round trip the second time. */
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
	assert_int_equal(f->ks_calls, calls);
	relay_auth_clear(&a);

	/* A key the domain did not certify, under a selector of its own: permerror. */
	free(m);
	m = sign(message("alice@" ANCHORED, "x"), f->dns_ed, ANCHORED, "anchor", NULL);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_FAIL);
	assert_false(a.domain_verified);
	relay_auth_clear(&a);
	free(m);
}

static void test_anchored_refusals(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	char *m;

	/* revoked: a permanent failure that says so */
	m = sign(message("alice@" ANCHORED, "x"), f->c[C_REV].key, ANCHORED, "rev", NULL);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
	assert_string_equal(a.sigs[0].r.code, "key_revoked");
	assert_false(a.domain_verified);
	relay_auth_clear(&a);
	free(m);

	/* a certificate that does not chain to the pinned root */
	m = sign(message("alice@" ANCHORED, "x"), f->alien_key, ANCHORED, "alien", NULL);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
	assert_string_equal(a.sigs[0].r.code, "key_untrusted");
	relay_auth_clear(&a);
	free(m);

	/* no such selector on the key server; none that could be one */
	m = sign(message("alice@" ANCHORED, "x"), f->c[C_APEX].key, ANCHORED, "nope", NULL);
	m = sign(m, f->c[C_APEX].key, ANCHORED, "a.b", NULL);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
	assert_string_equal(a.sigs[0].r.code, "dkim_no_key");
	assert_int_equal(a.sigs[1].r.status, DKIM_PERMERROR);
	assert_string_equal(a.sigs[1].r.code, "dkim_no_key");
	assert_int_equal(f->dns_calls, 0); /* an anchored domain's keys never come from DNS */
	relay_auth_clear(&a);
	free(m);
}

static void test_keyserver_timeout_and_garbage_are_temperror(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	char *m = sign(message("alice@" ANCHORED, "x"), f->c[C_APEX].key, ANCHORED, "anchor", NULL);

	f->ks_mode = KS_TIMEOUT;
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_TEMPERROR);
	assert_false(a.domain_verified);
	relay_auth_clear(&a);
	f->ks_mode = KS_GARBAGE;
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_TEMPERROR);
	assert_string_equal(a.sigs[0].r.code, "keyserver_garbage");
	relay_auth_clear(&a);
	/* nothing temporary was cached: the server back, the signature passes */
	f->ks_mode = KS_OK;
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
	relay_auth_clear(&a);
	free(m);
}

static void test_log_growth_and_fork(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	char *m = sign(message("alice@" ANCHORED, "x"), f->c[C_APEX].key, ANCHORED, "anchor", NULL);

	verify(f, m, &a); /* remembers the head */
	assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
	relay_auth_clear(&a);

	/* The log grew: a consistency proof joins the heads. */
	f->extra = 3;
	relay_verifier_flush(f->v);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
	assert_int_equal(f->consistency_calls, 1);
	relay_auth_clear(&a);

	/* Another history of the same size: a fork, refused, and it stays refused. */
	f->variant = 1;
	relay_verifier_flush(f->v);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
	assert_string_equal(a.sigs[0].r.code, "log_fork");
	relay_auth_clear(&a);
	/* a larger head of the forked history is no better */
	f->extra = 5;
	relay_verifier_flush(f->v);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
	assert_string_equal(a.sigs[0].r.code, "log_fork");
	relay_auth_clear(&a);
	/* a server that cannot prove its smaller head consistent: no verdict, temperror */
	f->variant = 0;
	f->extra = 1;
	relay_verifier_flush(f->v);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_TEMPERROR);
	relay_auth_clear(&a);
	/* the true history, grown again, is still accepted */
	f->extra = 6;
	relay_verifier_flush(f->v);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
	relay_auth_clear(&a);
	free(m);
}

static void test_user_signature(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	char *m = message("Alice <alice@" ANCHORED ">", "from alice");

	m = sign(m, f->c[C_APEX].key, ANCHORED, "anchor", NULL);
	m = sign(m, f->c[C_ALICE].key, ANCHORED, RELAY_USER_SELECTOR, "alice@" ANCHORED);
	verify(f, m, &a);
	assert_int_equal(a.nsigs, 2);
	assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
	assert_int_equal(a.sigs[0].source, RELAY_KEY_USER);
	assert_string_equal(a.sigs[0].user, "alice@" ANCHORED);
	assert_string_equal(a.sigs[0].r.i, "alice@" ANCHORED);
	assert_int_equal(a.sigs[1].source, RELAY_KEY_ANCHOR);
	assert_true(a.user_verified);
	assert_true(a.domain_verified);
	assert_true(a.domain_anchored);
	assert_non_null(strstr(a.why, "user verified"));
	relay_auth_clear(&a);
	free(m);

	/* Alice's key, but the From: says carol: the domain is verified, the user not. */
	m = sign(message("carol@" ANCHORED, "x"), f->c[C_ALICE].key, ANCHORED, RELAY_USER_SELECTOR,
	         "alice@" ANCHORED);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
	assert_true(a.domain_verified);
	assert_false(a.user_verified);
	relay_auth_clear(&a);
	free(m);

	/* i= bob, signed with alice's key: bob's certificate does not verify it (and his
	 * only key, P-256, has no DKIM form at all). */
	m = sign(message("bob@" ANCHORED, "x"), f->c[C_ALICE].key, ANCHORED, RELAY_USER_SELECTOR,
	         "bob@" ANCHORED);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
	assert_string_equal(a.sigs[0].r.code, "dkim_no_key");
	assert_false(a.user_verified);
	relay_auth_clear(&a);
	free(m);

	/* i= an address with no key: not found */
	m = sign(message("dave@" ANCHORED, "x"), f->c[C_ALICE].key, ANCHORED, RELAY_USER_SELECTOR,
	         "dave@" ANCHORED);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PERMERROR);
	assert_false(a.domain_verified);
	relay_auth_clear(&a);
	free(m);
}

static void test_alignment_and_sender(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	char *m;

	/* d= a parent of the From domain: aligned */
	m = sign(message("x@mail." LEGACY, "x"), f->dns_ed, LEGACY, "ed", NULL);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
	assert_true(a.domain_verified);
	relay_auth_clear(&a);
	free(m);
	/* another domain, or one that merely ends alike: a pass, but not aligned */
	const char *froms[] = {"x@other.test", "x@not" LEGACY, "undisclosed-recipients:;"};
	for (size_t k = 0; k < sizeof(froms) / sizeof(froms[0]); k++) {
		m = sign(message(froms[k], "x"), f->dns_ed, LEGACY, "ed", NULL);
		verify(f, m, &a);
		assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
		assert_false(a.domain_verified);
		relay_auth_clear(&a);
		free(m);
	}
	/* mode=testing of the From domain is reported */
	m = message("x@" TESTING, "x");
	verify(f, m, &a);
	assert_int_equal(a.nsigs, 0);
	assert_null(a.sigs);
	assert_true(a.sender_anchored);
	assert_true(a.sender_mode_testing);
	assert_false(a.domain_verified);
	assert_non_null(strstr(a.why, "no signature"));
	relay_auth_clear(&a);
	free(m);
}

static void test_unreadable_and_from_fields(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	struct relay_refusal rf;
	struct err e = {0};
	const char *bad = "this line has no colon\r\n\r\nbody\r\n";
	const char *two = "From: a@" LEGACY "\r\nFrom: b@" LEGACY "\r\n\r\nbody\r\n";

	assert_int_equal(relay_verify_message(f->v, bad, strlen(bad), &a, &e), -1);
	assert_string_equal(e.code, "dkim_bad_header");
	assert_null(a.sigs);
	verify(f, two, &a); /* two From: fields name nobody, and say why */
	assert_string_equal(a.from_addr, "");
	assert_string_equal(a.from_domain, "");
	assert_int_equal(a.authors.n, 0);
	assert_non_null(strstr(a.from_error, "2 From fields"));
	assert_non_null(strstr(a.why, "no author"));
	assert_int_equal(relay_auth_refusal(&a, &rf), 1);
	assert_int_equal(rf.code, 550);
	assert_string_equal(rf.status, "5.7.1");
	assert_non_null(strstr(rf.text, "Cannot tell the author: the message has 2 From fields"));
	relay_auth_clear(&a);
	relay_auth_clear(NULL);
}

/* The refusal rule over every author domain (relay_auth_refusal). */
static void test_enforcement_every_author(void **state)
{
	struct fx *f = *state;
	struct relay_auth a;
	struct relay_refusal rf;
	char *m;
	static const char *const refused[] = {
	    "alice@" ANCHORED,
	    "x@" LEGACY ", alice@" ANCHORED,
	    "alice@" ANCHORED ", x@" LEGACY,
	    "<alice@" ANCHORED ".>",
	    "ALICE@ANCHORED.TEST.",
	    "alice@anchored . test",
	    "alice@anchored(c).test",
	    "Alice\r\n <alice@anchored\r\n .test>",
	    "<@a.example,@b.example:alice@" ANCHORED ">",
	    "\"x@" LEGACY "\" <alice@" ANCHORED ">",
	    "alice@" ANCHORED " (x@" LEGACY ")",
	    "=?utf-8?q?x=40legacy.test?= <alice@" ANCHORED ">",
	};

	for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
		m = message(refused[k], "x");
		verify(f, m, &a);
		if (a.from_error[0])
			fail_msg("%s: %s", refused[k], a.from_error);
		assert_true(a.sender_anchored);
		assert_int_equal(relay_auth_refusal(&a, &rf), 1);
		assert_int_equal(rf.code, 550);
		if (strstr(rf.text, ANCHORED " publishes an anchor in enforce mode") == NULL)
			fail_msg("%s: %s", refused[k], rf.text);
		relay_auth_clear(&a);
		free(m);
	}
	/* the anchored author's domain signed, the other author not: still refused, and
	 * the other author is the reason */
	m = sign(message("alice@" ANCHORED ", x@" LEGACY, "x"), f->c[C_S1].key, ANCHORED, "s1",
	         NULL);
	verify(f, m, &a);
	assert_int_equal(a.authors.n, 2);
	assert_true(a.authors.a[0].verified && a.authors.a[0].anchored);
	assert_false(a.authors.a[1].verified || a.authors.a[1].anchored);
	assert_false(a.domain_verified);
	assert_string_equal(a.from_addr, "");
	assert_int_equal(relay_auth_refusal(&a, &rf), 1);
	assert_int_equal(rf.code, 550);
	assert_non_null(strstr(rf.text, "names 2 mailboxes"));
	relay_auth_clear(&a);
	free(m);
	/* both authors' domains verified: several authors are still refused */
	m = sign(message("a@" LEGACY ", b@mail." LEGACY, "x"), f->dns_ed, LEGACY, "ed", NULL);
	verify(f, m, &a);
	assert_true(a.domain_verified);
	assert_int_equal(relay_auth_refusal(&a, &rf), 1);
	assert_non_null(strstr(rf.text, "names 2 mailboxes"));
	relay_auth_clear(&a);
	free(m);
	/* signed, any case and a trailing dot in From or in d=: one domain, delivered */
	const char *good[] = {"Alice <ALICE@Anchored.Test.>", "alice@" ANCHORED};
	const char *ds[] = {ANCHORED, "ANCHORED.test."};
	for (size_t k = 0; k < 2; k++) {
		m = sign(message(good[k], "x"), f->c[C_S1].key, ds[k], "s1", NULL);
		verify(f, m, &a);
		assert_int_equal(a.sigs[0].r.status, DKIM_PASS);
		assert_string_equal(a.from_addr, "alice@" ANCHORED);
		assert_true(a.domain_verified && a.domain_anchored);
		assert_int_equal(relay_auth_refusal(&a, &rf), 0);
		relay_auth_clear(&a);
		free(m);
	}
	/* testing mode: verified and reported, never refused */
	m = message("Bob <bob@" TESTING ".>", "x");
	verify(f, m, &a);
	assert_true(a.sender_anchored && a.sender_mode_testing);
	assert_string_equal(a.from_domain, TESTING);
	assert_int_equal(relay_auth_refusal(&a, &rf), 0);
	relay_auth_clear(&a);
	free(m);
	/* a legacy domain unsigned: delivered (as unknown, tier.c's business) */
	m = message("x@" LEGACY, "x");
	verify(f, m, &a);
	assert_int_equal(relay_auth_refusal(&a, &rf), 0);
	relay_auth_clear(&a);
	free(m);
	/* the key server times out: the verdict waits (451), unless another author is
	 * refused for good */
	f->ks_mode = KS_TIMEOUT;
	relay_verifier_flush(f->v);
	m = sign(message("alice@" ANCHORED, "x"), f->c[C_S1].key, ANCHORED, "s1", NULL);
	verify(f, m, &a);
	assert_int_equal(a.sigs[0].r.status, DKIM_TEMPERROR);
	assert_true(a.authors.a[0].temperror);
	assert_int_equal(relay_auth_refusal(&a, &rf), 1);
	assert_int_equal(rf.code, 451);
	assert_string_equal(rf.status, "4.7.5");
	relay_auth_clear(&a);
	free(m);
	m = sign(message("alice@" ANCHORED ", x@" LEGACY, "x"), f->c[C_S1].key, ANCHORED, "s1",
	         NULL);
	verify(f, m, &a);
	assert_int_equal(relay_auth_refusal(&a, &rf), 1);
	assert_int_equal(rf.code, 550);
	relay_auth_clear(&a);
	free(m);
	f->ks_mode = KS_OK;
	/* no From at all, only a Sender: refused, and why */
	m = strdup("Sender: alice@" ANCHORED "\r\nTo: bob@example.net\r\n\r\nbody\r\n");
	verify(f, m, &a);
	assert_int_equal(relay_auth_refusal(&a, &rf), 1);
	assert_int_equal(rf.code, 550);
	assert_non_null(strstr(rf.text, "no From field"));
	relay_auth_clear(&a);
	free(m);
	/* an empty verdict (nothing verified at all) is never delivered */
	memset(&a, 0, sizeof(a));
	assert_int_equal(relay_auth_refusal(&a, &rf), 1);
}

/* Many threads verifying at once through one verifier. */
static void *worker(void *arg)
{
	char **msgs = arg;

	for (int round = 0; round < 20; round++) {
		for (int k = 0; msgs[k] != NULL; k++) {
			struct relay_auth a;
			struct err e = {0};
			if (relay_verify_message(F->v, msgs[k], strlen(msgs[k]), &a, &e) != 0 ||
			    a.nsigs != 1 || a.sigs[0].r.status != DKIM_PASS) {
				relay_auth_clear(&a);
				return (void *)1;
			}
			relay_auth_clear(&a);
		}
		if (round % 5 == 0)
			relay_verifier_flush(F->v);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fx *f = *state;
	char *msgs[4] = {
	    sign(message("a@" ANCHORED, "t"), f->c[C_APEX].key, ANCHORED, "anchor", NULL),
	    sign(message("a@" LEGACY, "t"), f->dns_ed, LEGACY, "ed", NULL),
	    sign(message("alice@" ANCHORED, "t"), f->c[C_ALICE].key, ANCHORED, RELAY_USER_SELECTOR,
	         "alice@" ANCHORED),
	    NULL};
	pthread_t t[4];
	void *res;

	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, msgs), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &res), 0);
		assert_null(res);
	}
	for (int i = 0; i < 3; i++)
		free(msgs[i]);
}

/* ------------------------------------------------------------------ From: parsing */

/* in parsed as a From value: want, the authors' addresses joined by " ", or NULL
 * (refused, with a message containing why). */
struct from_case {
	const char *in, *want, *why;
};

static int check_case(const struct from_case *c, size_t len)
{
	struct relay_authors au;
	struct err e = {0};
	char got[4 * RELAY_ADDR_MAX] = "";
	int rc = relay_authors_parse(c->in, len, &au, &e);

	for (size_t k = 0; rc == 0 && k < au.n; k++) {
		const char *at = strrchr(au.a[k].addr, '@');
		assert_non_null(at);
		assert_string_equal(at + 1, au.a[k].domain); /* the domain is the address's */
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? " " : "",
		         au.a[k].addr);
	}
	if (c->want == NULL) {
		if (rc != -1 || au.n != 0 || strcmp(e.code, "from_unreadable") != 0) {
			print_error("accepted [%s] as [%s]\n", c->in, got);
			return 1;
		}
		if (c->why != NULL && strstr(e.msg, c->why) == NULL) {
			print_error("[%s]: %s (want \"%s\")\n", c->in, e.msg, c->why);
			return 1;
		}
	} else if (rc != 0 || strcmp(got, c->want) != 0) {
		print_error("[%s]: got %d [%s] (%s), want [%s]\n", c->in, rc, got, e.msg, c->want);
		return 1;
	}
	return 0;
}

static void test_authors_parse(void **state)
{
	static const struct from_case cases[] = {
	    /* what mail readers send */
	    {"alice@example.com", "alice@example.com", NULL},
	    {"  Alice@Example.COM  ", "alice@example.com", NULL},
	    {"Alice Example <alice@example.com>", "alice@example.com", NULL},
	    {"\"Example, Alice\" <alice@example.com>", "alice@example.com", NULL},
	    {"\"Alice \\\"Al\\\" E.\" <alice@example.com>", "alice@example.com", NULL},
	    {"=?utf-8?q?Al=C3=AFce?= <alice@example.com>", "alice@example.com", NULL},
	    {"=?UTF-8?B?QWxpY2U=?= <alice@example.com>", "alice@example.com", NULL},
	    {"alice@example.com (Alice (the (real) one))", "alice@example.com", NULL},
	    {"(comment) Alice <(c)alice(c)@(c)example.com(c)> (c)", "alice@example.com", NULL},
	    {"Alice\r\n <alice@example.com>", "alice@example.com", NULL},
	    {"Alice\n\t<alice@example.com>\r\n", "alice@example.com", NULL},
	    {"Mr. Smith <smith@example.com>", "smith@example.com", NULL},
	    {"<alice+tag@example.com>", "alice+tag@example.com", NULL},
	    {"\"alice\"@example.com", "alice@example.com", NULL},
	    {"\"a b\"@example.com", "\"a b\"@example.com", NULL},
	    {"\"a\\\"b\"@example.com", "\"a\\\"b\"@example.com", NULL},
	    {"J\xc3\xbcrgen <j@example.com>", "j@example.com", NULL},
	    {"\"J\xc3\xbcrgen\" <j@example.com>", "j@example.com", NULL},
	    {"xn--bcher-kva.example <a@xn--bcher-kva.example>", "a@xn--bcher-kva.example", NULL},
	    {"B\xc3\xbc <a@XN--BCHER-KVA.example>", "a@xn--bcher-kva.example", NULL},
	    /* obsolete forms (RFC 5322 §4.4) */
	    {"<@relay.example:alice@example.com>", "alice@example.com", NULL},
	    {"<@a,@b:alice@example.com>", "alice@example.com", NULL},
	    {"<,@a, ,@b.example:alice@example.com>", "alice@example.com", NULL},
	    {"alice . smith @ example . com", "alice.smith@example.com", NULL},
	    {"alice@example(c).com", "alice@example.com", NULL},
	    {"alice@example\r\n .com", "alice@example.com", NULL},
	    {"alice.\"b c\"@example.com", "\"alice.b c\"@example.com", NULL},
	    {"alice@example.com,", "alice@example.com", NULL},
	    {", ,alice@example.com, ,", "alice@example.com", NULL},
	    /* a trailing dot and case do not make another domain */
	    {"<alice@example.com.>", "alice@example.com", NULL},
	    {"ALICE@EXAMPLE.COM.", "alice@example.com", NULL},
	    {"alice@example.com. (c)", "alice@example.com", NULL},
	    /* every mailbox is returned */
	    {"x@attacker.test, alice@example.com", "x@attacker.test alice@example.com", NULL},
	    {"A <a@x.example>, \"B, b\" <b@y.example>,c@z.example",
	     "a@x.example b@y.example c@z.example", NULL},
	    {"a@x.example,a@x.example", "a@x.example a@x.example", NULL},
	    /* addresses hidden in names, comments and quotes are not authors */
	    {"\"alice@example.com\" <x@attacker.test>", "x@attacker.test", NULL},
	    {"\"<alice@example.com>\" <x@attacker.test>", "x@attacker.test", NULL},
	    {"(alice@example.com) x@attacker.test", "x@attacker.test", NULL},
	    {"x@attacker.test (<alice@example.com>)", "x@attacker.test", NULL},
	    {"\"alice@example.com\"@attacker.test", "\"alice@example.com\"@attacker.test", NULL},
	    {"\"x<alice@example.com>\"@attacker.test", "\"x<alice@example.com>\"@attacker.test",
	     NULL},
	    {"=?utf-8?q?alice=40example.com?= <x@attacker.test>", "x@attacker.test", NULL},
	    {"=?utf-8?q?alice?=@example.com", "=?utf-8?q?alice?=@example.com", NULL},
	    /* refused: nothing, or not one of the forms above */
	    {"", NULL, "no mailbox"},
	    {"   ", NULL, "no mailbox"},
	    {" , ", NULL, "no mailbox"},
	    {"(only a comment)", NULL, "no mailbox"},
	    {"alice", NULL, "where a mailbox"},
	    {"alice@", NULL, "domain is the end"},
	    {"@example.com", NULL, "where a mailbox"},
	    {"<>", NULL, "without '@'"},
	    {"alice@example..com", NULL, "empty label"},
	    {"alice@example.com..", NULL, "empty label"},
	    {"alice@.example.com", NULL, "domain is '.'"},
	    {"alice.@example.com", NULL, "dot ending"},
	    {".alice@example.com", NULL, "not words joined"},
	    {"alice..b@example.com", NULL, "not words joined"},
	    {"alice@example", NULL, "not a host name"},
	    {"alice@exa_mple.com", NULL, "not a host name"},
	    {"alice@192.0.2.1", NULL, "not a host name"},
	    {"alice@[192.0.2.1]", NULL, "domain literal"},
	    {"<alice@[IPv6:::1]>", NULL, "domain literal"},
	    {"Group: alice@example.com;", NULL, "is a group"},
	    {"g: alice@example.com, x@attacker.test;", NULL, "is a group"},
	    {"undisclosed-recipients:;", NULL, "is a group"},
	    {"Alice <alice@example.com", NULL, "'>' closing"},
	    {"Alice alice@example.com>", NULL, "not words joined by dots"},
	    {"Alice <alice@example.com> trailing", NULL, "after an address"},
	    {"alice@example.com <x@attacker.test>", NULL, "'<' after an address"},
	    {"x@attacker.test <alice@example.com>", NULL, "'<' after an address"},
	    {"alice@example.com x@attacker.test", NULL, "after an address"},
	    {"Alice <alice@example.com> <x@attacker.test>", NULL, "after an address"},
	    {"<x@attacker.test:alice@example.com>", NULL, "closing the address"},
	    {"<@attacker.test alice@example.com>", NULL, "not ':'"},
	    {"<@attacker.test:@x:alice@example.com>", NULL, "no local part"},
	    {".Alice <alice@example.com>", NULL, "starts with a dot"},
	    {"alice@example.com (unclosed", NULL, "comment that is not closed"},
	    {"\"unclosed <alice@example.com>", NULL, "quoted string that is not closed"},
	    {"<alice@exa mple.com>", NULL, "exa is not a host name"},
	    {"alice@exa(mple.com", NULL, "comment that is not closed"},
	    {"alice@example.com; x@attacker.test", NULL, "';'"},
	    {"Alice [x] <alice@example.com>", NULL, "domain literal"},
	    {"Al\\ice <alice@example.com>", NULL, "'\\'"},
	    /* encoded words are no address */
	    {"alice@=?utf-8?q?example.com?=", NULL, "not a host name"},
	    {"=?utf-8?q?alice@example.com?= <x@attacker.test>", NULL, "not a host name"},
	    /* 8-bit addresses: this relay offers no SMTPUTF8 */
	    {"alice@b\xc3\xbc"
	     "cher.example",
	     NULL, "non-ASCII"},
	    {"<alice@exam\xe9le.com>", NULL, "non-ASCII"},
	    {"j\xc3\xbcrgen@example.com", NULL, "non-ASCII"},
	    {"alice@\xef\xbd\x85xample.com", NULL, "non-ASCII"},
	    /* controls and line breaks */
	    {"alice@example.com\r\nFrom: x@attacker.test", NULL, "not folding"},
	    {"alice@example.com\rx", NULL, "bare CR"},
	    {"alice@exam\x0bple.com", NULL, "0x0b"},
	    {"Alice\x1b <alice@example.com>", NULL, "0x1b"},
	    {"\"a\x7f\" <alice@example.com>", NULL, "0x7f"},
	};

	int failed = 0;

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		failed += check_case(&cases[k], strlen(cases[k].in));
	assert_int_equal(failed, 0);
}

static void test_authors_parse_limits(void **state)
{
	struct relay_authors au;
	struct err e = {0};
	char *big;
	size_t n;

	(void)state;
	/* a NUL in the value is refused, wherever it is */
	static const char nul1[] = "alice@example.com\0.attacker.test";
	static const char nul2[] = "x@attacker.test\0, alice@example.com";
	const struct from_case c1 = {nul1, NULL, "0x00"}, c2 = {nul2, NULL, "0x00"};
	assert_int_equal(check_case(&c1, sizeof(nul1) - 1), 0);
	assert_int_equal(check_case(&c2, sizeof(nul2) - 1), 0);
	/* a very long display name, folded: still read to its address */
	n = 200000;
	big = malloc(n + 64);
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = i % 70 == 69 ? ' ' : 'a';
	memcpy(big + 1000, "\r\n ", 3);
	snprintf(big + n, 64, " <alice@example.com>");
	assert_int_equal(relay_authors_parse(big, strlen(big), &au, &e), 0);
	assert_int_equal(au.n, 1);
	assert_string_equal(au.a[0].domain, "example.com");
	/* many mailboxes: an error, not a truncated list */
	for (size_t i = 0; i + 20 < n; i += 20)
		memcpy(big + i, "a@example.com,      ", 20);
	assert_int_equal(relay_authors_parse(big, strlen(big), &au, &e), -1);
	assert_int_equal(au.n, 0);
	assert_non_null(strstr(e.msg, "more than"));
	/* long labels, long domains, long local parts */
	memset(big, 'a', 300);
	memcpy(big + 64, "@", 1);
	memcpy(big + 64 + 1 + 63, ".com", 5);
	assert_int_equal(relay_authors_parse(big, strlen(big), &au, &e), 0); /* 64 + 63: ok */
	big[0] = 'b';
	memmove(big + 1, big, strlen(big) + 1); /* a 65-octet local part */
	assert_int_equal(relay_authors_parse(big, strlen(big), &au, &e), -1);
	assert_non_null(strstr(e.msg, "longer than 64"));
	snprintf(big, n, "a@");
	for (int i = 0; i < 60; i++)
		strcat(big, "abcd.");
	strcat(big, "com");
	assert_int_equal(relay_authors_parse(big, strlen(big), &au, &e), -1);
	assert_non_null(strstr(e.msg, "domain"));
	/* a value cut anywhere never reads past its end */
	const char *v =
	    "\"A, \\\"B\\\"\" (c (d)) <@r.example:a.\"b\"@example(x).com.>, c@d.example";
	for (size_t len = 0; len <= strlen(v); len++) {
		char *cut = malloc(len ? len : 1);
		memcpy(cut, v, len);
		(void)relay_authors_parse(cut, len, &au, &e);
		free(cut);
	}
	free(big);
	assert_int_equal(relay_authors_parse(NULL, 0, &au, &e), -1);
}

static void test_message_authors(void **state)
{
	static const struct {
		const char *msg, *want, *code; /* want: the authors, or NULL and the error code */
	} cases[] = {
	    {"Subject: x\r\nfrom : Bob\r\n\t<BOB@example.org>\r\nTo: y\r\n\r\nFrom: no\r\n",
	     "bob@example.org", NULL},
	    {"Subject: x\nFrom: bob@example.org\n\nbody\n", "bob@example.org", NULL},
	    {"FROM:bob@example.org", "bob@example.org", NULL},
	    {"fRoM\t :\tbob@example.org\r\n\r\n", "bob@example.org", NULL},
	    {"From: a@example.org, b@example.org\r\n\r\n", "a@example.org b@example.org", NULL},
	    {"Subject: x\r\n\r\nFrom: bob@example.org\r\n", NULL, "from_missing"},
	    {"Sender: alice@example.org\r\n\r\nbody\r\n", NULL, "from_missing"},
	    {"Resent-From: alice@example.org\r\n\r\n", NULL, "from_missing"},
	    {"From: a@example.org\r\nFrom: b@example.org\r\n\r\n", NULL, "from_several"},
	    {"From: a@example.org\r\nfrom : a@example.org\r\n\r\n", NULL, "from_several"},
	    {"From: x@attacker.test\r\n\t\r\nFROM: alice@example.org\r\n\r\n", NULL,
	     "from_several"},
	    {"From: g: alice@example.org;\r\n\r\n", NULL, "from_unreadable"},
	    {"From:\r\n\r\n", NULL, "from_unreadable"},
	    {"From: a@example.org\r\nFr\x01om: b@example.org\r\n\r\n", NULL, "bad_field_name"},
	    {"From: a@example.org\r\nFrom\x0b: b@example.org\r\n\r\n", NULL, "bad_field_name"},
	    {"From: a@example.org\r\nFr om: b@example.org\r\n\r\n", NULL, "bad_field_name"},
	    {"From: a@example.org\r\nFr\xc3\xb6m: b@example.org\r\n\r\n", NULL, "bad_field_name"},
	};
	struct relay_authors au;
	char addr[RELAY_ADDR_MAX];

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct dkim_msg m;
		struct err e = {0};
		char got[2 * RELAY_ADDR_MAX] = "";
		int rc;

		assert_int_equal(dkim_msg_parse(cases[k].msg, strlen(cases[k].msg), &m, &e), 0);
		rc = relay_message_authors(m.buf, m.len, &au, &e);
		dkim_msg_free(&m);
		for (size_t j = 0; rc == 0 && j < au.n; j++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", j ? " " : "",
			         au.a[j].addr);
		if (cases[k].want != NULL && (rc != 0 || strcmp(got, cases[k].want) != 0))
			fail_msg("case %zu: %d [%s] %s", k, rc, got, e.msg);
		if (cases[k].want == NULL && (rc != -1 || strcmp(e.code, cases[k].code) != 0))
			fail_msg("case %zu: %d [%s] %s, want %s", k, rc, got, e.code,
			         cases[k].code);
		/* relay_from_address: the single author or nothing */
		rc = relay_from_address(cases[k].msg, strlen(cases[k].msg), 0, addr, sizeof(addr));
		if (cases[k].want != NULL && strchr(cases[k].want, ' ') == NULL) {
			assert_int_equal(rc, 0);
			assert_string_equal(addr, cases[k].want);
		} else {
			assert_int_equal(rc, -1);
			assert_string_equal(addr, "");
		}
	}
	char small[8];
	const char *m1 = "From: alice@example.com\r\n\r\n";
	assert_int_equal(relay_from_address(m1, strlen(m1), 0, small, sizeof(small)), -1);
	assert_string_equal(small, "");
	assert_string_equal(relay_addr_domain("a@b@c.example"), "c.example");
	assert_string_equal(relay_addr_domain("nobody"), "");
	/* a message cut anywhere never reads past its end */
	const char *m2 = cases[0].msg;
	for (size_t n = 0; n <= strlen(m2); n++) {
		char *cut = malloc(n ? n : 1);
		memcpy(cut, m2, n);
		(void)relay_from_address(cut, n, 0, addr, sizeof(addr));
		free(cut);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_legacy_ed25519_and_rsa_pass, reset),
	    cmocka_unit_test_setup(test_tampered_body_and_header_fail, reset),
	    cmocka_unit_test_setup(test_legacy_temperror_not_cached_permerror_cached, reset),
	    cmocka_unit_test_setup(test_wrong_key_and_malformed_signature, reset),
	    cmocka_unit_test_setup(test_anchored_pass_ed25519_and_rsa, reset),
	    cmocka_unit_test_setup(test_anchored_refusals, reset),
	    cmocka_unit_test_setup(test_keyserver_timeout_and_garbage_are_temperror, reset),
	    cmocka_unit_test_setup(test_log_growth_and_fork, reset),
	    cmocka_unit_test_setup(test_user_signature, reset),
	    cmocka_unit_test_setup(test_alignment_and_sender, reset),
	    cmocka_unit_test_setup(test_unreadable_and_from_fields, reset),
	    cmocka_unit_test_setup(test_threads, reset),
	    cmocka_unit_test_setup(test_enforcement_every_author, reset),
	    cmocka_unit_test(test_authors_parse),
	    cmocka_unit_test(test_authors_parse_limits),
	    cmocka_unit_test(test_message_authors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
