/*
 * dkim.h - DomainKeys Identified Mail: signing and verifying (RFC 6376),
 * rsa-sha256 and ed25519-sha256 (RFC 8463).
 *
 * Messages are one buffer in wire form.  CRLF line ends are expected; bare LF
 * (and a lone CR) are accepted and normalised to CRLF before anything is
 * hashed, so a message read from a Unix mailbox signs and verifies the same
 * as the one that goes on the wire.  A message without a blank line is all
 * header and has an empty body.
 *
 * Keys are looked up through a callback so that the caller decides where
 * they come from: DNS TXT for a legacy domain, the anchored key server for
 * an anchored one.
 *
 * Errors: malformed input is ERR_INPUT (codes dkim_syntax, dkim_duplicate_tag,
 * dkim_missing_tag, dkim_bad_base64, dkim_bad_algorithm, dkim_bad_header,
 * dkim_bad_identity, ...); well-formed but refused is ERR_UNPROC (dkim_expired,
 * dkim_future, dkim_weak_key, dkim_key_revoked, ...).
 */
#ifndef ANCHOR_DKIM_H
#define ANCHOR_DKIM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/err.h"

#define DKIM_MAX_TAGS 32
#define DKIM_MAX_HNAMES 64 /* names in h= */
#define DKIM_HNAME_MAX 64  /* one header name, with NUL */
#define DKIM_DOMAIN_MAX 256
#define DKIM_SELECTOR_MAX 128
#define DKIM_IDENTITY_MAX 320
#define DKIM_SIG_MAX 1024    /* bytes: RSA up to 8192 bits */
#define DKIM_FUTURE_SKEW 300 /* seconds a t= may lie ahead of our clock */

enum dkim_alg { DKIM_RSA_SHA256 = 0, DKIM_ED25519_SHA256 };
enum dkim_canon { DKIM_CANON_SIMPLE = 0, DKIM_CANON_RELAXED };

/* ---- tag lists (RFC 6376 §3.2) ---- */

/* One tag: name and value point into the parsed text (not NUL-terminated);
 * the value has its surrounding whitespace trimmed but keeps inner FWS. */
struct dkim_tag {
	const char *name;
	size_t nlen;
	const char *val;
	size_t vlen;
};

struct dkim_taglist {
	struct dkim_tag tags[DKIM_MAX_TAGS];
	int n;
};

/* Parse a tag list; duplicate names, empty tag-specs, bad names or bad value
 * characters are ERR_INPUT (dkim_syntax / dkim_duplicate_tag). */
int dkim_tags_parse(const char *text, size_t len, struct dkim_taglist *out, struct err *e);
/* The tag called name, or NULL. */
const struct dkim_tag *dkim_tags_get(const struct dkim_taglist *tl, const char *name);

/* ---- DKIM-Signature and key records ---- */

struct dkim_sig {
	enum dkim_alg alg;
	enum dkim_canon hcanon, bcanon;
	char d[DKIM_DOMAIN_MAX];
	char s[DKIM_SELECTOR_MAX];
	char i[DKIM_IDENTITY_MAX]; /* "@" d when the tag is absent */
	char h[DKIM_MAX_HNAMES][DKIM_HNAME_MAX];
	int nh;
	uint8_t b[DKIM_SIG_MAX];
	size_t blen;
	uint8_t bh[32];
	long long l; /* -1: absent */
	long long t; /* -1: absent */
	long long x; /* -1: absent */
};

/* Parse and check the value of a DKIM-Signature header field (after the
 * colon).  now is used for x= and t=; pass 0 to skip the time checks. */
int dkim_sig_parse(const char *value, size_t len, time_t now, struct dkim_sig *out, struct err *e);
/* The same from a tag list already parsed from that value (a verifier needs the list
 * too: it parses the field once). */
int dkim_sig_from_tags(const struct dkim_taglist *tl, time_t now, struct dkim_sig *out,
                       struct err *e);

struct dkim_key {
	EVP_PKEY *pkey;
	enum dkim_alg alg; /* which a= this key can verify */
	int testing;       /* t=y */
	int strict;        /* t=s: i= must be exactly in d= */
};

/* Parse a key record ("v=DKIM1; k=rsa; p=...").  An empty p= is ERR_UNPROC
 * dkim_key_revoked, an RSA key under 1024 bits ERR_UNPROC dkim_weak_key. */
int dkim_key_parse(const char *text, size_t len, struct dkim_key *out, struct err *e);
void dkim_key_clear(struct dkim_key *k);
/* The key record text for a public key ("v=DKIM1; k=ed25519; p=..."), malloc'd. */
char *dkim_key_record(EVP_PKEY *key, struct err *e);

/* ---- messages ---- */

struct dkim_hdr {
	const char *name; /* points into the message copy */
	size_t nlen;
	const char *raw; /* the whole field, name through the last char, no final CRLF */
	size_t rawlen;
};

struct dkim_msg {
	char *buf; /* the message with CRLF line ends, owned */
	size_t len;
	struct dkim_hdr *hdrs;
	size_t nhdrs;
	const char *body;
	size_t bodylen;
};

/* Split a message into header fields and body.  A header line without a
 * colon, or a continuation line with no field before it, is ERR_INPUT
 * dkim_bad_header. */
int dkim_msg_parse(const char *msg, size_t len, struct dkim_msg *m, struct err *e);
void dkim_msg_free(struct dkim_msg *m);

/* ---- canonicalisation (RFC 6376 §3.4) ---- */

/* Canonical form of one header field, with its CRLF; malloc'd, NUL-terminated. */
char *dkim_canon_header(enum dkim_canon c, const char *raw, size_t rawlen, size_t *outlen);
/* Canonical form of a body (CRLF line ends); malloc'd, NUL-terminated. */
char *dkim_canon_body(enum dkim_canon c, const char *body, size_t len, size_t *outlen);

/* SHA-256 of the canonical body, cut to its first l bytes when l >= 0
 * (*truncated set when that left some out; a body shorter than l is
 * ERR_UNPROC dkim_body_short). */
int dkim_body_hash(enum dkim_canon c, const char *body, size_t len, long long l, uint8_t out[32],
                   int *truncated, struct err *e);

#define DKIM_MAX_HDRS_SIGNED 1000 /* header fields in a message we sign or verify */

/* The data a signature covers (§3.7): the fields named in names, chosen
 * bottom-up, canonicalised, then sigfield (the DKIM-Signature field with an
 * empty b= value) canonicalised without its final CRLF.  malloc'd. */
char *dkim_header_data(const struct dkim_msg *m, enum dkim_canon c,
                       const char (*names)[DKIM_HNAME_MAX], int nnames, const char *sigfield,
                       size_t siglen, size_t *outlen, struct err *e);

/* ---- signing ---- */

struct dkim_sign_opts {
	const char *d; /* signing domain, required */
	const char *s; /* selector, required */
	const char *i; /* agent or user identifier, optional; must be in d */
	/* Colon-separated header names, signed exactly as given; NULL: the
	 * default set, each name as often as it occurs, From once more. */
	const char *headers;
	/* Relaxed unless set: a zeroed struct gives relaxed/relaxed. */
	int simple_header, simple_body;
	time_t now;       /* t=; 0: the current time */
	long long expire; /* x= now + expire when > 0 */
};

/* The DKIM-Signature header field (name, value, folded, no trailing CRLF)
 * for msg, signed with key (RSA >= 1024 bits or Ed25519).  malloc'd. */
char *dkim_sign(const char *msg, size_t len, const struct dkim_sign_opts *o, EVP_PKEY *key,
                struct err *e);

/*
 * Signing in three steps, so that whoever holds the key never sees the
 * message (the relay's signer process): dkim_sign_prepare() does all the
 * work on the message, dkim_sign_data() signs the short header data with the
 * key, dkim_sign_finish() puts the signature into the field.  dkim_sign() is
 * exactly these three in a row.
 */
struct dkim_sign_prep {
	enum dkim_alg alg;
	char *head; /* the field through "b=" (name, value, folded), malloc'd */
	char *data; /* the header data the signature covers (§3.7), malloc'd */
	size_t datalen;
};

/* "rsa-sha256" / "ed25519-sha256", and back (-1 for anything else). */
const char *dkim_alg_name(enum dkim_alg alg);
int dkim_alg_parse(const char *name, enum dkim_alg *out);
/* Which a= a private key signs with: Ed25519, or RSA of 1024 to 8192 bits
 * (ERR_UNPROC dkim_bad_algorithm / dkim_weak_key otherwise). */
int dkim_key_alg(EVP_PKEY *key, enum dkim_alg *alg, struct err *e);
/* Compute the body hash, the unsigned field for alg and the data to sign;
 * fills *out (release it with dkim_sign_prep_clear, also after a failure). */
int dkim_sign_prepare(const char *msg, size_t len, const struct dkim_sign_opts *o,
                      enum dkim_alg alg, struct dkim_sign_prep *out, struct err *e);
/* The signature of data: rsa-sha256 is RSASSA-PKCS1-v1_5 over SHA-256 of
 * data, ed25519-sha256 is Ed25519 over SHA-256(data) (RFC 8463 §3).  sig
 * holds DKIM_SIG_MAX bytes; *siglen gets the length. */
int dkim_sign_data(EVP_PKEY *key, const void *data, size_t len, uint8_t *sig, size_t *siglen,
                   struct err *e);
/* The complete field: p->head followed by the signature in base64, folded.
 * malloc'd. */
char *dkim_sign_finish(const struct dkim_sign_prep *p, const uint8_t *sig, size_t siglen,
                       struct err *e);
void dkim_sign_prep_clear(struct dkim_sign_prep *p); /* accepts NULL */

/* ---- verifying ---- */

/* Fetch the key record text for selector._domainkey.domain into *record
 * (malloc'd).  Return -1 with e: ERR_NOTFOUND when there is no record
 * (a permanent error), anything else is taken as temporary. */
typedef int (*dkim_key_lookup_fn)(const char *selector, const char *domain, void *ctx,
                                  char **record, struct err *e);

/* The verdicts of RFC 8601 §2.7.1. */
enum dkim_status {
	DKIM_NONE = 0,
	DKIM_PASS,
	DKIM_FAIL,
	DKIM_NEUTRAL,
	DKIM_TEMPERROR,
	DKIM_PERMERROR,
};

struct dkim_result {
	enum dkim_status status;
	char d[DKIM_DOMAIN_MAX];
	char i[DKIM_IDENTITY_MAX];
	char s[DKIM_SELECTOR_MAX];
	char a[24];
	char b[16]; /* the first characters of b=, for header.b (RFC 6008) */
	char code[ERR_CODE_MAX];
	char reason[ERR_MSG_MAX];
	int testing;        /* the key says t=y */
	int body_truncated; /* l= left part of the body unsigned */
	char sig_id[65];    /* when it passes: hex SHA-256 of the signature (b=), which names
	                       this one signature however often it is quoted */
};

const char *dkim_status_name(enum dkim_status s);

/* Verify the sig_index-th DKIM-Signature field (0 = the topmost).  Returns 0
 * when it passes; -1 otherwise, with out->status telling fail / permerror /
 * temperror and e the reason (ERR_NOTFOUND dkim_no_signature when there is
 * no such field; out->status is then DKIM_NONE). */
int dkim_verify_sig(const char *msg, size_t len, size_t sig_index, dkim_key_lookup_fn lookup,
                    void *ctx, struct dkim_result *out, struct err *e);

/* The same; headers_only: bh= is not compared (see dkim_verify_headers). */
int dkim_verify_sig_opts(const char *msg, size_t len, size_t sig_index, int headers_only,
                         dkim_key_lookup_fn lookup, void *ctx, struct dkim_result *out,
                         struct err *e);

/* Verify every DKIM-Signature field, top to bottom: *out (malloc'd, *n
 * entries, NULL when there are none) gets one result each.  Returns 0 when
 * the message could be read at all, whatever the verdicts. */
int dkim_verify_all(const char *msg, size_t len, dkim_key_lookup_fn lookup, void *ctx,
                    struct dkim_result **out, size_t *n, struct err *e);
/* The same for a message's header section alone (its body may be missing: the body hash
 * bh= is not compared, everything the signature covers is).  A pass proves that d= signed
 * these header fields, for whatever body: evidence about the signer, not a delivery check. */
int dkim_verify_headers(const char *msg, size_t len, dkim_key_lookup_fn lookup, void *ctx,
                        struct dkim_result **out, size_t *n, struct err *e);

#endif
