/* test_dkim.c - DKIM (RFC 6376, RFC 8463): tag lists, canonicalisation
 * (the §3.4.5 example), sign-then-verify for both algorithms and every
 * canonicalisation pair, tampering, oversigning, malformed signatures.
 *
 * Two extra modes serve tests/integration/test_dkim_interop.py:
 *   DKIM_SIGN_IN=FILE    sign FILE with the PEM key in DKIM_KEY (DKIM_D,
 *                        DKIM_S, DKIM_CANON "relaxed/simple" etc.) and write
 *                        the field, CRLF, then the message to DKIM_OUT
 *   DKIM_VERIFY_IN=FILE  verify every signature of FILE with the key record
 *                        in DKIM_KEYREC, one line "status code d s a" each,
 *                        to DKIM_OUT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pki/crypto.h"
#include "mail/dkim.h"

static EVP_PKEY *rsa_key, *ed_key;
static char *rsa_rec, *ed_rec;

static const char base_msg[] = "From: Alice <alice@example.org>\r\n"
                               "To: bob@example.net\r\n"
                               "Subject: Lunch  on\r\n"
                               "\tThursday\r\n"
                               "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
                               "Message-ID: <1@example.org>\r\n"
                               "\r\n"
                               "Hello Bob,  \r\n"
                               "\r\n"
                               "see you  at noon.\r\n"
                               "\r\n"
                               "\r\n";

/* ---- key lookup for the tests ---- */

struct keys {
	const char *rec; /* returned for any selector and domain */
	int fail_kind;   /* ERR_NOTFOUND / ERR_TEMP: the lookup fails */
	char last_sel[64], last_dom[64];
};

static int lookup(const char *sel, const char *dom, void *ctx, char **rec, struct err *e)
{
	struct keys *k = ctx;

	snprintf(k->last_sel, sizeof(k->last_sel), "%s", sel);
	snprintf(k->last_dom, sizeof(k->last_dom), "%s", dom);
	if (k->fail_kind != ERR_NONE)
		return err_set(e, k->fail_kind, "lookup", "lookup failed");
	*rec = strdup(k->rec);
	return 0;
}

static int setup(void **state)
{
	struct err e;

	rsa_key = crypto_key_generate(KEY_RSA, 2048, &e);
	ed_key = crypto_key_generate(KEY_ED25519, 0, &e);
	if (rsa_key == NULL || ed_key == NULL)
		return -1;
	rsa_rec = dkim_key_record(rsa_key, &e);
	ed_rec = dkim_key_record(ed_key, &e);
	return rsa_rec && ed_rec ? 0 : -1;
}

static int teardown(void **state)
{
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ed_key);
	free(rsa_rec);
	free(ed_rec);
	return 0;
}

/* The signature field, CRLF, then msg: malloc'd. */
static char *signed_msg(const char *msg, const struct dkim_sign_opts *o, EVP_PKEY *key)
{
	struct err e;
	char *field = dkim_sign(msg, strlen(msg), o, key, &e), *out = NULL;

	if (field == NULL)
		fail_msg("dkim_sign: %s: %s", e.code, e.msg);
	assert_true(asprintf(&out, "%s\r\n%s", field, msg) > 0);
	free(field);
	return out;
}

static enum dkim_status verify0(const char *msg, const char *rec, struct dkim_result *r)
{
	struct keys k = {.rec = rec};
	struct err e;
	int rc = dkim_verify_sig(msg, strlen(msg), 0, lookup, &k, r, &e);

	assert_int_equal(rc == 0, r->status == DKIM_PASS);
	return r->status;
}

/* ---- tag lists ---- */

static void test_tags_parse(void **state)
{
	struct dkim_taglist tl;
	struct err e;
	const struct dkim_tag *t;
	const char *txt = " v=1;\r\n\ta = rsa-sha256 ; b=ab\r\n cd ==;z=;";

	assert_int_equal(dkim_tags_parse(txt, strlen(txt), &tl, &e), 0);
	assert_int_equal(tl.n, 4);
	t = dkim_tags_get(&tl, "a");
	assert_non_null(t);
	assert_int_equal(t->vlen, 10);
	assert_memory_equal(t->val, "rsa-sha256", 10);
	t = dkim_tags_get(&tl, "b");
	assert_int_equal(t->vlen, strlen("ab\r\n cd =="));
	t = dkim_tags_get(&tl, "z");
	assert_int_equal(t->vlen, 0);
	assert_null(dkim_tags_get(&tl, "c"));
}

static void test_tags_malformed(void **state)
{
	static const struct {
		const char *text, *code;
	} cases[] = {
	    {"", "dkim_syntax"},
	    {"   ", "dkim_syntax"},
	    {"a=1;;b=2", "dkim_syntax"},
	    {";a=1", "dkim_syntax"},
	    {"a", "dkim_syntax"},
	    {"1a=2", "dkim_syntax"},
	    {"a=1; a=2", "dkim_duplicate_tag"},
	    {"a=x\x01y", "dkim_syntax"},
	    {"a=x\r\ny", "dkim_syntax"}, /* CRLF not followed by WSP */
	    {"a b=1", "dkim_syntax"},
	};
	struct dkim_taglist tl;
	struct err e;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err_clear(&e);
		if (dkim_tags_parse(cases[i].text, strlen(cases[i].text), &tl, &e) == 0)
			fail_msg("case %zu accepted: %s", i, cases[i].text);
		assert_int_equal(e.kind, ERR_INPUT);
		assert_string_equal(e.code, cases[i].code);
	}
}

#define BH "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
static void test_sig_malformed(void **state)
{
	static const struct {
		const char *text, *code;
		enum err_kind kind;
	} cases[] = {
	    {"a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from; s=s", "dkim_missing_tag", ERR_INPUT},
	    {"v=1; b=AAAA; " BH "; d=x.org; h=from; s=s", "dkim_missing_tag", ERR_INPUT},
	    {"v=1; a=rsa-sha256; " BH "; d=x.org; h=from; s=s", "dkim_missing_tag", ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; d=x.org; h=from; s=s", "dkim_missing_tag", ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; h=from; s=s", "dkim_missing_tag", ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; s=s", "dkim_missing_tag", ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from", "dkim_missing_tag", ERR_INPUT},
	    {"v=2; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from; s=s", "dkim_bad_version",
	     ERR_INPUT},
	    {"v=1; a=rsa-sha1; b=AAAA; " BH "; d=x.org; h=from; s=s", "dkim_bad_algorithm",
	     ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AA!A; " BH "; d=x.org; h=from; s=s", "dkim_bad_base64",
	     ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; bh=AAAA; d=x.org; h=from; s=s", "dkim_bad_base64",
	     ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from; s=s; i=a@y.org",
	     "dkim_bad_identity", ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from; s=s; i=a@evilx.org",
	     "dkim_bad_identity", ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from; s=s; c=fancy/simple",
	     "dkim_bad_canon", ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from::to; s=s", "dkim_syntax",
	     ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from; s=s; l=12a", "dkim_syntax",
	     ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from; s=s; q=http", "dkim_bad_query",
	     ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from; s=s; t=100; x=50", "dkim_syntax",
	     ERR_INPUT},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from; s=s; t=100; x=200",
	     "dkim_expired", ERR_UNPROC},
	    {"v=1; a=rsa-sha256; b=AAAA; " BH "; d=x.org; h=from; s=s; t=99999999999",
	     "dkim_future", ERR_UNPROC},
	};
	struct dkim_sig s;
	struct err e;
	size_t i;
	const char *ok = "v=1; a=ed25519-sha256; c=simple; b=AAAA; " BH
	                 "; d=x.org; h=From : to; s=s; i=a@sub.x.org; l=5";

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err_clear(&e);
		if (dkim_sig_parse(cases[i].text, strlen(cases[i].text), time(NULL), &s, &e) == 0)
			fail_msg("case %zu accepted: %s", i, cases[i].text);
		if (strcmp(e.code, cases[i].code) != 0 || e.kind != cases[i].kind)
			fail_msg("case %zu: got %s (%s), want %s", i, e.code, e.msg, cases[i].code);
	}
	assert_int_equal(dkim_sig_parse(ok, strlen(ok), time(NULL), &s, &e), 0);
	assert_int_equal(s.alg, DKIM_ED25519_SHA256);
	assert_int_equal(s.hcanon, DKIM_CANON_SIMPLE);
	assert_int_equal(s.bcanon, DKIM_CANON_SIMPLE);
	assert_int_equal(s.nh, 2);
	assert_string_equal(s.h[0], "From");
	assert_string_equal(s.h[1], "to");
	assert_string_equal(s.i, "a@sub.x.org");
	assert_int_equal(s.l, 5);
	assert_int_equal(s.blen, 3);
}

static void test_key_records(void **state)
{
	struct dkim_key k;
	struct err e;
	char *rec;

	assert_int_equal(dkim_key_parse(ed_rec, strlen(ed_rec), &k, &e), 0);
	assert_int_equal(k.alg, DKIM_ED25519_SHA256);
	dkim_key_clear(&k);
	assert_int_equal(dkim_key_parse(rsa_rec, strlen(rsa_rec), &k, &e), 0);
	assert_int_equal(k.alg, DKIM_RSA_SHA256);
	dkim_key_clear(&k);
	/* k= defaults to rsa; t=y and t=s are read. */
	assert_true(asprintf(&rec, "p=%s; t=y:s", strstr(rsa_rec, "p=") + 2) > 0);
	assert_int_equal(dkim_key_parse(rec, strlen(rec), &k, &e), 0);
	assert_true(k.testing && k.strict);
	dkim_key_clear(&k);
	free(rec);

	static const struct {
		const char *text, *code;
	} bad[] = {
	    {"v=DKIM1; k=rsa; p=", "dkim_key_revoked"},
	    {"v=DKIM1; k=dsa; p=AAAA", "dkim_bad_algorithm"},
	    {"v=DKIM2; p=AAAA", "dkim_bad_version"},
	    {"k=rsa; v=DKIM1; p=AAAA", "dkim_bad_version"},
	    {"v=DKIM1; k=rsa", "dkim_missing_tag"},
	    {"v=DKIM1; k=ed25519; p=AAAA", "dkim_bad_key"},
	    {"v=DKIM1; k=rsa; p=%%%%", "dkim_bad_base64"},
	    {"v=DKIM1; h=sha1; p=AAAA", "dkim_bad_algorithm"},
	    {"v=DKIM1; s=tlsrpt; p=AAAA", "dkim_key_service"},
	    {"v=DKIM1; p=AAAA; p=AAAA", "dkim_duplicate_tag"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (dkim_key_parse(bad[i].text, strlen(bad[i].text), &k, &e) == 0)
			fail_msg("key case %zu accepted", i);
		assert_null(k.pkey);
		if (strcmp(e.code, bad[i].code) != 0)
			fail_msg("key case %zu: got %s, want %s", i, e.code, bad[i].code);
	}
}

/* ---- canonicalisation ---- */

static char *canon_headers(const struct dkim_msg *m, enum dkim_canon c)
{
	char *all = calloc(1, 1024), *one;
	size_t j, n;

	for (j = 0; j < m->nhdrs; j++) {
		one = dkim_canon_header(c, m->hdrs[j].raw, m->hdrs[j].rawlen, &n);
		strncat(all, one, n);
		free(one);
	}
	return all;
}

/* RFC 6376 §3.4.5. */
static void test_canon_rfc_example(void **state)
{
	static const char msg[] = "A: X\r\n"
	                          "B : Y\t\r\n"
	                          "\tZ  \r\n"
	                          "\r\n"
	                          " C \r\n"
	                          "D \t E\r\n"
	                          "\r\n"
	                          "\r\n";
	struct dkim_msg m;
	struct err e;
	char *s;
	size_t n;

	assert_int_equal(dkim_msg_parse(msg, strlen(msg), &m, &e), 0);
	assert_int_equal(m.nhdrs, 2);
	s = canon_headers(&m, DKIM_CANON_RELAXED);
	assert_string_equal(s, "a:X\r\nb:Y Z\r\n");
	free(s);
	s = canon_headers(&m, DKIM_CANON_SIMPLE);
	assert_string_equal(s, "A: X\r\nB : Y\t\r\n\tZ  \r\n");
	free(s);
	s = dkim_canon_body(DKIM_CANON_RELAXED, m.body, m.bodylen, &n);
	assert_string_equal(s, " C\r\nD E\r\n");
	free(s);
	s = dkim_canon_body(DKIM_CANON_SIMPLE, m.body, m.bodylen, &n);
	assert_string_equal(s, " C \r\nD \t E\r\n");
	free(s);
	dkim_msg_free(&m);
	/* Colons inside the value keep their spaces; only the name's colon
	 * loses the whitespace around it. */
	s = dkim_canon_header(DKIM_CANON_RELAXED, "H \t: \r\n from : to:\tx  ", 22, &n);
	assert_string_equal(s, "h:from : to: x\r\n");
	free(s);
}

static void test_canon_body_edges(void **state)
{
	static const struct {
		enum dkim_canon c;
		const char *in, *out;
	} cases[] = {
	    {DKIM_CANON_SIMPLE, "", "\r\n"},
	    {DKIM_CANON_RELAXED, "", ""},
	    {DKIM_CANON_SIMPLE, "\r\n\r\n", "\r\n"},
	    {DKIM_CANON_RELAXED, "\r\n \t\r\n", ""},
	    {DKIM_CANON_SIMPLE, "x", "x\r\n"},
	    {DKIM_CANON_RELAXED, "x  ", "x\r\n"},
	    {DKIM_CANON_SIMPLE, " \r\n", " \r\n"},
	    {DKIM_CANON_RELAXED, "a\r\n\r\nb\r\n\r\n", "a\r\n\r\nb\r\n"},
	    {DKIM_CANON_SIMPLE, "a\r\n\r\nb \r\n\r\n\r\n", "a\r\n\r\nb \r\n"},
	};
	char *s;
	size_t n, i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = dkim_canon_body(cases[i].c, cases[i].in, strlen(cases[i].in), &n);
		if (strcmp(s, cases[i].out) != 0 || n != strlen(cases[i].out))
			fail_msg("body case %zu: got \"%s\"", i, s);
		free(s);
	}
}

static void test_msg_parse(void **state)
{
	static const char lf[] = "From: a@x.org\nSubject: one\n two\n\nbody\n";
	struct dkim_msg m;
	struct err e;

	assert_int_equal(dkim_msg_parse(lf, strlen(lf), &m, &e), 0);
	assert_int_equal(m.nhdrs, 2);
	assert_int_equal(m.hdrs[1].rawlen, strlen("Subject: one\r\n two"));
	assert_memory_equal(m.hdrs[1].raw, "Subject: one\r\n two", m.hdrs[1].rawlen);
	assert_int_equal(m.bodylen, 6);
	assert_memory_equal(m.body, "body\r\n", 6);
	dkim_msg_free(&m);
	/* Headers only, no final line end. */
	assert_int_equal(dkim_msg_parse("From: a", 7, &m, &e), 0);
	assert_int_equal(m.nhdrs, 1);
	assert_int_equal(m.bodylen, 0);
	dkim_msg_free(&m);
	assert_int_equal(dkim_msg_parse(" From: a\r\n\r\n", 12, &m, &e), -1);
	assert_string_equal(e.code, "dkim_bad_header");
	assert_int_equal(dkim_msg_parse("From a\r\n\r\nx", 11, &m, &e), -1);
	assert_string_equal(e.code, "dkim_bad_header");
}

/* Every line end as CRLF, octet by octet: what dkim_msg_parse must make of a body. */
static size_t crlf_reference(const char *in, size_t len, char *out)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n') {
			out[n++] = in[i++];
			out[n++] = in[i];
		} else if (in[i] == '\r' || in[i] == '\n') {
			out[n++] = '\r';
			out[n++] = '\n';
		} else {
			out[n++] = in[i];
		}
	}
	return n;
}

/* A bare LF, a lone CR, or CR CR LF at every offset of a body, around the 16-octet
 * steps of the check for an all-CRLF message, beside CRLF line ends: each becomes CRLF. */
static void test_line_ends_at_every_offset(void **state)
{
	static const char head[] = "From: a@x.org\r\n\r\n";
	static const char *const ends[] = {"\n", "\r", "\r\r\n", "\n\n", "\r\n"};
	char msg[128], want[256];

	(void)state;
	for (size_t k = 0; k < sizeof(ends) / sizeof(ends[0]); k++)
		for (size_t at = 0; at < 48; at++) {
			size_t hl = strlen(head), len, wlen;
			struct dkim_msg m;
			struct err e;

			memcpy(msg, head, hl);
			memset(msg + hl, 'b', 52);
			memcpy(msg + hl + 20, "\r\n", 2);
			memcpy(msg + hl + at, ends[k], strlen(ends[k]));
			len = hl + 52;
			wlen = crlf_reference(msg + hl, len - hl, want);
			assert_int_equal(dkim_msg_parse(msg, len, &m, &e), 0);
			if (m.bodylen != wlen || memcmp(m.body, want, wlen) != 0)
				fail_msg("line end %zu at %zu: body not normalised", k, at);
			dkim_msg_free(&m);
		}
}

static void test_body_length_tag(void **state)
{
	uint8_t h1[32], h2[32];
	struct err e;
	int trunc;

	assert_int_equal(
	    dkim_body_hash(DKIM_CANON_SIMPLE, "abc\r\nmore\r\n", 11, 5, h1, &trunc, &e), 0);
	assert_true(trunc);
	crypto_sha256("abc\r\n", 5, h2);
	assert_memory_equal(h1, h2, 32);
	assert_int_equal(dkim_body_hash(DKIM_CANON_SIMPLE, "abc\r\n", 5, 5, h1, &trunc, &e), 0);
	assert_false(trunc);
	assert_int_equal(dkim_body_hash(DKIM_CANON_SIMPLE, "abc\r\n", 5, 6, h1, &trunc, &e), -1);
	assert_string_equal(e.code, "dkim_body_short");
}

/* The body hash canonicalises as it hashes, without a copy of the body: it must hash
 * exactly what dkim_canon_body writes out, whole and cut at l=, for bodies mixing lines
 * that go in as they stand with ones relaxed changes (tabs, WSP runs, trailing WSP),
 * empty and WSP-only lines inside and at the end, lone CR and LF octets inside a line,
 * lines longer than any internal buffer, and no final CRLF. */
static void test_body_hash_matches_canon(void **state)
{
	static const char *const pieces[] = {"plain words here\r\n",
	                                     "\r\n",
	                                     " \t \r\n",
	                                     "two  spaces\r\n",
	                                     "tab\there\r\n",
	                                     "trailing \r\n",
	                                     " leading\r\n",
	                                     "lone\rcr\r\n",
	                                     "bare\nlf\r\n",
	                                     "x",
	                                     "\t\r\n"};
	static char body[40 * 2500];
	unsigned seed = 12345;

	for (int round = 0; round < 300; round++) {
		size_t n = 0, clen;
		int parts = round % 40;

		for (int k = 0; k < parts; k++) {
			const char *pc;

			seed = seed * 1103515245u + 12345u;
			if ((seed >> 16) % 23 == 0) { /* a line longer than the hash's buffer */
				memset(body + n, (seed >> 8) % 2 ? 'a' : ' ', 2500);
				n += 2500;
				continue;
			}
			pc = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
			memcpy(body + n, pc, strlen(pc));
			n += strlen(pc);
		}
		for (int c = 0; c < 2; c++) {
			enum dkim_canon canon = c ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
			char *want = dkim_canon_body(canon, body, n, &clen);
			uint8_t h1[32], h2[32];
			struct err e;
			int trunc;

			assert_non_null(want);
			assert_int_equal(dkim_body_hash(canon, body, n, -1, h1, &trunc, &e), 0);
			crypto_sha256(want, clen, h2);
			if (memcmp(h1, h2, 32) != 0)
				fail_msg("round %d canon %d: the hash is not of the canonical body",
				         round, c);
			assert_false(trunc);
			if (clen > 0) { /* l= somewhere inside */
				size_t l = (seed >> 4) % clen;

				assert_int_equal(
				    dkim_body_hash(canon, body, n, (long long)l, h1, &trunc, &e),
				    0);
				crypto_sha256(want, l, h2);
				assert_memory_equal(h1, h2, 32);
				assert_true(trunc);
			}
			free(want);
		}
	}
}

/* Lines that relaxed canonicalisation must change (a tab, two spaces, a trailing space),
 * or a lone CR within a line, at every offset, around the 8- and 16-octet steps of the one-pass
 * check, beside ones it keeps. */
static void test_relaxed_lines_at_every_offset(void **state)
{
	static const char *const marks[] = {"  ", "\t", " \t", "\t ", " ", "   ", "\r", "\r  "};
	char body[64];

	(void)state;
	for (size_t m = 0; m < sizeof(marks) / sizeof(marks[0]); m++)
		for (size_t len = 1; len <= 52; len++)
			for (size_t at = 0; at + strlen(marks[m]) <= len; at++) {
				uint8_t h1[32], h2[32];
				size_t clen;
				struct err e;
				int trunc;
				char *want;

				memset(body, 'a', len);
				memcpy(body + at, marks[m], strlen(marks[m]));
				memcpy(body + len, "\r\nz\r\n", 6);
				want = dkim_canon_body(DKIM_CANON_RELAXED, body, len + 6, &clen);
				assert_non_null(want);
				assert_int_equal(dkim_body_hash(DKIM_CANON_RELAXED, body, len + 6,
				                                -1, h1, &trunc, &e),
				                 0);
				crypto_sha256(want, clen, h2);
				if (memcmp(h1, h2, 32) != 0)
					fail_msg("mark %zu, line of %zu, at %zu: wrong hash", m,
					         len, at);
				free(want);
			}
}

/* ---- sign and verify ---- */

static void round_trip(EVP_PKEY *key, const char *rec, const char *alg)
{
	int sh, sb;

	for (sh = 0; sh < 2; sh++)
		for (sb = 0; sb < 2; sb++) {
			struct dkim_sign_opts o = {
			    .d = "example.org", .s = "sel", .simple_header = sh, .simple_body = sb};
			struct dkim_result r;
			char *m = signed_msg(base_msg, &o, key);
			if (verify0(m, rec, &r) != DKIM_PASS)
				fail_msg("%s %d/%d: %s: %s", alg, sh, sb, r.code, r.reason);
			assert_string_equal(r.a, alg);
			assert_string_equal(r.d, "example.org");
			assert_string_equal(r.s, "sel");
			assert_string_equal(r.i, "@example.org");
			assert_int_equal(strlen(r.b), 12);
			free(m);
		}
}

static void test_round_trip_rsa(void **state)
{
	round_trip(rsa_key, rsa_rec, "rsa-sha256");
}

static void test_round_trip_ed25519(void **state)
{
	round_trip(ed_key, ed_rec, "ed25519-sha256");
}

/* Replace the first occurrence of from with to; malloc'd. */
static char *replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	char *out = NULL;

	assert_non_null(p);
	assert_true(asprintf(&out, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from)) > 0);
	return out;
}

static void test_tampering(void **state)
{
	struct dkim_sign_opts o = {.d = "example.org", .s = "sel", .i = "alice@example.org"};
	struct dkim_result r;
	char *m = signed_msg(base_msg, &o, ed_key), *t;

	assert_int_equal(verify0(m, ed_rec, &r), DKIM_PASS);
	assert_string_equal(r.i, "alice@example.org");

	t = replace(m, "noon", "nine");
	assert_int_equal(verify0(t, ed_rec, &r), DKIM_FAIL);
	assert_string_equal(r.code, "dkim_body_hash");
	free(t);

	t = replace(m, "Subject: Lunch", "Subject: Dinner");
	assert_int_equal(verify0(t, ed_rec, &r), DKIM_FAIL);
	assert_string_equal(r.code, "dkim_bad_signature");
	free(t);

	/* Relaxed: whitespace changes in body and signed headers are fine. */
	t = replace(m, "Lunch  on", "Lunch on");
	assert_int_equal(verify0(t, ed_rec, &r), DKIM_PASS);
	free(t);

	/* Unsigned fields may be added or changed. */
	t = replace(m, "To: bob", "X-Spam: no\r\nReceived: by mx\r\nTo: bob");
	assert_int_equal(verify0(t, ed_rec, &r), DKIM_PASS);
	free(t);

	/* A second From is caught by the oversigned name. */
	t = replace(m, "To: bob", "From: mallory@evil.example\r\nTo: bob");
	assert_int_equal(verify0(t, ed_rec, &r), DKIM_FAIL);
	free(t);
	t = replace(m, "\r\n\r\nHello", "\r\nFrom: mallory@evil.example\r\n\r\nHello");
	assert_int_equal(verify0(t, ed_rec, &r), DKIM_FAIL);
	free(t);

	/* Only From is oversigned by default: a Cc absent at signing time was not
	 * listed in h=, so adding one leaves the signature intact... */
	t = replace(m, "To: bob", "Cc: eve@example.net\r\nTo: bob");
	assert_int_equal(verify0(t, ed_rec, &r), DKIM_PASS);
	free(t);
	/* ...and h= picks fields bottom-up: a To added above the signed one is
	 * ignored, one added below it takes its place and breaks the signature. */
	t = replace(m, "To: bob", "To: eve@example.net\r\nTo: bob");
	assert_int_equal(verify0(t, ed_rec, &r), DKIM_PASS);
	free(t);
	t = replace(m, "To: bob@example.net\r\n", "To: bob@example.net\r\nTo: eve@example.net\r\n");
	assert_int_equal(verify0(t, ed_rec, &r), DKIM_FAIL);
	free(t);

	/* The wrong key: signature mismatch. */
	assert_int_equal(verify0(m, rsa_rec, &r), DKIM_PERMERROR);
	assert_string_equal(r.code, "dkim_key_mismatch");
	free(m);
}

static void test_simple_is_strict(void **state)
{
	struct dkim_sign_opts o = {
	    .d = "example.org", .s = "sel", .simple_header = 1, .simple_body = 1};
	struct dkim_result r;
	char *m = signed_msg(base_msg, &o, rsa_key), *t;

	t = replace(m, "Lunch  on", "Lunch on");
	assert_int_equal(verify0(t, rsa_rec, &r), DKIM_FAIL);
	free(t);
	t = replace(m, "Bob,  ", "Bob,");
	assert_int_equal(verify0(t, rsa_rec, &r), DKIM_FAIL);
	assert_string_equal(r.code, "dkim_body_hash");
	free(t);
	/* Trailing empty lines are not part of the signed body. */
	t = replace(m, "noon.\r\n", "noon.\r\n\r\n\r\n\r\n");
	assert_int_equal(verify0(t, rsa_rec, &r), DKIM_PASS);
	free(t);
	free(m);
}

static void test_bare_lf_signs_like_crlf(void **state)
{
	static const char lf[] = "From: a@example.org\nSubject: x\n\nline\n";
	static const char crlf[] = "From: a@example.org\r\nSubject: x\r\n\r\nline\r\n";
	struct dkim_sign_opts o = {.d = "example.org", .s = "sel", .simple_body = 1};
	struct dkim_result r;
	char *m = signed_msg(lf, &o, ed_key), *t;

	/* The same signature over the CRLF form. */
	t = replace(m, "\r\nFrom: a@example.org\nSubject: x\n\nline\n", "\r\n");
	char *both = NULL;
	assert_true(asprintf(&both, "%s%s", t, crlf) > 0);
	assert_int_equal(verify0(both, ed_rec, &r), DKIM_PASS);
	assert_int_equal(verify0(m, ed_rec, &r), DKIM_PASS);
	free(both);
	free(t);
	free(m);
}

static void test_lookup_failures(void **state)
{
	struct dkim_sign_opts o = {.d = "example.org", .s = "sel2"};
	struct dkim_result r;
	struct err e;
	char *m = signed_msg(base_msg, &o, ed_key);
	struct keys k = {.rec = ed_rec, .fail_kind = ERR_TEMP};

	assert_int_equal(dkim_verify_sig(m, strlen(m), 0, lookup, &k, &r, &e), -1);
	assert_int_equal(r.status, DKIM_TEMPERROR);
	assert_string_equal(k.last_sel, "sel2");
	assert_string_equal(k.last_dom, "example.org");
	k.fail_kind = ERR_NOTFOUND;
	assert_int_equal(dkim_verify_sig(m, strlen(m), 0, lookup, &k, &r, &e), -1);
	assert_int_equal(r.status, DKIM_PERMERROR);
	assert_string_equal(r.code, "dkim_no_key");
	k = (struct keys){.rec = "v=DKIM1; k=ed25519; p="};
	assert_int_equal(dkim_verify_sig(m, strlen(m), 0, lookup, &k, &r, &e), -1);
	assert_int_equal(r.status, DKIM_PERMERROR);
	assert_string_equal(r.code, "dkim_key_revoked");
	assert_int_equal(dkim_verify_sig(m, strlen(m), 1, lookup, &k, &r, &e), -1);
	assert_int_equal(r.status, DKIM_NONE);
	assert_string_equal(e.code, "dkim_no_signature");
	free(m);
}

static void test_times(void **state)
{
	struct dkim_sign_opts o = {.d = "example.org", .s = "sel", .now = 1000000, .expire = 60};
	struct dkim_result r;
	char *m = signed_msg(base_msg, &o, ed_key);

	assert_int_equal(verify0(m, ed_rec, &r), DKIM_PERMERROR);
	assert_string_equal(r.code, "dkim_expired");
	free(m);
	o = (struct dkim_sign_opts){.d = "example.org", .s = "sel", .now = time(NULL) + 3600};
	m = signed_msg(base_msg, &o, ed_key);
	assert_int_equal(verify0(m, ed_rec, &r), DKIM_PERMERROR);
	assert_string_equal(r.code, "dkim_future");
	free(m);
	o = (struct dkim_sign_opts){.d = "example.org", .s = "sel", .expire = 3600};
	m = signed_msg(base_msg, &o, ed_key);
	assert_int_equal(verify0(m, ed_rec, &r), DKIM_PASS);
	free(m);
}

static void test_sign_refusals(void **state)
{
	struct dkim_sign_opts o = {.d = "example.org", .s = "sel", .i = "a@example.com"};
	struct err e;
	EVP_PKEY *p256 = crypto_key_generate(KEY_P256, 0, &e);

	assert_null(dkim_sign(base_msg, strlen(base_msg), &o, ed_key, &e));
	assert_string_equal(e.code, "dkim_bad_identity");
	o = (struct dkim_sign_opts){.d = "example.org", .s = "sel", .headers = "to:subject"};
	assert_null(dkim_sign(base_msg, strlen(base_msg), &o, ed_key, &e));
	assert_string_equal(e.code, "dkim_missing_from");
	o = (struct dkim_sign_opts){.d = "example.org; x=1", .s = "sel"};
	assert_null(dkim_sign(base_msg, strlen(base_msg), &o, ed_key, &e));
	assert_string_equal(e.code, "dkim_bad_option");
	o = (struct dkim_sign_opts){.d = "example.org", .s = "sel"};
	assert_null(dkim_sign("To: b@x\r\n\r\nhi\r\n", 15, &o, ed_key, &e));
	assert_string_equal(e.code, "dkim_missing_from");
	assert_null(dkim_sign(base_msg, strlen(base_msg), &o, p256, &e));
	assert_string_equal(e.code, "dkim_bad_algorithm");
	EVP_PKEY_free(p256);
}

static void test_verify_all(void **state)
{
	struct dkim_sign_opts o1 = {.d = "example.org", .s = "a", .headers = "from:subject"};
	struct dkim_sign_opts o2 = {.d = "example.org", .s = "b"};
	char *m1 = signed_msg(base_msg, &o1, ed_key);
	char *m2 = signed_msg(m1, &o2, ed_key), *bad;
	struct keys k = {.rec = ed_rec};
	struct dkim_result *r;
	struct err e;
	size_t n;

	assert_int_equal(dkim_verify_all(m2, strlen(m2), lookup, &k, &r, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].status, DKIM_PASS);
	assert_string_equal(r[0].s, "b");
	assert_int_equal(r[1].status, DKIM_PASS);
	assert_string_equal(r[1].s, "a");
	assert_string_equal(dkim_status_name(r[1].status), "pass");
	free(r);
	/* Break the inner one's b= only: the outer one did not sign it. */
	bad = replace(m2, "; s=a;", "; s=a; x=junk;");
	assert_int_equal(dkim_verify_all(bad, strlen(bad), lookup, &k, &r, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].status, DKIM_PASS);
	assert_int_equal(r[1].status, DKIM_PERMERROR);
	assert_string_equal(dkim_status_name(r[1].status), "permerror");
	free(r);
	free(bad);
	assert_int_equal(dkim_verify_all(base_msg, strlen(base_msg), lookup, &k, &r, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_null(r);
	free(m1);
	free(m2);
}

/* ---- interop modes ---- */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void test_sign_file(void **state)
{
	const char *canon = getenv("DKIM_CANON") ? getenv("DKIM_CANON") : "relaxed/relaxed";
	struct dkim_sign_opts o = {.d = getenv("DKIM_D"),
	                           .s = getenv("DKIM_S"),
	                           .i = getenv("DKIM_I"),
	                           .simple_header = strncmp(canon, "simple", 6) == 0,
	                           .simple_body = strstr(canon, "/simple") != NULL};
	struct err e;
	size_t len;
	char *msg = slurp(getenv("DKIM_SIGN_IN"), &len), *field;
	EVP_PKEY *key = crypto_key_read_private(getenv("DKIM_KEY"), &e);
	FILE *out;

	if (key == NULL)
		fail_msg("key: %s", e.msg);
	field = dkim_sign(msg, len, &o, key, &e);
	if (field == NULL)
		fail_msg("sign: %s: %s", e.code, e.msg);
	out = fopen(getenv("DKIM_OUT"), "wb");
	assert_non_null(out);
	fprintf(out, "%s\r\n", field);
	fwrite(msg, 1, len, out);
	fclose(out);
	free(field);
	free(msg);
	EVP_PKEY_free(key);
}

static void test_verify_file(void **state)
{
	size_t len, reclen, n, j;
	char *msg = slurp(getenv("DKIM_VERIFY_IN"), &len);
	char *rec = slurp(getenv("DKIM_KEYREC"), &reclen);
	struct keys k = {.rec = rec};
	struct dkim_result *r;
	struct err e;
	FILE *out = fopen(getenv("DKIM_OUT"), "w");

	assert_non_null(out);
	assert_int_equal(dkim_verify_all(msg, len, lookup, &k, &r, &n, &e), 0);
	for (j = 0; j < n; j++)
		fprintf(out, "%s %s %s %s %s\n", dkim_status_name(r[j].status),
		        r[j].code[0] ? r[j].code : "-", r[j].d, r[j].s, r[j].a);
	fclose(out);
	free(r);
	free(rec);
	free(msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tags_parse),
	    cmocka_unit_test(test_tags_malformed),
	    cmocka_unit_test(test_sig_malformed),
	    cmocka_unit_test(test_key_records),
	    cmocka_unit_test(test_canon_rfc_example),
	    cmocka_unit_test(test_canon_body_edges),
	    cmocka_unit_test(test_msg_parse),
	    cmocka_unit_test(test_body_length_tag),
	    cmocka_unit_test(test_body_hash_matches_canon),
	    cmocka_unit_test(test_line_ends_at_every_offset),
	    cmocka_unit_test(test_relaxed_lines_at_every_offset),
	    cmocka_unit_test(test_round_trip_rsa),
	    cmocka_unit_test(test_round_trip_ed25519),
	    cmocka_unit_test(test_tampering),
	    cmocka_unit_test(test_simple_is_strict),
	    cmocka_unit_test(test_bare_lf_signs_like_crlf),
	    cmocka_unit_test(test_lookup_failures),
	    cmocka_unit_test(test_times),
	    cmocka_unit_test(test_sign_refusals),
	    cmocka_unit_test(test_verify_all),
	};
	const struct CMUnitTest sign[] = {cmocka_unit_test(test_sign_file)};
	const struct CMUnitTest verify[] = {cmocka_unit_test(test_verify_file)};

	if (getenv("DKIM_SIGN_IN") != NULL)
		return cmocka_run_group_tests_name("dkim_sign", sign, NULL, NULL);
	if (getenv("DKIM_VERIFY_IN") != NULL)
		return cmocka_run_group_tests_name("dkim_verify", verify, NULL, NULL);
	return cmocka_run_group_tests(tests, setup, teardown);
}
