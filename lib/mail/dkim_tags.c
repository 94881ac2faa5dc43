/*
 * dkim_tags.c - DKIM tag lists (RFC 6376 §3.2), and the two things written
 * in them: the DKIM-Signature value (§3.5) and the key record (§3.6.1,
 * RFC 8463 §4).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/x509.h>

#include "core/utf8.h"
#include "pki/crypto.h"
#include "mail/dkim.h"

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Skip FWS ([*WSP CRLF] 1*WSP, leniently: any run of WSP and CRLF+WSP). */
static size_t skip_fws(const char *t, size_t len, size_t p)
{
	for (;;) {
		if (p < len && is_wsp(t[p]))
			p++;
		else if (p + 2 < len && t[p] == '\r' && t[p + 1] == '\n' && is_wsp(t[p + 2]))
			p += 3;
		else if (p + 1 < len && t[p] == '\n' && is_wsp(t[p + 1]))
			p += 2;
		else
			return p;
	}
}

static int is_valchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';';
}

/* One tag-spec from p; *p ends on the ';' or at len. */
static int parse_one(const char *t, size_t len, size_t *pp, struct dkim_tag *tag, struct err *e)
{
	size_t p = skip_fws(t, len, *pp), end;

	if (p >= len || !isalpha((unsigned char)t[p]))
		return err_set(e, ERR_INPUT, "dkim_syntax", "a tag name must start with a letter");
	tag->name = t + p;
	while (p < len && (isalnum((unsigned char)t[p]) || t[p] == '_'))
		p++;
	tag->nlen = (size_t)(t + p - tag->name);
	p = skip_fws(t, len, p);
	if (p >= len || t[p] != '=')
		return err_set(e, ERR_INPUT, "dkim_syntax", "tag %.*s has no '='", (int)tag->nlen,
		               tag->name);
	p = skip_fws(t, len, p + 1);
	tag->val = t + p;
	end = p;
	while (p < len && t[p] != ';') {
		/* 8-bit octets too (RFC 8616 §4: UTF-8 in i=); every other tag's reader
		 * (copy_plain, base64, numbers, names) refuses them */
		if (is_valchar((unsigned char)t[p]) || (unsigned char)t[p] >= 0x80) {
			p++;
			end = p;
			continue;
		}
		size_t q = skip_fws(t, len, p);
		if (q == p)
			return err_set(e, ERR_INPUT, "dkim_syntax",
			               "tag %.*s has a character not allowed in a value",
			               (int)tag->nlen, tag->name);
		p = q;
	}
	tag->vlen = end - (size_t)(tag->val - t);
	*pp = p;
	return 0;
}

int dkim_tags_parse(const char *text, size_t len, struct dkim_taglist *out, struct err *e)
{
	size_t p = 0;
	int i;

	memset(out, 0, sizeof(*out));
	for (;;) {
		if (skip_fws(text, len, p) >= len && (out->n > 0 || p == 0))
			break; /* end, or a trailing ';' */
		if (out->n == DKIM_MAX_TAGS)
			return err_set(e, ERR_INPUT, "dkim_syntax", "more than %d tags",
			               DKIM_MAX_TAGS);
		struct dkim_tag *tag = &out->tags[out->n];
		if (parse_one(text, len, &p, tag, e) < 0)
			return -1;
		for (i = 0; i < out->n; i++)
			if (out->tags[i].nlen == tag->nlen &&
			    memcmp(out->tags[i].name, tag->name, tag->nlen) == 0)
				return err_set(e, ERR_INPUT, "dkim_duplicate_tag",
				               "tag %.*s appears twice", (int)tag->nlen, tag->name);
		out->n++;
		if (p >= len)
			break;
		p++; /* the ';' */
	}
	if (out->n == 0)
		return err_set(e, ERR_INPUT, "dkim_syntax", "empty tag list");
	return 0;
}

const struct dkim_tag *dkim_tags_get(const struct dkim_taglist *tl, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 0; i < tl->n; i++)
		if (tl->tags[i].nlen == n && memcmp(tl->tags[i].name, name, n) == 0)
			return &tl->tags[i];
	return NULL;
}

/* ---- value helpers ---- */

static int tag_eq(const struct dkim_tag *t, const char *s)
{
	return t->vlen == strlen(s) && strncasecmp(t->val, s, t->vlen) == 0;
}

/* Copy a value without FWS-free assumptions: refuses values with whitespace. */
static int copy_plain(const struct dkim_tag *t, char *out, size_t cap, struct err *e)
{
	size_t k;

	if (t->vlen == 0 || t->vlen >= cap)
		return err_set(e, ERR_INPUT, "dkim_syntax", "tag %.*s is empty or too long",
		               (int)t->nlen, t->name);
	for (k = 0; k < t->vlen; k++)
		if (!is_valchar((unsigned char)t->val[k]))
			return err_set(e, ERR_INPUT, "dkim_syntax",
			               "tag %.*s has whitespace inside", (int)t->nlen, t->name);
	memcpy(out, t->val, t->vlen);
	out[t->vlen] = '\0';
	return 0;
}

/* i= (§3.5): as copy_plain, and its local part may hold UTF-8 (RFC 8616 §4), which must
 * be well formed. */
static int copy_identity(const struct dkim_tag *t, char *out, size_t cap, struct err *e)
{
	int eightbit = 0;

	for (size_t k = 0; k < t->vlen; k++)
		eightbit |= (unsigned char)t->val[k] >= 0x80;
	if (!eightbit)
		return copy_plain(t, out, cap, e);
	if (!utf8_valid((const unsigned char *)t->val, t->vlen))
		return err_set(e, ERR_INPUT, "dkim_syntax", "tag i is not well-formed UTF-8");
	if (t->vlen == 0 || t->vlen >= cap)
		return err_set(e, ERR_INPUT, "dkim_syntax", "tag i is empty or too long");
	for (size_t k = 0; k < t->vlen; k++)
		if ((unsigned char)t->val[k] < 0x80 && !is_valchar((unsigned char)t->val[k]))
			return err_set(e, ERR_INPUT, "dkim_syntax", "tag i has whitespace inside");
	memcpy(out, t->val, t->vlen);
	out[t->vlen] = '\0';
	return 0;
}

/* Base64 with FWS anywhere (§2.10); returns a malloc'd buffer.  The text without its
 * FWS is gathered on the stack when it fits (b= of RSA-8192 does), else in the heap. */
static uint8_t *decode_b64(const struct dkim_tag *t, size_t *outlen, struct err *e)
{
	char small[2048];
	char *s = t->vlen < sizeof(small) ? small : malloc(t->vlen + 1);
	size_t k, n = 0;
	uint8_t *out;

	if (s == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	for (k = 0; k < t->vlen; k++)
		if (!isspace((unsigned char)t->val[k]))
			s[n++] = t->val[k];
	s[n] = '\0';
	out = crypto_b64_decode(s, outlen);
	if (s != small)
		free(s);
	if (out == NULL)
		err_set(e, ERR_INPUT, "dkim_bad_base64", "tag %.*s is not valid base64",
		        (int)t->nlen, t->name);
	return out;
}

static int parse_number(const struct dkim_tag *t, long long *out, struct err *e)
{
	long long v = 0;
	size_t k;

	/* §3.5: at most 12 digits for l=, t= and x=. */
	if (t->vlen == 0 || t->vlen > 12)
		return err_set(e, ERR_INPUT, "dkim_syntax", "tag %.*s is not a number",
		               (int)t->nlen, t->name);
	for (k = 0; k < t->vlen; k++) {
		if (!isdigit((unsigned char)t->val[k]))
			return err_set(e, ERR_INPUT, "dkim_syntax", "tag %.*s is not a number",
			               (int)t->nlen, t->name);
		v = v * 10 + (t->val[k] - '0');
	}
	*out = v;
	return 0;
}

static int parse_canon(const struct dkim_tag *t, struct dkim_sig *s, struct err *e)
{
	const char *slash = memchr(t->val, '/', t->vlen);
	size_t hl = slash ? (size_t)(slash - t->val) : t->vlen;
	struct dkim_tag h = {t->name, t->nlen, t->val, hl}, b = {t->name, t->nlen, "simple", 6};

	if (slash)
		b = (struct dkim_tag){t->name, t->nlen, slash + 1, t->vlen - hl - 1};
	if (tag_eq(&h, "simple"))
		s->hcanon = DKIM_CANON_SIMPLE;
	else if (tag_eq(&h, "relaxed"))
		s->hcanon = DKIM_CANON_RELAXED;
	else
		return err_set(e, ERR_INPUT, "dkim_bad_canon", "unknown header canonicalisation");
	if (tag_eq(&b, "simple"))
		s->bcanon = DKIM_CANON_SIMPLE;
	else if (tag_eq(&b, "relaxed"))
		s->bcanon = DKIM_CANON_RELAXED;
	else
		return err_set(e, ERR_INPUT, "dkim_bad_canon", "unknown body canonicalisation");
	return 0;
}

/* h=: colon-separated names with FWS around them. */
static int parse_hlist(const struct dkim_tag *t, struct dkim_sig *s, struct err *e)
{
	size_t p = 0, start, end;

	s->nh = 0;
	while (p <= t->vlen) {
		while (p < t->vlen && isspace((unsigned char)t->val[p]))
			p++;
		start = p;
		while (p < t->vlen && t->val[p] != ':' && !isspace((unsigned char)t->val[p]))
			p++;
		end = p;
		while (p < t->vlen && isspace((unsigned char)t->val[p]))
			p++;
		if (end == start || (p < t->vlen && t->val[p] != ':'))
			return err_set(e, ERR_INPUT, "dkim_syntax", "h= has an empty or bad name");
		if (s->nh == DKIM_MAX_HNAMES || end - start >= DKIM_HNAME_MAX)
			return err_set(e, ERR_INPUT, "dkim_syntax", "h= is too long");
		memcpy(s->h[s->nh], t->val + start, end - start);
		s->h[s->nh][end - start] = '\0';
		s->nh++;
		p++; /* the ':' or past the end */
	}
	return 0;
}

static const struct dkim_tag *need(const struct dkim_taglist *tl, const char *name, struct err *e)
{
	const struct dkim_tag *t = dkim_tags_get(tl, name);

	if (t == NULL)
		err_set(e, ERR_INPUT, "dkim_missing_tag", "required tag %s= is missing", name);
	return t;
}

/* i= must be d= or a subdomain of it (§3.5). */
static int identity_in_domain(const char *i, const char *d)
{
	const char *at = strrchr(i, '@');
	size_t il, dl = strlen(d);

	if (at == NULL)
		return 0;
	at++;
	il = strlen(at);
	if (il == dl)
		return strcasecmp(at, d) == 0;
	return il > dl && at[il - dl - 1] == '.' && strcasecmp(at + il - dl, d) == 0;
}

static int sig_fields(const struct dkim_taglist *tl, struct dkim_sig *s, struct err *e)
{
	const struct dkim_tag *t;
	uint8_t *raw;
	size_t n;

	static const char *const required[] = {"v", "a", "b", "bh", "d", "h", "s"};
	for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++)
		if (need(tl, required[k], e) == NULL)
			return -1;
	if (!tag_eq(dkim_tags_get(tl, "v"), "1"))
		return err_set(e, ERR_INPUT, "dkim_bad_version", "v= must be 1");
	t = dkim_tags_get(tl, "a");
	if (tag_eq(t, "rsa-sha256"))
		s->alg = DKIM_RSA_SHA256;
	else if (tag_eq(t, "ed25519-sha256"))
		s->alg = DKIM_ED25519_SHA256;
	else
		return err_set(e, ERR_INPUT, "dkim_bad_algorithm", "unsupported algorithm a=%.*s",
		               (int)(t->vlen > 40 ? 40 : t->vlen), t->val);
	if ((t = dkim_tags_get(tl, "c")) != NULL && parse_canon(t, s, e) < 0)
		return -1;
	if (copy_plain(dkim_tags_get(tl, "d"), s->d, sizeof(s->d), e) < 0 ||
	    copy_plain(dkim_tags_get(tl, "s"), s->s, sizeof(s->s), e) < 0 ||
	    parse_hlist(dkim_tags_get(tl, "h"), s, e) < 0)
		return -1;
	if ((t = dkim_tags_get(tl, "q")) != NULL && !tag_eq(t, "dns/txt"))
		return err_set(e, ERR_INPUT, "dkim_bad_query", "unsupported query method q=");
	if ((t = dkim_tags_get(tl, "i")) != NULL) {
		if (copy_identity(t, s->i, sizeof(s->i), e) < 0)
			return -1;
		if (!identity_in_domain(s->i, s->d))
			return err_set(e, ERR_INPUT, "dkim_bad_identity", "i= is not within d=%s",
			               s->d);
	} else {
		snprintf(s->i, sizeof(s->i), "@%s", s->d);
	}
	if ((t = dkim_tags_get(tl, "l")) != NULL && parse_number(t, &s->l, e) < 0)
		return -1;
	if ((t = dkim_tags_get(tl, "t")) != NULL && parse_number(t, &s->t, e) < 0)
		return -1;
	if ((t = dkim_tags_get(tl, "x")) != NULL && parse_number(t, &s->x, e) < 0)
		return -1;
	if (s->x >= 0 && s->t >= 0 && s->x < s->t)
		return err_set(e, ERR_INPUT, "dkim_syntax", "x= is before t=");
	if ((raw = decode_b64(dkim_tags_get(tl, "bh"), &n, e)) == NULL)
		return -1;
	if (n != sizeof(s->bh)) {
		free(raw);
		return err_set(e, ERR_INPUT, "dkim_bad_base64", "bh= is not a SHA-256 hash");
	}
	memcpy(s->bh, raw, n);
	free(raw);
	if ((raw = decode_b64(dkim_tags_get(tl, "b"), &n, e)) == NULL)
		return -1;
	if (n == 0 || n > sizeof(s->b)) {
		free(raw);
		return err_set(e, ERR_INPUT, "dkim_bad_base64", "b= is empty or too long");
	}
	memcpy(s->b, raw, n);
	s->blen = n;
	free(raw);
	return 0;
}

int dkim_sig_parse(const char *value, size_t len, time_t now, struct dkim_sig *out, struct err *e)
{
	struct dkim_taglist tl;

	if (dkim_tags_parse(value, len, &tl, e) < 0) {
		memset(out, 0, sizeof(*out));
		out->l = out->t = out->x = -1;
		return -1;
	}
	return dkim_sig_from_tags(&tl, now, out, e);
}

int dkim_sig_from_tags(const struct dkim_taglist *tl, time_t now, struct dkim_sig *out,
                       struct err *e)
{
	memset(out, 0, sizeof(*out));
	out->l = out->t = out->x = -1;
	if (sig_fields(tl, out, e) < 0)
		return -1;
	if (now > 0 && out->x >= 0 && out->x < (long long)now)
		return err_set(e, ERR_UNPROC, "dkim_expired", "the signature expired (x=%lld)",
		               out->x);
	if (now > 0 && out->t > (long long)now + DKIM_FUTURE_SKEW)
		return err_set(e, ERR_UNPROC, "dkim_future",
		               "the signature is dated in the future (t=%lld)", out->t);
	return 0;
}

/* ---- key records ---- */

static int list_has(const struct dkim_tag *t, const char *item)
{
	size_t p = 0, n = strlen(item), s;

	while (p < t->vlen) {
		while (p < t->vlen && (isspace((unsigned char)t->val[p]) || t->val[p] == ':'))
			p++;
		s = p;
		while (p < t->vlen && t->val[p] != ':' && !isspace((unsigned char)t->val[p]))
			p++;
		if (p - s == n && strncasecmp(t->val + s, item, n) == 0)
			return 1;
	}
	return 0;
}

static EVP_PKEY *rsa_from_der(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);

	if (k == NULL) { /* some publish the bare PKCS#1 RSAPublicKey */
		p = der;
		k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
	}
	if (k != NULL && EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	return k;
}

static int key_material(const struct dkim_tag *p, struct dkim_key *out, struct err *e)
{
	uint8_t *raw;
	size_t n;

	if ((raw = decode_b64(p, &n, e)) == NULL)
		return -1;
	if (out->alg == DKIM_ED25519_SHA256)
		out->pkey =
		    n == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, n) : NULL;
	else
		out->pkey = rsa_from_der(raw, n);
	free(raw);
	if (out->pkey == NULL)
		return err_set(e, ERR_INPUT, "dkim_bad_key", "p= is not a valid public key");
	if (out->alg == DKIM_RSA_SHA256 && EVP_PKEY_get_bits(out->pkey) < 1024)
		return err_set(e, ERR_UNPROC, "dkim_weak_key",
		               "the RSA key has fewer than 1024 bits");
	return 0;
}

int dkim_key_parse(const char *text, size_t len, struct dkim_key *out, struct err *e)
{
	struct dkim_taglist tl;
	const struct dkim_tag *t;

	memset(out, 0, sizeof(*out));
	if (dkim_tags_parse(text, len, &tl, e) < 0)
		return -1;
	if ((t = dkim_tags_get(&tl, "v")) != NULL && (t != &tl.tags[0] || !tag_eq(t, "DKIM1")))
		return err_set(e, ERR_INPUT, "dkim_bad_version", "v= must be DKIM1 and come first");
	if ((t = dkim_tags_get(&tl, "h")) != NULL && !list_has(t, "sha256"))
		return err_set(e, ERR_UNPROC, "dkim_bad_algorithm", "the key refuses sha256");
	t = dkim_tags_get(&tl, "k");
	if (t == NULL || tag_eq(t, "rsa"))
		out->alg = DKIM_RSA_SHA256;
	else if (tag_eq(t, "ed25519"))
		out->alg = DKIM_ED25519_SHA256;
	else
		return err_set(e, ERR_INPUT, "dkim_bad_algorithm", "unsupported key type k=");
	if ((t = dkim_tags_get(&tl, "s")) != NULL && !list_has(t, "*") && !list_has(t, "email"))
		return err_set(e, ERR_UNPROC, "dkim_key_service", "the key is not for email");
	if ((t = dkim_tags_get(&tl, "t")) != NULL) {
		out->testing = list_has(t, "y");
		out->strict = list_has(t, "s");
	}
	if ((t = need(&tl, "p", e)) == NULL)
		return -1;
	if (t->vlen == 0)
		return err_set(e, ERR_UNPROC, "dkim_key_revoked", "the key has been revoked");
	if (key_material(t, out, e) < 0) {
		dkim_key_clear(out);
		return -1;
	}
	return 0;
}

void dkim_key_clear(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
}

char *dkim_key_record(EVP_PKEY *key, struct err *e)
{
	unsigned char *der = NULL;
	uint8_t raw[32];
	size_t rawlen = sizeof(raw);
	char *b64 = NULL, *out = NULL;
	int n, ed = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519;

	if (ed) {
		if (EVP_PKEY_get_raw_public_key(key, raw, &rawlen) != 1) {
			err_set_ssl(e, ERR_INTERNAL, "internal", "reading the Ed25519 key");
			return NULL;
		}
		b64 = crypto_b64_encode(raw, rawlen);
	} else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		if ((n = i2d_PUBKEY(key, &der)) <= 0) {
			err_set_ssl(e, ERR_INTERNAL, "internal", "encoding the RSA key");
			return NULL;
		}
		b64 = crypto_b64_encode(der, (size_t)n);
		OPENSSL_free(der);
	} else {
		err_set(e, ERR_INPUT, "dkim_bad_algorithm", "DKIM keys are RSA or Ed25519");
		return NULL;
	}
	if (b64 == NULL || asprintf(&out, "v=DKIM1; k=%s; p=%s", ed ? "ed25519" : "rsa", b64) < 0) {
		out = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	free(b64);
	return out;
}
