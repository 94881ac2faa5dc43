/*
 * dkim_verify.c - checking DKIM-Signature fields (RFC 6376 §6) and giving
 * each one the verdict Authentication-Results reports (RFC 8601).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/rsa.h>

#include "pki/crypto.h"
#include "mail/dkim.h"

const char *dkim_status_name(enum dkim_status s)
{
	switch (s) {
	case DKIM_PASS:
		return "pass";
	case DKIM_FAIL:
		return "fail";
	case DKIM_NEUTRAL:
		return "neutral";
	case DKIM_TEMPERROR:
		return "temperror";
	case DKIM_PERMERROR:
		return "permerror";
	case DKIM_NONE:
		break;
	}
	return "none";
}

static int is_sig_field(const struct dkim_hdr *h)
{
	return h->nlen == 14 && strncasecmp(h->name, "DKIM-Signature", 14) == 0;
}

/* The field with the value of its b= tag removed (§3.7); malloc'd. */
static char *strip_b(const struct dkim_hdr *h, const struct dkim_taglist *tl, size_t *outlen)
{
	const struct dkim_tag *b = dkim_tags_get(tl, "b");
	size_t start = (size_t)(b->val - h->raw), end = start + b->vlen;
	char *out = malloc(h->rawlen + 1);

	if (out == NULL)
		return NULL;
	memcpy(out, h->raw, start);
	memcpy(out + start, h->raw + end, h->rawlen - end);
	*outlen = h->rawlen - (end - start);
	out[*outlen] = '\0';
	return out;
}

/*
 * The signature check itself.  OpenSSL 3 builds a verification context by looking the
 * algorithm (and for RSA the digest) up in its provider store, under locks, which cost a
 * tenth of an Ed25519 check and a good share of an RSA one; and the same key verifies
 * message after message.  So each thread keeps the context of the last key it checked
 * (holding a reference to that key, so that its address cannot come back as another
 * key) and reuses it: an Ed25519 context answers one-shot DigestVerify calls again and
 * again, an RSA one EVP_PKEY_verify calls on a digest we compute.  Freed when the thread
 * ends.
 */
struct verifier {
	EVP_PKEY *key;    /* a reference */
	EVP_MD_CTX *md;   /* Ed25519 */
	EVP_PKEY_CTX *pk; /* RSA */
};

static pthread_once_t verifier_once = PTHREAD_ONCE_INIT;
static pthread_key_t verifier_key;
static int verifier_key_ok;

static void verifier_clear(struct verifier *v)
{
	EVP_MD_CTX_free(v->md);
	EVP_PKEY_CTX_free(v->pk);
	EVP_PKEY_free(v->key);
	memset(v, 0, sizeof(*v));
}

static void verifier_destroy(void *p)
{
	if (p != NULL)
		verifier_clear(p);
	free(p);
}

static void verifier_init(void)
{
	verifier_key_ok = pthread_key_create(&verifier_key, verifier_destroy) == 0;
}

/* Set v up for key; 0, or -1 when OpenSSL cannot (v is then empty). */
static int verifier_setup(struct verifier *v, EVP_PKEY *key, int ed)
{
	verifier_clear(v);
	if (ed) {
		v->md = EVP_MD_CTX_new();
		if (v->md == NULL || EVP_DigestVerifyInit(v->md, NULL, NULL, NULL, key) != 1)
			goto fail;
	} else {
		v->pk = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
		if (v->pk == NULL || EVP_PKEY_verify_init(v->pk) != 1 ||
		    EVP_PKEY_CTX_set_rsa_padding(v->pk, RSA_PKCS1_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_signature_md(v->pk, crypto_sha256_md()) != 1)
			goto fail;
	}
	if (EVP_PKEY_up_ref(key) != 1)
		goto fail;
	v->key = key;
	return 0;
fail:
	verifier_clear(v);
	return -1;
}

/* This thread's verifier, set up for key; NULL when none can be had. */
static struct verifier *thread_verifier(EVP_PKEY *key, int ed)
{
	struct verifier *v;

	pthread_once(&verifier_once, verifier_init);
	if (!verifier_key_ok)
		return NULL;
	v = pthread_getspecific(verifier_key);
	if (v == NULL) {
		v = calloc(1, sizeof(*v));
		if (v == NULL || pthread_setspecific(verifier_key, v) != 0) {
			free(v);
			return NULL;
		}
	}
	if (v->key == key && (ed ? v->md != NULL : v->pk != NULL))
		return v;
	return verifier_setup(v, key, ed) == 0 ? v : NULL;
}

/* Ed25519 signs SHA-256(data) (RFC 8463); RSA signs data with SHA-256. */
static int verify_data(EVP_PKEY *key, int ed, const char *data, size_t len, const uint8_t *sig,
                       size_t siglen)
{
	struct verifier *v = thread_verifier(key, ed);
	uint8_t digest[32];
	int ok;

	crypto_sha256(data, len, digest);
	if (v == NULL)
		ok = 0;
	else if (ed)
		ok = EVP_DigestVerify(v->md, sig, siglen, digest, sizeof(digest)) == 1;
	else
		ok = EVP_PKEY_verify(v->pk, sig, siglen, digest, sizeof(digest)) == 1;
	ERR_clear_error();
	return ok;
}

/* Record a verdict; returns 0 for a pass, -1 otherwise. */
static int verdict(struct dkim_result *out, enum dkim_status st, const struct err *why,
                   struct err *e)
{
	out->status = st;
	if (why != NULL) {
		snprintf(out->code, sizeof(out->code), "%s", why->code);
		snprintf(out->reason, sizeof(out->reason), "%s", why->msg);
		if (e != why)
			*e = *why;
		return -1;
	}
	snprintf(out->reason, sizeof(out->reason), "signature verified");
	return 0;
}

static void describe(struct dkim_result *out, const struct dkim_taglist *tl, const char *d,
                     const char *i, const char *s)
{
	const struct dkim_tag *t;

	snprintf(out->d, sizeof(out->d), "%s", d);
	snprintf(out->i, sizeof(out->i), "%s", i);
	snprintf(out->s, sizeof(out->s), "%s", s);
	if ((t = dkim_tags_get(tl, "a")) != NULL)
		snprintf(out->a, sizeof(out->a), "%.*s", (int)t->vlen, t->val);
	if ((t = dkim_tags_get(tl, "b")) != NULL) {
		size_t k, n = 0;
		for (k = 0; k < t->vlen && n + 1 < sizeof(out->b) && n < 12; k++)
			if (t->val[k] > ' ')
				out->b[n++] = t->val[k];
		out->b[n] = '\0';
	}
}

/*
 * Parsed keys, by the exact text of their record.  OpenSSL 3 decodes an RSA
 * SubjectPublicKeyInfo through its generic decoder framework at a few
 * thousand per second, ten times slower than the RSA verification itself;
 * the same few keys sign most mail, so the parse is done once per record
 * text.  A slot keeps a copy of its text and is found by a cheap hash of it
 * (FNV-1a): comparing the text is exact and costs less than a SHA-256 of it
 * did.  Only successful parses are kept; EVP_PKEYs are reference-counted and
 * safe to verify with from several threads at once.
 */
#define KEY_CACHE_SLOTS 128

struct key_slot {
	char *text; /* the record, NUL-terminated; NULL: unused */
	size_t len;
	struct dkim_key key;
};

static struct key_slot key_cache[KEY_CACHE_SLOTS];
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* The slot of a record: by its length and its last 32 octets, the end of p= (records
 * of one key type begin alike). */
static size_t record_slot(const char *rec, size_t len)
{
	uint32_t h = 2166136261u ^ (uint32_t)len;
	size_t k;

	for (k = len > 32 ? len - 32 : 0; k < len; k++)
		h = (h ^ (unsigned char)rec[k]) * 16777619u;
	return h % KEY_CACHE_SLOTS;
}

/* The cached key for rec (a reference taken), or 0 when it is not there. */
static int key_cache_find(struct key_slot *sl, const char *rec, size_t len, struct dkim_key *out)
{
	int hit;

	pthread_mutex_lock(&key_cache_lock);
	hit = sl->text != NULL && sl->len == len && memcmp(sl->text, rec, len) == 0;
	if (hit) {
		*out = sl->key;
		EVP_PKEY_up_ref(out->pkey);
	}
	pthread_mutex_unlock(&key_cache_lock);
	return hit;
}

static int key_parse_cached(const char *rec, struct dkim_key *out, struct err *e)
{
	size_t len = strlen(rec);
	struct key_slot *sl = &key_cache[record_slot(rec, len)];
	char *copy;

	if (key_cache_find(sl, rec, len, out))
		return 0;
	if (dkim_key_parse(rec, len, out, e) < 0)
		return -1;
	if ((copy = strdup(rec)) == NULL)
		return 0; /* parsed, just not kept */
	pthread_mutex_lock(&key_cache_lock);
	if (sl->text != NULL)
		dkim_key_clear(&sl->key);
	free(sl->text);
	sl->text = copy;
	sl->len = len;
	sl->key = *out;
	EVP_PKEY_up_ref(sl->key.pkey);
	pthread_mutex_unlock(&key_cache_lock);
	return 0;
}

/* Fetch and parse the key; the verdict on failure is set by the caller. */
static int get_key(const struct dkim_sig *s, dkim_key_lookup_fn lookup, void *ctx,
                   struct dkim_key *key, struct err *e)
{
	char *rec = NULL;
	int rc;

	if (lookup(s->s, s->d, ctx, &rec, e) < 0) {
		free(rec);
		return -1;
	}
	if (rec == NULL)
		return err_set(e, ERR_NOTFOUND, "dkim_no_key", "no key record for %s._domainkey.%s",
		               s->s, s->d);
	rc = key_parse_cached(rec, key, e);
	free(rec);
	if (rc < 0)
		return -1;
	if (key->alg != s->alg) {
		dkim_key_clear(key);
		return err_set(e, ERR_INPUT, "dkim_key_mismatch", "the key type does not match a=");
	}
	if (key->strict) {
		const char *at = strrchr(s->i, '@');
		if (at == NULL || strcasecmp(at + 1, s->d) != 0) {
			dkim_key_clear(key);
			return err_set(e, ERR_UNPROC, "dkim_bad_identity",
			               "the key (t=s) requires i= in exactly d=");
		}
	}
	return 0;
}

static int from_signed(const struct dkim_sig *s)
{
	int k;

	for (k = 0; k < s->nh; k++)
		if (strcasecmp(s->h[k], "from") == 0)
			return 1;
	return 0;
}

/* The body hash of s against the message's body (0), or -1 with e. */
static int body_ok(const struct dkim_msg *m, const struct dkim_sig *s, struct dkim_result *out,
                   struct err *e)
{
	uint8_t bh[32];

	if (dkim_body_hash(s->bcanon, m->body, m->bodylen, s->l, bh, &out->body_truncated, e) < 0)
		return -1;
	if (!crypto_ct_equal(bh, s->bh, sizeof(bh)))
		return err_set(e, ERR_UNPROC, "dkim_body_hash", "body hash did not verify");
	return 0;
}

/* headers_only: the body is not there (a report quotes the signed header fields only), so
 * bh= is taken as signed and not compared; everything the signature covers is checked. */
static int verify_field(const struct dkim_msg *m, const struct dkim_hdr *h,
                        dkim_key_lookup_fn lookup, void *ctx, int headers_only,
                        struct dkim_result *out, struct err *e)
{
	const char *value = (const char *)memchr(h->raw, ':', h->rawlen) + 1;
	size_t vlen = h->rawlen - (size_t)(value - h->raw), slen, dlen;
	struct dkim_taglist tl;
	struct dkim_sig *s = malloc(sizeof(*s)); /* 6 KB, cleared by dkim_sig_from_tags */
	struct dkim_key key = {0};
	char *stripped = NULL, *data = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (s == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return verdict(out, DKIM_TEMPERROR, e, e);
	}
	if (dkim_tags_parse(value, vlen, &tl, e) < 0) {
		rc = verdict(out, DKIM_PERMERROR, e, e);
		goto done;
	}
	if (dkim_sig_from_tags(&tl, time(NULL), s, e) < 0) {
		describe(out, &tl, s->d, s->i, s->s);
		rc = verdict(out, DKIM_PERMERROR, e, e);
		goto done;
	}
	describe(out, &tl, s->d, s->i, s->s);
	if (!from_signed(s)) {
		err_set(e, ERR_INPUT, "dkim_from_unsigned", "h= does not include From");
		rc = verdict(out, DKIM_PERMERROR, e, e);
		goto done;
	}
	if (get_key(s, lookup, ctx, &key, e) < 0) {
		int perm = e->kind != ERR_TEMP && e->kind != ERR_INTERNAL;
		if (e->kind == ERR_NOTFOUND)
			err_set(e, ERR_NOTFOUND, "dkim_no_key",
			        "no key record for %s._domainkey.%s", s->s, s->d);
		rc = verdict(out, perm ? DKIM_PERMERROR : DKIM_TEMPERROR, e, e);
		goto done;
	}
	out->testing = key.testing;
	if (!headers_only && body_ok(m, s, out, e) < 0) {
		rc = verdict(out, DKIM_FAIL, e, e);
		goto done;
	}
	stripped = strip_b(h, &tl, &slen);
	data = stripped ? dkim_header_data(m, s->hcanon, (const char(*)[DKIM_HNAME_MAX])s->h, s->nh,
	                                   stripped, slen, &dlen, e)
	                : NULL;
	if (data == NULL) {
		if (stripped == NULL)
			err_set(e, ERR_INTERNAL, "internal", "out of memory");
		rc = verdict(out, e->kind == ERR_INTERNAL ? DKIM_TEMPERROR : DKIM_PERMERROR, e, e);
		goto done;
	}
	if (!verify_data(key.pkey, s->alg == DKIM_ED25519_SHA256, data, dlen, s->b, s->blen)) {
		err_set(e, ERR_UNPROC, "dkim_bad_signature", "signature did not verify");
		rc = verdict(out, DKIM_FAIL, e, e);
		goto done;
	}
	crypto_sha256_hex(s->b, s->blen, out->sig_id);
	rc = verdict(out, DKIM_PASS, NULL, e);
done:
	free(data);
	free(stripped);
	dkim_key_clear(&key);
	free(s);
	return rc;
}

int dkim_verify_sig(const char *msg, size_t len, size_t sig_index, dkim_key_lookup_fn lookup,
                    void *ctx, struct dkim_result *out, struct err *e)
{
	return dkim_verify_sig_opts(msg, len, sig_index, 0, lookup, ctx, out, e);
}

int dkim_verify_sig_opts(const char *msg, size_t len, size_t sig_index, int headers_only,
                         dkim_key_lookup_fn lookup, void *ctx, struct dkim_result *out,
                         struct err *e)
{
	struct dkim_msg m;
	size_t j, seen = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (dkim_msg_parse(msg, len, &m, e) < 0) {
		out->status = DKIM_PERMERROR;
		snprintf(out->code, sizeof(out->code), "%s", e->code);
		snprintf(out->reason, sizeof(out->reason), "%s", e->msg);
		return -1;
	}
	for (j = 0; j < m.nhdrs; j++) {
		if (!is_sig_field(&m.hdrs[j]) || seen++ != sig_index)
			continue;
		rc = verify_field(&m, &m.hdrs[j], lookup, ctx, headers_only, out, e);
		dkim_msg_free(&m);
		return rc;
	}
	dkim_msg_free(&m);
	snprintf(out->reason, sizeof(out->reason), "no such DKIM-Signature");
	return err_set(e, ERR_NOTFOUND, "dkim_no_signature",
	               "the message has no DKIM-Signature %zu", sig_index);
}

static int verify_all(const char *msg, size_t len, dkim_key_lookup_fn lookup, void *ctx,
                      int headers_only, struct dkim_result **out, size_t *n, struct err *e)
{
	struct dkim_msg m;
	size_t j, count = 0;
	struct err one;

	*out = NULL;
	*n = 0;
	if (dkim_msg_parse(msg, len, &m, e) < 0)
		return -1;
	for (j = 0; j < m.nhdrs; j++)
		count += is_sig_field(&m.hdrs[j]);
	if (count > 0 && (*out = calloc(count, sizeof(**out))) == NULL) {
		dkim_msg_free(&m);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (j = 0; j < m.nhdrs && *n < count; j++) {
		if (!is_sig_field(&m.hdrs[j]))
			continue;
		err_clear(&one);
		verify_field(&m, &m.hdrs[j], lookup, ctx, headers_only, &(*out)[*n], &one);
		(*n)++;
	}
	dkim_msg_free(&m);
	return 0;
}

int dkim_verify_all(const char *msg, size_t len, dkim_key_lookup_fn lookup, void *ctx,
                    struct dkim_result **out, size_t *n, struct err *e)
{
	return verify_all(msg, len, lookup, ctx, 0, out, n, e);
}

int dkim_verify_headers(const char *msg, size_t len, dkim_key_lookup_fn lookup, void *ctx,
                        struct dkim_result **out, size_t *n, struct err *e)
{
	return verify_all(msg, len, lookup, ctx, 1, out, n, e);
}
