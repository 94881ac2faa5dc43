/*
 * dkim_sign.c - making a DKIM-Signature field (RFC 6376 §5, RFC 8463).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pki/crypto.h"
#include "mail/dkim.h"

/* Signed when present; From once more than present so that nobody can add
 * a second From that verifiers would show (§8.15). */
static const char *const default_headers[] = {
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "mime-version", "content-type",
};

static int count_named(const struct dkim_msg *m, const char *name)
{
	size_t j, n = strlen(name);
	int c = 0;

	for (j = 0; j < m->nhdrs; j++)
		if (m->hdrs[j].nlen == n && strncasecmp(m->hdrs[j].name, name, n) == 0)
			c++;
	return c;
}

static int add_name(struct dkim_sig *s, const char *name, size_t len, struct err *e)
{
	if (s->nh == DKIM_MAX_HNAMES || len == 0 || len >= DKIM_HNAME_MAX ||
	    memchr(name, ';', len) || memchr(name, ' ', len))
		return err_set(e, ERR_INPUT, "dkim_bad_header", "bad or too many header names");
	memcpy(s->h[s->nh], name, len);
	s->h[s->nh][len] = '\0';
	s->nh++;
	return 0;
}

static int choose_headers(const struct dkim_msg *m, const char *list, struct dkim_sig *s,
                          struct err *e)
{
	size_t k;
	int c, from = 0;

	if (list != NULL) {
		const char *p = list, *colon;
		for (;;) {
			colon = strchr(p, ':');
			size_t len = colon ? (size_t)(colon - p) : strlen(p);
			if (add_name(s, p, len, e) < 0)
				return -1;
			from |= len == 4 && strncasecmp(p, "from", 4) == 0;
			if (colon == NULL)
				break;
			p = colon + 1;
		}
		if (!from)
			return err_set(e, ERR_INPUT, "dkim_missing_from", "From must be signed");
		return 0;
	}
	if (count_named(m, "from") == 0)
		return err_set(e, ERR_INPUT, "dkim_missing_from", "the message has no From");
	for (k = 0; k < sizeof(default_headers) / sizeof(default_headers[0]); k++) {
		const char *name = default_headers[k];
		int n = count_named(m, name) + (strcmp(name, "from") == 0);
		for (c = 0; c < n; c++)
			if (add_name(s, name, strlen(name), e) < 0)
				return -1;
	}
	return 0;
}

const char *dkim_alg_name(enum dkim_alg alg)
{
	return alg == DKIM_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

int dkim_alg_parse(const char *name, enum dkim_alg *out)
{
	if (strcmp(name, "rsa-sha256") == 0)
		*out = DKIM_RSA_SHA256;
	else if (strcmp(name, "ed25519-sha256") == 0)
		*out = DKIM_ED25519_SHA256;
	else
		return -1;
	return 0;
}

int dkim_key_alg(EVP_PKEY *key, enum dkim_alg *alg, struct err *e)
{
	int id = key ? EVP_PKEY_get_base_id(key) : EVP_PKEY_NONE;

	if (id != EVP_PKEY_ED25519 && id != EVP_PKEY_RSA)
		return err_set(e, ERR_UNPROC, "dkim_bad_algorithm", "DKIM keys are RSA or Ed25519");
	if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(key) < 1024)
		return err_set(e, ERR_UNPROC, "dkim_weak_key", "the RSA key is too small");
	if (EVP_PKEY_get_bits(key) > DKIM_SIG_MAX * 8)
		return err_set(e, ERR_UNPROC, "dkim_weak_key", "the RSA key is too large");
	*alg = id == EVP_PKEY_ED25519 ? DKIM_ED25519_SHA256 : DKIM_RSA_SHA256;
	return 0;
}

/* RSASSA-PKCS1-v1_5 over SHA-256, or Ed25519 over the SHA-256 digest of the
 * data (RFC 8463 §3: PureEdDSA of the hash). */
int dkim_sign_data(EVP_PKEY *key, const void *data, size_t len, uint8_t *sig, size_t *siglen,
                   struct err *e)
{
	EVP_MD_CTX *ctx;
	enum dkim_alg alg;
	uint8_t digest[32];
	int ok;

	if (dkim_key_alg(key, &alg, e) < 0)
		return -1;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	*siglen = DKIM_SIG_MAX;
	if (alg == DKIM_ED25519_SHA256) {
		crypto_sha256(data, len, digest);
		ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
		     EVP_DigestSign(ctx, sig, siglen, digest, sizeof(digest)) == 1;
	} else {
		ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
		     EVP_DigestSign(ctx, sig, siglen, data, len) == 1;
	}
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return err_set_ssl(e, ERR_INTERNAL, "dkim_sign", "signing failed");
	return 0;
}

static int check_opts(const struct dkim_sign_opts *o, struct err *e)
{
	if (o->d == NULL || o->s == NULL || !*o->d || !*o->s || strlen(o->d) >= DKIM_DOMAIN_MAX ||
	    strlen(o->s) >= DKIM_SELECTOR_MAX || strpbrk(o->d, "; \t\r\n") ||
	    strpbrk(o->s, "; \t\r\n"))
		return err_set(e, ERR_INPUT, "dkim_bad_option", "d= and s= must be plain names");
	if (o->i != NULL) {
		const char *at = strrchr(o->i, '@');
		size_t il, dl = strlen(o->d);
		if (at == NULL || strpbrk(o->i, "; \t\r\n") || strlen(o->i) >= DKIM_IDENTITY_MAX)
			return err_set(e, ERR_INPUT, "dkim_bad_identity", "i= is not an identity");
		il = strlen(at + 1);
		if (!(il == dl && strcasecmp(at + 1, o->d) == 0) &&
		    !(il > dl && at[1 + il - dl - 1] == '.' &&
		      strcasecmp(at + 1 + il - dl, o->d) == 0))
			return err_set(e, ERR_INPUT, "dkim_bad_identity", "i= is not within d=%s",
			               o->d);
	}
	return 0;
}

/* "h=a:b:c" folded so that no line gets much longer than 76 characters. */
static int fold_hlist(const struct dkim_sig *s, char *out, size_t cap)
{
	size_t n = 0, col = 3;
	int k, w;

	w = snprintf(out, cap, "h=");
	n = (size_t)w;
	for (k = 0; k < s->nh; k++) {
		size_t len = strlen(s->h[k]);
		if (col + len > 72) {
			w = snprintf(out + n, cap - n, "\r\n\t ");
			n += (size_t)w;
			col = 2;
		}
		w = snprintf(out + n, cap - n, "%s%s", s->h[k], k + 1 < s->nh ? ":" : ";");
		if (w < 0 || (size_t)w >= cap - n)
			return -1;
		n += (size_t)w;
		col += (size_t)w;
	}
	return 0;
}

/* The field up to and including "b=", whose value comes last. */
static char *field_head(const struct dkim_sign_opts *o, const struct dkim_sig *s, enum dkim_alg alg,
                        const char *bh64)
{
	char hlist[DKIM_MAX_HNAMES * (DKIM_HNAME_MAX + 4) + 16], times[64] = "", ibuf[400] = "";
	char *out = NULL;
	long long now = o->now ? (long long)o->now : (long long)time(NULL);

	if (fold_hlist(s, hlist, sizeof(hlist)) < 0)
		return NULL;
	if (o->expire > 0)
		snprintf(times, sizeof(times), "t=%lld; x=%lld;", now, now + o->expire);
	else
		snprintf(times, sizeof(times), "t=%lld;", now);
	if (o->i != NULL)
		snprintf(ibuf, sizeof(ibuf), " i=%s;", o->i);
	if (asprintf(&out,
	             "DKIM-Signature: v=1; a=%s; c=%s/%s; d=%s; s=%s;%s\r\n\t%s\r\n\t%s\r\n\tbh=%s;"
	             "\r\n\tb=",
	             dkim_alg_name(alg), o->simple_header ? "simple" : "relaxed",
	             o->simple_body ? "simple" : "relaxed", o->d, o->s, ibuf, times, hlist,
	             bh64) < 0)
		return NULL;
	return out;
}

/* head followed by the base64 signature folded every 64 characters. */
static char *append_b(const char *head, const char *b64)
{
	size_t hl = strlen(head), bl = strlen(b64), n = hl, k;
	char *out = malloc(hl + bl + (bl / 64 + 1) * 3 + 1);

	if (out == NULL)
		return NULL;
	memcpy(out, head, hl);
	for (k = 0; k < bl; k += 64) {
		size_t chunk = bl - k < 64 ? bl - k : 64;
		if (k > 0) {
			memcpy(out + n, "\r\n\t", 3);
			n += 3;
		}
		memcpy(out + n, b64 + k, chunk);
		n += chunk;
	}
	out[n] = '\0';
	return out;
}

void dkim_sign_prep_clear(struct dkim_sign_prep *p)
{
	if (p == NULL)
		return;
	free(p->head);
	free(p->data);
	memset(p, 0, sizeof(*p));
}

int dkim_sign_prepare(const char *msg, size_t len, const struct dkim_sign_opts *o,
                      enum dkim_alg alg, struct dkim_sign_prep *out, struct err *e)
{
	struct dkim_msg m;
	struct dkim_sig *s = NULL;
	uint8_t bh[32];
	char *bh64 = NULL;
	int trunc, rc = -1;

	memset(out, 0, sizeof(*out));
	out->alg = alg;
	if (check_opts(o, e) < 0 || dkim_msg_parse(msg, len, &m, e) < 0)
		return -1;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto done;
	}
	s->hcanon = o->simple_header ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
	if (choose_headers(&m, o->headers, s, e) < 0 ||
	    dkim_body_hash(o->simple_body ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED, m.body,
	                   m.bodylen, -1, bh, &trunc, e) < 0)
		goto done;
	if ((bh64 = crypto_b64_encode(bh, sizeof(bh))) == NULL ||
	    (out->head = field_head(o, s, alg, bh64)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto done;
	}
	out->data = dkim_header_data(&m, s->hcanon, (const char(*)[DKIM_HNAME_MAX])s->h, s->nh,
	                             out->head, strlen(out->head), &out->datalen, e);
	if (out->data != NULL)
		rc = 0;
done:
	free(bh64);
	free(s);
	dkim_msg_free(&m);
	return rc;
}

char *dkim_sign_finish(const struct dkim_sign_prep *p, const uint8_t *sig, size_t siglen,
                       struct err *e)
{
	char *b64, *out = NULL;

	if (p->head == NULL || siglen == 0 || siglen > DKIM_SIG_MAX) {
		err_set(e, ERR_INPUT, "dkim_bad_signature", "no field or no signature to finish");
		return NULL;
	}
	if ((b64 = crypto_b64_encode(sig, siglen)) == NULL ||
	    (out = append_b(p->head, b64)) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	free(b64);
	return out;
}

char *dkim_sign(const char *msg, size_t len, const struct dkim_sign_opts *o, EVP_PKEY *key,
                struct err *e)
{
	struct dkim_sign_prep p = {0};
	enum dkim_alg alg;
	uint8_t sig[DKIM_SIG_MAX];
	size_t siglen = 0;
	char *out = NULL;

	if (dkim_key_alg(key, &alg, e) < 0)
		return NULL;
	if (dkim_sign_prepare(msg, len, o, alg, &p, e) == 0 &&
	    dkim_sign_data(key, p.data, p.datalen, sig, &siglen, e) == 0)
		out = dkim_sign_finish(&p, sig, siglen, e);
	dkim_sign_prep_clear(&p);
	return out;
}
