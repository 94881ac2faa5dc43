/*
 * dkim_canon.c - splitting a message into header fields and body (with
 * mail/header, on a copy whose line ends are all CRLF), and the
 * simple and relaxed canonicalisations of RFC 6376 §3.4.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pki/crypto.h"
#include "mail/dkim.h"
#include "mail/header.h"

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* A copy of msg with every line end as CRLF (bare LF and lone CR become CRLF). */
static char *normalise_crlf(const char *msg, size_t len, size_t *outlen)
{
	size_t i, n = 0, extra = 0;
	char *out;

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

/* End of the line starting at p: the index of its CR, or len (bodies, already CRLF). */
static size_t line_end(const char *b, size_t len, size_t p)
{
	const char *cr = p < len ? memmem(b + p, len - p, "\r\n", 2) : NULL;

	return cr ? (size_t)(cr - b) : len;
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

static char *canon_header_relaxed(const char *raw, size_t rawlen, size_t *outlen)
{
	const char *colon = memchr(raw, ':', rawlen);
	size_t nlen = colon ? (size_t)(colon - raw) : rawlen, i, n = 0;
	char *out = malloc(rawlen + 3);
	int space = 0, started = 0;

	if (out == NULL)
		return NULL;
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
	*outlen = n;
	return out;
}

char *dkim_canon_header(enum dkim_canon c, const char *raw, size_t rawlen, size_t *outlen)
{
	char *out;

	if (c == DKIM_CANON_RELAXED)
		return canon_header_relaxed(raw, rawlen, outlen);
	out = malloc(rawlen + 3);
	if (out == NULL)
		return NULL;
	memcpy(out, raw, rawlen);
	memcpy(out + rawlen, "\r\n", 3);
	*outlen = rawlen + 2;
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

static int append(char **buf, size_t *n, size_t *cap, const char *s, size_t len)
{
	if (*buf == NULL || *n + len + 1 > *cap) {
		size_t ncap = (*n + len + 1) * 2;
		char *b = realloc(*buf, ncap);
		if (b == NULL)
			return -1;
		*buf = b;
		*cap = ncap;
	}
	if (len > 0)
		memcpy(*buf + *n, s, len);
	*n += len;
	(*buf)[*n] = '\0';
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
	char *buf = NULL, *one = NULL;
	size_t n = 0, cap = 0, onelen;
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
		one = dkim_canon_header(c, m->hdrs[j - 1].raw, m->hdrs[j - 1].rawlen, &onelen);
		if (one == NULL || append(&buf, &n, &cap, one, onelen) < 0)
			goto oom;
		free(one);
		one = NULL;
	}
	one = dkim_canon_header(c, sigfield, siglen, &onelen);
	if (one == NULL || append(&buf, &n, &cap, one, onelen - 2) < 0)
		goto oom;
	free(one);
	*outlen = n;
	return buf;
oom:
	free(one);
	free(buf);
	err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return NULL;
}

int dkim_body_hash(enum dkim_canon c, const char *body, size_t len, long long l, uint8_t out[32],
                   int *truncated, struct err *e)
{
	size_t n;
	char *canon = dkim_canon_body(c, body, len, &n);

	if (canon == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	*truncated = 0;
	if (l >= 0) {
		if ((unsigned long long)l > n) {
			free(canon);
			return err_set(e, ERR_UNPROC, "dkim_body_short",
			               "the body is shorter than l=%lld", l);
		}
		*truncated = (size_t)l < n;
		n = (size_t)l;
	}
	crypto_sha256(canon, n, out);
	free(canon);
	return 0;
}
