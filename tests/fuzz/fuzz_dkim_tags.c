/*
 * fuzz_dkim_tags.c - DKIM tag lists, DKIM-Signature values and key records,
 * the header splitter and canonicalisation, and verification of whatever
 * signatures the input carries (against a fixed Ed25519 key record).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pki/crypto.h"
#include "mail/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char key_rec[] = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

static int lookup(const char *sel, const char *dom, void *ctx, char **rec, struct err *e)
{
	if (strcmp(sel, "temp") == 0)
		return err_set(e, ERR_TEMP, "lookup", "try later");
	*rec = strdup(key_rec);
	return *rec ? 0 : err_set(e, ERR_INTERNAL, "internal", "out of memory");
}

static void check_taglist(const struct dkim_taglist *tl, const char *text, size_t size)
{
	for (int i = 0; i < tl->n; i++) {
		const struct dkim_tag *t = &tl->tags[i];
		if (t->nlen == 0 || t->name < text || t->name + t->nlen > text + size ||
		    t->val < text || t->val + t->vlen > text + size)
			__builtin_trap();
		if (dkim_tags_get(tl, "") != NULL)
			__builtin_trap();
	}
}

/* The body hash streamed while canonicalising (dkim_body_hash, with its 16-octet scans)
 * must be the SHA-256 of the canonical body written out whole (dkim_canon_body), for a
 * body as the message splitter leaves it and for raw octets with bare CRs and LFs. */
static void body_hash_matches(const char *body, size_t len)
{
	for (int k = 0; k < 2; k++) {
		uint8_t streamed[32], whole[32];
		struct err e;
		size_t n;
		int trunc;
		char *c = dkim_canon_body((enum dkim_canon)k, body, len, &n);

		if (c == NULL ||
		    dkim_body_hash((enum dkim_canon)k, body, len, -1, streamed, &trunc, &e) < 0)
			__builtin_trap();
		crypto_sha256(c, n, whole);
		if (memcmp(streamed, whole, 32) != 0)
			__builtin_trap();
		free(c);
	}
}

static void split_and_canon(const char *text, size_t size)
{
	static const char names[3][DKIM_HNAME_MAX] = {"from", "subject", "from"};
	struct dkim_msg m;
	struct err e;
	size_t n, j;
	char *c;

	if (dkim_msg_parse(text, size, &m, &e) < 0) {
		if (e.code[0] == '\0')
			__builtin_trap();
		return;
	}
	for (j = 0; j < m.nhdrs; j++) {
		for (int k = 0; k < 2; k++) {
			c = dkim_canon_header((enum dkim_canon)k, m.hdrs[j].raw, m.hdrs[j].rawlen,
			                      &n);
			if (c == NULL || n < 3 || memcmp(c + n - 2, "\r\n", 2) != 0)
				__builtin_trap();
			free(c);
		}
	}
	for (int k = 0; k < 2; k++) {
		c = dkim_canon_body((enum dkim_canon)k, m.body, m.bodylen, &n);
		/* Never longer than the body plus one CRLF; simple is never empty. */
		if (c == NULL || n > m.bodylen + 2 || (k == DKIM_CANON_SIMPLE && n == 0))
			__builtin_trap();
		free(c);
	}
	body_hash_matches(m.body, m.bodylen);
	c = dkim_header_data(&m, DKIM_CANON_RELAXED, names, 3, "DKIM-Signature: b=", 18, &n, &e);
	free(c);
	dkim_msg_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct dkim_taglist tl;
	struct dkim_sig *sig = malloc(sizeof(*sig));
	struct dkim_key key;
	struct dkim_result *r = NULL;
	struct err e;
	size_t n;

	if (sig == NULL)
		return 0;
	if (dkim_tags_parse(text, size, &tl, &e) == 0)
		check_taglist(&tl, text, size);
	else if (e.kind != ERR_INPUT)
		__builtin_trap();
	if (dkim_sig_parse(text, size, 1700000000, sig, &e) == 0 &&
	    (sig->nh < 1 || sig->blen == 0 || sig->d[0] == '\0' || sig->s[0] == '\0'))
		__builtin_trap();
	if (dkim_key_parse(text, size, &key, &e) == 0) {
		if (key.pkey == NULL)
			__builtin_trap();
		dkim_key_clear(&key);
	}
	split_and_canon(text, size);
	body_hash_matches(text, size);
	if (dkim_verify_all(text, size, lookup, NULL, &r, &n, &e) == 0) {
		for (size_t j = 0; j < n; j++)
			if (r[j].status == DKIM_NONE || r[j].status == DKIM_PASS)
				__builtin_trap(); /* nobody holds the fixed key's private half */
	}
	free(r);
	free(sig);
	return 0;
}
