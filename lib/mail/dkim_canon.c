/*
 * dkim_canon.c - splitting a message into header fields and body (with
 * mail/header, on a copy whose line ends are all CRLF), and the
 * simple and relaxed canonicalisations of RFC 6376 §3.4.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "pki/crypto.h"
#include "mail/dkim.h"
#include "mail/header.h"

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

#ifndef __SSE2__ /* the portable way of looking at several octets at once */
#define BYTES_01 0x0101010101010101ULL
#define BYTES_7F 0x7f7f7f7f7f7f7f7fULL

/* The octets of x equal to c, each marked by its top bit (exact: no false marks). */
static uint64_t bytes_equal(uint64_t x, unsigned char c)
{
	uint64_t y = x ^ (BYTES_01 * c);

	return ~(((y & BYTES_7F) + BYTES_7F) | y | BYTES_7F);
}
#endif

/* Whether the octet at k is no line end, or part of a CRLF. */
static int crlf_ok(const char *msg, size_t len, size_t k)
{
	if (msg[k] == '\r')
		return k + 1 < len && msg[k + 1] == '\n';
	if (msg[k] == '\n')
		return k > 0 && msg[k - 1] == '\r';
	return 1;
}

/* Where in the 16 octets at p there is a CR or an LF: one bit per octet. */
static unsigned line_end_marks16(const char *p)
{
#ifdef __SSE2__
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);

	return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')),
	                                                _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))));
#else
	uint64_t x[2];
	unsigned marks = 0;
	int k;

	memcpy(x, p, 16);
	for (k = 0; k < 2; k++)
		if ((bytes_equal(x[k], '\r') | bytes_equal(x[k], '\n')) != 0)
			marks |= 0xffu << (8 * k); /* somewhere in these 8: look at each */
	return marks;
#endif
}

/* Whether every line end in msg is already CRLF (no bare LF, no lone CR): the common
 * case.  One pass, sixteen octets at a time; only the octets marked as CR or LF are
 * looked at (two memchr passes, one call per line each, cost three times as much on
 * 70-column text). */
static int all_crlf(const char *msg, size_t len)
{
	size_t i = 0;

	for (; i + 16 <= len; i += 16) {
		unsigned marks = line_end_marks16(msg + i);

		for (; marks != 0; marks &= marks - 1)
			if (!crlf_ok(msg, len, i + (size_t)__builtin_ctz(marks)))
				return 0;
	}
	for (; i < len; i++)
		if (!crlf_ok(msg, len, i))
			return 0;
	return 1;
}

/* A copy of msg with every line end as CRLF (bare LF and lone CR become CRLF). */
static char *normalise_crlf(const char *msg, size_t len, size_t *outlen)
{
	size_t i, n = 0, extra = 0;
	char *out;

	if (all_crlf(msg, len)) {
		if ((out = malloc(len + 1)) == NULL)
			return NULL;
		memcpy(out, msg, len);
		out[len] = '\0';
		*outlen = len;
		return out;
	}
	for (i = 0; i < len; i++)
		if ((msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r')) ||
		    (msg[i] == '\r' && (i + 1 == len || msg[i + 1] != '\n')))
			extra++;
	out = malloc(len + extra + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r')) {
			out[n++] = '\r';
			out[n++] = '\n';
		} else if (msg[i] == '\r' && (i + 1 == len || msg[i + 1] != '\n')) {
			out[n++] = '\r';
			out[n++] = '\n';
		} else {
			out[n++] = msg[i];
		}
	}
	out[n] = '\0';
	*outlen = n;
	return out;
}

/* End of the line starting at p: the index of its CR, or len. */
static size_t line_end(const char *b, size_t len, size_t p)
{
	while (p < len) {
		const char *cr = memchr(b + p, '\r', len - p);
		size_t i;

		if (cr == NULL)
			return len;
		i = (size_t)(cr - b);
		if (i + 1 < len && b[i + 1] == '\n')
			return i;
		p = i + 1;
	}
	return len;
}

static int add_header(struct dkim_msg *m, size_t *cap, const struct mail_field *f, struct err *e)
{
	struct dkim_hdr *h;

	if (f->bad != NULL)
		return err_set(e, ERR_INPUT, "dkim_bad_header", "%s", f->bad);
	if (m->nhdrs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		h = realloc(m->hdrs, ncap * sizeof(*h));
		if (h == NULL)
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		m->hdrs = h;
		*cap = ncap;
	}
	h = &m->hdrs[m->nhdrs++];
	h->name = f->name;
	h->nlen = f->nlen;
	h->raw = f->raw;
	h->rawlen = f->rawlen;
	return 0;
}

/* The fields are mail/header's, read from the normalised copy: the bytes signed. */
int dkim_msg_parse(const char *msg, size_t len, struct dkim_msg *m, struct err *e)
{
	struct mail_header h;
	struct mail_field f;
	size_t cap = 0;

	memset(m, 0, sizeof(*m));
	m->buf = normalise_crlf(msg, len, &m->len);
	if (m->buf == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	mail_header_init(&h, m->buf, m->len);
	while (mail_header_next(&h, &f) == 1)
		if (add_header(m, &cap, &f, e) < 0) {
			dkim_msg_free(m);
			return -1;
		}
	m->body = m->buf + h.body;
	m->bodylen = m->len - h.body;
	return 0;
}

void dkim_msg_free(struct dkim_msg *m)
{
	if (m == NULL)
		return;
	free(m->buf);
	free(m->hdrs);
	memset(m, 0, sizeof(*m));
}

/* ---- headers ---- */

/* The field canonicalised into out (room for rawlen + 4 octets: the field, a ':' when
 * it has none, CRLF, NUL); returns the length written, NUL not counted. */
static size_t canon_header_relaxed(const char *raw, size_t rawlen, char *out)
{
	const char *colon = memchr(raw, ':', rawlen);
	size_t nlen = colon ? (size_t)(colon - raw) : rawlen, i, n = 0;
	int space = 0, started = 0;

	while (nlen > 0 && is_wsp(raw[nlen - 1]))
		nlen--;
	for (i = 0; i < nlen; i++)
		out[n++] = (char)tolower((unsigned char)raw[i]);
	out[n++] = ':';
	i = colon ? (size_t)(colon - raw) + 1 : rawlen;
	/* Unfold, squeeze WSP runs to one SP, drop WSP at both ends of the value. */
	for (; i < rawlen; i++) {
		char c = raw[i];
		if (c == '\r' || c == '\n')
			continue;
		if (is_wsp(c)) {
			space = 1;
			continue;
		}
		if (space && started)
			out[n++] = ' ';
		space = 0;
		started = 1;
		out[n++] = c;
	}
	out[n++] = '\r';
	out[n++] = '\n';
	out[n] = '\0';
	return n;
}

/* Either canonicalisation into out, as above. */
static size_t canon_header_into(enum dkim_canon c, const char *raw, size_t rawlen, char *out)
{
	if (c == DKIM_CANON_RELAXED)
		return canon_header_relaxed(raw, rawlen, out);
	memcpy(out, raw, rawlen);
	memcpy(out + rawlen, "\r\n", 3);
	return rawlen + 2;
}

char *dkim_canon_header(enum dkim_canon c, const char *raw, size_t rawlen, size_t *outlen)
{
	char *out = malloc(rawlen + 4);

	if (out == NULL)
		return NULL;
	*outlen = canon_header_into(c, raw, rawlen, out);
	return out;
}

/* ---- bodies ---- */

/* Relaxed line: drop trailing WSP, squeeze inner WSP runs to one SP. */
static size_t relax_line(const char *s, size_t len, char *out)
{
	size_t i, n = 0;
	int space = 0;

	for (i = 0; i < len; i++) {
		if (is_wsp(s[i])) {
			space = 1;
			continue;
		}
		if (space)
			out[n++] = ' ';
		space = 0;
		out[n++] = s[i];
	}
	return n;
}

char *dkim_canon_body(enum dkim_canon c, const char *body, size_t len, size_t *outlen)
{
	char *out = malloc(len + 3);
	size_t p = 0, n = 0, keep = 0, end;

	if (out == NULL)
		return NULL;
	/* Copy line by line; keep marks the end of the last non-empty line so
	 * that trailing empty lines fall away (§3.4.3, §3.4.4). */
	while (p < len) {
		size_t before = n;
		end = line_end(body, len, p);
		if (c == DKIM_CANON_RELAXED) {
			n += relax_line(body + p, end - p, out + n);
		} else {
			memcpy(out + n, body + p, end - p);
			n += end - p;
		}
		memcpy(out + n, "\r\n", 2);
		n += 2;
		if (n - 2 > before)
			keep = n;
		p = end < len ? end + 2 : len;
	}
	n = keep;
	/* An empty body is CRLF under simple and nothing under relaxed. */
	if (n == 0 && c == DKIM_CANON_SIMPLE) {
		memcpy(out, "\r\n", 2);
		n = 2;
	}
	out[n] = '\0';
	*outlen = n;
	return out;
}

/* ---- what the signature covers (§3.7) ---- */

/* Room in *buf for len more octets and a NUL; 0, or -1 when out of memory. */
static int reserve(char **buf, size_t n, size_t *cap, size_t len)
{
	if (*buf == NULL || n + len + 1 > *cap) {
		size_t ncap = (n + len + 1) * 2;
		char *b = realloc(*buf, ncap);
		if (b == NULL)
			return -1;
		*buf = b;
		*cap = ncap;
	}
	return 0;
}

static int name_is(const struct dkim_hdr *h, const char *name)
{
	size_t n = strlen(name);

	return h->nlen == n && strncasecmp(h->name, name, n) == 0;
}

char *dkim_header_data(const struct dkim_msg *m, enum dkim_canon c,
                       const char (*names)[DKIM_HNAME_MAX], int nnames, const char *sigfield,
                       size_t siglen, size_t *outlen, struct err *e)
{
	uint8_t used[DKIM_MAX_HDRS_SIGNED];
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int k;

	if (m->nhdrs > DKIM_MAX_HDRS_SIGNED) {
		err_set(e, ERR_INPUT, "dkim_bad_header", "more than %d header fields",
		        DKIM_MAX_HDRS_SIGNED);
		return NULL;
	}
	memset(used, 0, sizeof(used));
	for (k = 0; k < nnames; k++) {
		/* Repeated names take the fields bottom-up; a name listed more
		 * often than present adds nothing (oversigning, §5.4.2). */
		size_t j = m->nhdrs;
		while (j > 0 && (used[j - 1] || !name_is(&m->hdrs[j - 1], names[k])))
			j--;
		if (j == 0)
			continue;
		used[j - 1] = 1;
		/* canonicalised in place, at the end of buf: no copy of each field */
		if (reserve(&buf, n, &cap, m->hdrs[j - 1].rawlen + 3) < 0)
			goto oom;
		n += canon_header_into(c, m->hdrs[j - 1].raw, m->hdrs[j - 1].rawlen, buf + n);
	}
	if (reserve(&buf, n, &cap, siglen + 3) < 0)
		goto oom;
	n += canon_header_into(c, sigfield, siglen, buf + n) - 2; /* without its CRLF */
	buf[n] = '\0';
	*outlen = n;
	return buf;
oom:
	free(buf);
	err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return NULL;
}

/*
 * The body is canonicalised straight into the hash, a line at a time, with no copy of
 * the whole body: simple lines go in as they stand, relaxed ones as their runs of
 * non-WSP octets with one SP between runs.  Empty lines are held back until a non-empty
 * one follows (trailing empty lines fall away, §3.4.3, §3.4.4).  Only the first limit
 * octets are hashed (l=); all are counted.  Small pieces gather in buf first.
 */
struct body_sink {
	EVP_MD_CTX *md;
	unsigned long long total, limit;
	size_t n;
	int ok;
	char buf[2048];
};

static void sink_flush(struct body_sink *s)
{
	if (s->n > 0 && EVP_DigestUpdate(s->md, s->buf, s->n) != 1)
		s->ok = 0;
	s->n = 0;
}

static void sink_put(struct body_sink *s, const char *p, size_t len)
{
	unsigned long long room = s->limit > s->total ? s->limit - s->total : 0;
	size_t take = len < room ? len : (size_t)room;

	s->total += len;
	if (take == 0)
		return;
	if (s->n + take > sizeof(s->buf)) {
		sink_flush(s);
		if (take > sizeof(s->buf) / 2) {
			if (EVP_DigestUpdate(s->md, p, take) != 1)
				s->ok = 0;
			return;
		}
	}
	memcpy(s->buf + s->n, p, take);
	s->n += take;
}

/* Whether a line canonicalises to something (relaxed: not only WSP). */
static int line_has_text(enum dkim_canon c, const char *s, size_t len)
{
	size_t i;

	if (c == DKIM_CANON_SIMPLE)
		return len > 0;
	for (i = 0; i < len; i++)
		if (!is_wsp(s[i]))
			return 1;
	return 0;
}

/* A relaxed line: its runs of non-WSP octets, each WSP run before one as a single SP
 * (trailing WSP is dropped, §3.4.4). */
static void sink_relaxed_line(struct body_sink *s, const char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start;

		if (is_wsp(p[i])) {
			while (i < len && is_wsp(p[i]))
				i++;
			if (i == len)
				break;
			sink_put(s, " ", 1);
		}
		start = i;
		while (i < len && !is_wsp(p[i]))
			i++;
		sink_put(s, p + start, i - start);
	}
}

/*
 * Whether a relaxed line reads the same as the line itself: no tab, no WSP run, no
 * trailing WSP (most lines of most mail).  One pass, eight octets at a time (a
 * memchr for the tab and a memmem for two spaces read each line twice, and memmem is
 * slow on a two-octet needle); a space pair across two words is caught by carrying
 * the last octet's mark over.
 */
static int relaxed_as_is(const char *p, size_t len)
{
	uint64_t carry = 0; /* the previous octet was a space: bit 7 */
	size_t i = 0;

	if (len > 0 && is_wsp(p[len - 1]))
		return 0;
#ifdef __SSE2__
	for (; i + 16 <= len; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		unsigned sp = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')));

		if (_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))) != 0 ||
		    (sp & ((sp << 1) | (unsigned)(carry >> 7))) != 0)
			return 0;
		carry = (uint64_t)((sp >> 15) & 1) << 7;
	}
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (; i + 8 <= len; i += 8) {
		uint64_t x, sp;

		memcpy(&x, p + i, 8);
		sp = bytes_equal(x, ' ');
		if (bytes_equal(x, '\t') != 0 || (sp & ((sp << 8) | carry)) != 0)
			return 0;
		carry = sp >> 56;
	}
#endif
	for (; i < len; i++) {
		if (p[i] == '\t' || (p[i] == ' ' && carry != 0))
			return 0;
		carry = p[i] == ' ';
	}
	return 1;
}

/*
 * The end of the relaxed line at p (as line_end) and whether it reads the same relaxed
 * (as relaxed_as_is), found in one pass of sixteen octets at a time where SSE2 is there:
 * the memchr for the CR and the check read each line twice.
 */
static size_t relaxed_line_end(const char *b, size_t len, size_t p, int *as_is)
{
	size_t i = p, end;
#ifdef __SSE2__
	unsigned carry = 0; /* the octet before this chunk was a space */

	for (; i + 16 <= len; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
		unsigned cr = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')));
		unsigned sp = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')));
		unsigned bad = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))) |
		               (sp & ((sp << 1) | carry));

		for (; cr != 0; cr &= cr - 1) {
			unsigned k = (unsigned)__builtin_ctz(cr);
			if (i + k + 1 < len && b[i + k + 1] == '\n') {
				end = i + k;
				*as_is = (bad & ((1u << k) - 1)) == 0 &&
				         !(end > p && is_wsp(b[end - 1]));
				return end;
			}
		}
		if (bad != 0) { /* changed by relaxing: only the end is still wanted */
			*as_is = 0;
			return line_end(b, len, i);
		}
		carry = (sp >> 15) & 1;
	}
#endif
	end = line_end(b, len, i);
	*as_is = relaxed_as_is(b + p, end - p);
	return end;
}

/*
 * Lines that go in as they stand, CRLF and all, are adjacent in the body: they are
 * gathered into one span [*from, *to) and hashed in place, without a copy.
 */
static void sink_span(struct body_sink *s, const char *body, size_t *from, size_t *to)
{
	if (*to > *from)
		sink_put(s, body + *from, *to - *from);
	*from = *to = 0;
}

static void sink_body(struct body_sink *s, enum dkim_canon c, const char *body, size_t len)
{
	size_t p = 0, held = 0, from = 0, to = 0;

	while (p < len) {
		int as_is = 1; /* simple: every line */
		size_t end = c == DKIM_CANON_RELAXED ? relaxed_line_end(body, len, p, &as_is)
		                                     : line_end(body, len, p);

		if (!line_has_text(c, body + p, end - p)) {
			held++;
		} else if (held == 0 && end + 2 <= len && as_is) {
			if (to != p)
				sink_span(s, body, &from, &to);
			if (to == 0)
				from = p;
			to = end + 2;
		} else {
			sink_span(s, body, &from, &to);
			for (; held > 0; held--)
				sink_put(s, "\r\n", 2);
			if (c == DKIM_CANON_RELAXED)
				sink_relaxed_line(s, body + p, end - p);
			else
				sink_put(s, body + p, end - p);
			sink_put(s, "\r\n", 2);
		}
		p = end < len ? end + 2 : len;
	}
	sink_span(s, body, &from, &to);
	/* An empty body is CRLF under simple and nothing under relaxed. */
	if (s->total == 0 && c == DKIM_CANON_SIMPLE)
		sink_put(s, "\r\n", 2);
	sink_flush(s);
}

int dkim_body_hash(enum dkim_canon c, const char *body, size_t len, long long l, uint8_t out[32],
                   int *truncated, struct err *e)
{
	struct body_sink s;

	s.md = EVP_MD_CTX_new();
	s.total = 0;
	s.limit = l >= 0 ? (unsigned long long)l : ~0ULL;
	s.n = 0;
	s.ok = s.md != NULL && EVP_DigestInit_ex(s.md, crypto_sha256_md(), NULL) == 1;
	if (s.ok)
		sink_body(&s, c, body, len);
	if (!s.ok || EVP_DigestFinal_ex(s.md, out, NULL) != 1) {
		EVP_MD_CTX_free(s.md);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	EVP_MD_CTX_free(s.md);
	*truncated = 0;
	if (l >= 0) {
		if ((unsigned long long)l > s.total)
			return err_set(e, ERR_UNPROC, "dkim_body_short",
			               "the body is shorter than l=%lld", l);
		*truncated = (unsigned long long)l < s.total;
	}
	return 0;
}
