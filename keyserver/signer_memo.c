/*
 * signer_memo.c - what the signer need not redo for every request.
 *
 * Opening a domain parses its two certificates and unseals its issuer key
 * (OpenSSL's decoders: most of an enrollment's CPU time once heads are
 * grouped), and publishing verifies the newest head's JWS.  Both are pure
 * functions of bytes read from the database, so the results are kept under
 * the SHA-256 of exactly those bytes: the domain row's name, root, issuer and
 * sealed key; the head's domain, size, root, JWS and the issuer it was checked
 * against.  Every request still reads the rows and checks the domain's seal
 * (seal.c); a row changed in any byte misses the memo and is checked in full.
 * Nothing else is kept: the signer stays stateless in what it decides.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ks_signer.h"

#define MEMO_SLOTS 32

struct domain_slot {
	uint8_t digest[32];
	int used;
	X509 *root, *issuer;
	EVP_PKEY *key;
	char issuer_fpr[CRYPTO_HEX256_LEN];
	char root_fpr[CRYPTO_HEX256_LEN];
};

struct ks_signer_memo {
	pthread_mutex_t mu;
	struct domain_slot domain[MEMO_SLOTS];
	uint8_t head[MEMO_SLOTS][32]; /* digests of heads known good; zero: none */
};

struct ks_signer_memo *ks_signer_memo_new(void)
{
	struct ks_signer_memo *m = calloc(1, sizeof(*m));

	if (m != NULL && pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

static void slot_clear(struct domain_slot *s)
{
	X509_free(s->root);
	X509_free(s->issuer);
	EVP_PKEY_free(s->key);
	memset(s, 0, sizeof(*s));
}

void ks_signer_memo_free(struct ks_signer_memo *m)
{
	if (m == NULL)
		return;
	for (int i = 0; i < MEMO_SLOTS; i++)
		slot_clear(&m->domain[i]);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* SHA-256 over the parts, each with its length, so that no two lists share a digest. */
static void digest(const char *const *parts, int n, uint8_t out[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned len = 0;

	memset(out, 0, 32);
	if (c == NULL)
		return;
	if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1) {
		for (int i = 0; i < n; i++) {
			const char *p = parts[i] != NULL ? parts[i] : "";
			size_t l = strlen(p);
			EVP_DigestUpdate(c, &l, sizeof(l));
			EVP_DigestUpdate(c, p, l);
		}
		EVP_DigestFinal_ex(c, out, &len);
	}
	EVP_MD_CTX_free(c);
}

static void domain_digest(const struct ks_domain *d, uint8_t out[32])
{
	const char *parts[4] = {d->name, d->root_pem, d->issuer_pem, d->issuer_key_sealed};

	digest(parts, 4, out);
}

int ks_signer_memo_domain_get(struct ks_signer_memo *m, const struct ks_domain *d,
                              struct ks_signer_domain *sd)
{
	uint8_t dg[32];
	struct domain_slot *s;
	int hit = 0;

	if (m == NULL)
		return 0;
	s = &m->domain[(unsigned long long)d->id % MEMO_SLOTS];
	domain_digest(d, dg);
	pthread_mutex_lock(&m->mu);
	if (s->used && memcmp(s->digest, dg, 32) == 0 && X509_up_ref(s->root) == 1) {
		if (X509_up_ref(s->issuer) == 1) {
			if (EVP_PKEY_up_ref(s->key) == 1) {
				sd->root = s->root;
				sd->issuer = s->issuer;
				sd->key = s->key;
				memcpy(sd->issuer_fpr, s->issuer_fpr, sizeof(sd->issuer_fpr));
				memcpy(sd->root_fpr, s->root_fpr, sizeof(sd->root_fpr));
				hit = 1;
			} else {
				X509_free(s->issuer);
			}
		}
		if (!hit)
			X509_free(s->root);
	}
	pthread_mutex_unlock(&m->mu);
	return hit;
}

void ks_signer_memo_domain_put(struct ks_signer_memo *m, const struct ks_domain *d,
                               const struct ks_signer_domain *sd)
{
	struct domain_slot *s;
	uint8_t dg[32];

	if (m == NULL)
		return;
	s = &m->domain[(unsigned long long)d->id % MEMO_SLOTS];
	domain_digest(d, dg);
	pthread_mutex_lock(&m->mu);
	slot_clear(s);
	if (X509_up_ref(sd->root) == 1) {
		s->root = sd->root;
		if (X509_up_ref(sd->issuer) == 1) {
			s->issuer = sd->issuer;
			if (EVP_PKEY_up_ref(sd->key) == 1) {
				s->key = sd->key;
				memcpy(s->digest, dg, 32);
				memcpy(s->issuer_fpr, sd->issuer_fpr, sizeof(s->issuer_fpr));
				memcpy(s->root_fpr, sd->root_fpr, sizeof(s->root_fpr));
				s->used = 1;
			}
		}
	}
	if (!s->used)
		slot_clear(s);
	pthread_mutex_unlock(&m->mu);
}

static void head_digest(const struct ks_signer_domain *sd, long long size, const char *root_hex,
                        const char *jws, uint8_t out[32])
{
	char sizebuf[24];
	const char *parts[5] = {sd->d->name, sd->issuer_fpr, sizebuf, root_hex, jws};

	snprintf(sizebuf, sizeof(sizebuf), "%lld", size);
	digest(parts, 5, out);
}

int ks_signer_memo_head_known(struct ks_signer_memo *m, const struct ks_signer_domain *sd,
                              long long size, const char *root_hex, const char *jws)
{
	uint8_t dg[32];
	int known;

	if (m == NULL)
		return 0;
	head_digest(sd, size, root_hex, jws, dg);
	pthread_mutex_lock(&m->mu);
	known = memcmp(m->head[(unsigned long long)sd->d->id % MEMO_SLOTS], dg, 32) == 0;
	pthread_mutex_unlock(&m->mu);
	return known;
}

void ks_signer_memo_head_put(struct ks_signer_memo *m, const struct ks_signer_domain *sd,
                             long long size, const char *root_hex, const char *jws)
{
	uint8_t dg[32];

	if (m == NULL)
		return;
	head_digest(sd, size, root_hex, jws, dg);
	pthread_mutex_lock(&m->mu);
	memcpy(m->head[(unsigned long long)sd->d->id % MEMO_SLOTS], dg, 32);
	pthread_mutex_unlock(&m->mu);
}
