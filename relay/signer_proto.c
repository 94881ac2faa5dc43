/*
 * signer_proto.c - strict parsing of the signer's requests (the frames are
 * lib/core/frame's); see signer_proto.h for the format.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pki/name.h"
#include "signer_proto.h"

/* A user key's file is "<address>.key" in one directory: no '/' may reach it. */
static int check_name(enum signer_op op, const char *name, struct err *e)
{
	struct err why = {0};
	int user = op == SIGNER_OP_USER || op == SIGNER_OP_SIGN_USER;

	if (user ? name_check_address(name, &why) < 0 || strchr(name, '/') != NULL
	         : name_check_domain(name, &why) < 0)
		return err_set(e, ERR_INPUT, "bad_request", "not a valid %s: %s",
		               user ? "address" : "domain", why.msg[0] ? why.msg : "'/'");
	return 0;
}

/* JWS signing input: BASE64URL "." BASE64URL, nothing else. */
static int check_jws_input(const uint8_t *p, size_t len, struct err *e)
{
	size_t k, dots = 0, dot = 0;

	for (k = 0; k < len; k++) {
		uint8_t c = p[k];
		if (c == '.') {
			dots++;
			dot = k;
		} else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		             (c >= '0' && c <= '9') || c == '-' || c == '_')) {
			return err_set(e, ERR_INPUT, "bad_request", "not a JWS signing input");
		}
	}
	if (dots != 1 || dot == 0 || dot == len - 1)
		return err_set(e, ERR_INPUT, "bad_request", "not a JWS signing input");
	return 0;
}

/* Fields each op takes. */
static int op_nfields(int op)
{
	switch (op) {
	case SIGNER_OP_DOMAIN:
	case SIGNER_OP_USER:
	case SIGNER_OP_SIGN_REPORT:
		return 1;
	case SIGNER_OP_DECRYPT:
		return 2;
	case SIGNER_OP_SIGN_DOMAIN:
	case SIGNER_OP_SIGN_USER:
		return 3;
	case SIGNER_OP_REPORT_CHAIN:
		return 0;
	default:
		return -1;
	}
}

int signer_request_parse(const uint8_t *body, size_t len, struct signer_request *r, struct err *e)
{
	struct frame_msg m;
	char alg[32];
	int want;

	memset(r, 0, sizeof(*r));
	if (frame_parse(body, len, &m, e) < 0)
		return -1;
	/* The signer's ops take fewer fields than a frame may carry: more is a bad frame. */
	if (m.n > SIGNER_MAX_FIELDS)
		return err_set(e, ERR_INPUT, "bad_frame", "%d fields (at most %d)", m.n,
		               SIGNER_MAX_FIELDS);
	if ((want = op_nfields(m.type)) < 0)
		return err_set(e, ERR_INPUT, "unknown_op", "unknown op %u", m.type);
	r->op = (enum signer_op)m.type;
	if (m.n != want)
		return err_set(e, ERR_INPUT, "bad_request", "op %u takes %d fields, not %d", m.type,
		               want, m.n);
	if (r->op != SIGNER_OP_REPORT_CHAIN && r->op != SIGNER_OP_SIGN_REPORT &&
	    (frame_field_str(&m.f[0], r->name, sizeof(r->name), e) < 0 ||
	     check_name(r->op, r->name, e) < 0))
		return -1;
	if (r->op == SIGNER_OP_SIGN_DOMAIN || r->op == SIGNER_OP_SIGN_USER) {
		if (frame_field_str(&m.f[1], alg, sizeof(alg), e) < 0)
			return -1;
		if (dkim_alg_parse(alg, &r->alg) < 0)
			return err_set(e, ERR_INPUT, "bad_request", "unknown a=");
		if (m.f[2].len == 0 || m.f[2].len > SIGNER_MAX_DATA)
			return err_set(e, ERR_INPUT, "bad_request", "no data or too much");
		r->data = m.f[2].p;
		r->datalen = m.f[2].len;
	}
	if (r->op == SIGNER_OP_DECRYPT) {
		if (m.f[1].len == 0 || m.f[1].len > SIGNER_MAX_DATA)
			return err_set(e, ERR_INPUT, "bad_request", "no message or too large");
		r->data = m.f[1].p;
		r->datalen = m.f[1].len;
	}
	if (r->op == SIGNER_OP_SIGN_REPORT) {
		if (m.f[0].len == 0 || m.f[0].len > SIGNER_MAX_DATA ||
		    check_jws_input(m.f[0].p, m.f[0].len, e) < 0)
			return err_set(e, ERR_INPUT, "bad_request", "not a JWS signing input");
		r->data = m.f[0].p;
		r->datalen = m.f[0].len;
	}
	return 0;
}

/* Where the last field of data starts when it is a DKIM-Signature, else -1. */
static long last_sig_field(const uint8_t *data, size_t len)
{
	static const char name[] = "dkim-signature";
	const size_t nl = sizeof(name) - 1;
	size_t p = len;

	while (p-- > 0) {
		if (p != 0 && !(p >= 2 && data[p - 2] == '\r' && data[p - 1] == '\n'))
			continue;
		if (len - p > nl && strncasecmp((const char *)data + p, name, nl) == 0)
			return (long)p;
		if (p == 0)
			break;
	}
	return -1;
}

static int tag_is(const struct dkim_taglist *tl, const char *name, const char *want, int nocase)
{
	const struct dkim_tag *t = dkim_tags_get(tl, name);
	size_t n = strlen(want);

	if (t == NULL || t->vlen != n)
		return 0;
	return nocase ? strncasecmp(t->val, want, n) == 0 : memcmp(t->val, want, n) == 0;
}

int signer_dkim_data_check(const uint8_t *data, size_t len, enum dkim_alg alg, const char *d,
                           const char *s, const char *i, struct err *e)
{
	struct dkim_taglist tl;
	struct err why = {0};
	const struct dkim_tag *b;
	long at = last_sig_field(data, len);
	size_t p;

	if (at < 0)
		goto refuse;
	p = (size_t)at + strlen("dkim-signature");
	while (p < len && (data[p] == ' ' || data[p] == '\t'))
		p++;
	if (p >= len || data[p] != ':')
		goto refuse;
	p++;
	if (dkim_tags_parse((const char *)data + p, len - p, &tl, &why) < 0)
		goto refuse;
	b = dkim_tags_get(&tl, "b");
	if (!tag_is(&tl, "v", "1", 0) || !tag_is(&tl, "a", dkim_alg_name(alg), 0) ||
	    !tag_is(&tl, "d", d, 1) || !tag_is(&tl, "s", s, 0) || b == NULL || b->vlen != 0 ||
	    dkim_tags_get(&tl, "bh") == NULL)
		goto refuse;
	if (i != NULL ? !tag_is(&tl, "i", i, 1) : dkim_tags_get(&tl, "i") != NULL)
		goto refuse;
	return 0;
refuse:
	return err_set(e, ERR_FORBIDDEN, "not_dkim_data",
	               "the data does not end with an unsigned DKIM-Signature for this key");
}
