/*
 * ks_signer_proto.c - strict parsing of the signer's requests; see
 * ks_signer_proto.h for the format and the rules of each field.
 */
#include "ks_signer_proto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "pki/name.h"

/* Fields each op takes. */
static int op_nfields(int op)
{
	switch (op) {
	case KS_SIGNER_REGISTER:
		return 7;
	case KS_SIGNER_ENCRYPT:
		return 5;
	case KS_SIGNER_TOKEN:
	case KS_SIGNER_SERVER:
	case KS_SIGNER_ROUTE_SET:
		return 4;
	case KS_SIGNER_ENROLL:
	case KS_SIGNER_ACME:
		return 3;
	case KS_SIGNER_ROUTE:
	case KS_SIGNER_RENEW:
		return 2;
	case KS_SIGNER_CRL:
	case KS_SIGNER_PUBLISH:
		return 1;
	default:
		return -1;
	}
}

const char *ks_signer_op_name(int op)
{
	switch (op) {
	case KS_SIGNER_REGISTER:
		return "register";
	case KS_SIGNER_TOKEN:
		return "token";
	case KS_SIGNER_ENROLL:
		return "enroll";
	case KS_SIGNER_SERVER:
		return "server";
	case KS_SIGNER_CRL:
		return "crl";
	case KS_SIGNER_ROUTE:
		return "route";
	case KS_SIGNER_ROUTE_SET:
		return "route_set";
	case KS_SIGNER_PUBLISH:
		return "publish";
	case KS_SIGNER_RENEW:
		return "renew";
	case KS_SIGNER_ACME:
		return "acme";
	case KS_SIGNER_ENCRYPT:
		return "encrypt";
	default:
		return "?";
	}
}

static int bad(struct err *e, const char *what)
{
	return err_set(e, ERR_INPUT, "bad_request", "the signer request has a bad %s", what);
}

/* A lowercase, valid domain name. */
static int field_domain(const struct frame_field *f, char *out, struct err *e)
{
	struct err why = {0};

	if (frame_field_str(f, out, KS_SIGNER_NAME_MAX, e) < 0)
		return -1;
	for (const char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			return bad(e, "domain (not lowercase)");
	if (name_check_domain(out, &why) < 0)
		return err_set(e, ERR_INPUT, "bad_request", "not a valid domain: %s", why.msg);
	return 0;
}

/* A lowercase, valid address, or (domain_ok) a domain name. */
static int field_name(const struct frame_field *f, int domain_ok, char *out, struct err *e)
{
	struct err why = {0};

	if (frame_field_str(f, out, KS_SIGNER_NAME_MAX, e) < 0)
		return -1;
	for (const char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			return bad(e, "name (not lowercase)");
	if (strchr(out, '@') == NULL && domain_ok)
		return field_domain(f, out, e);
	if (name_check_address(out, &why) < 0)
		return err_set(e, ERR_INPUT, "bad_request", "not a valid address: %s", why.msg);
	return 0;
}

/* A token is only ever hashed: any bytes but NUL, possibly none (it then matches no row). */
static int field_token(const struct frame_field *f, char *out, struct err *e)
{
	if (f->len > KS_SIGNER_TOKEN_MAX || memchr(f->p, '\0', f->len) != NULL)
		return bad(e, "token");
	memcpy(out, f->p, f->len);
	out[f->len] = '\0';
	return 0;
}

/* A canonical lowercase UUID (36 characters). */
static int field_uuid(const struct frame_field *f, char *out, struct err *e)
{
	if (f->len != 36)
		return bad(e, "order id");
	for (size_t k = 0; k < 36; k++) {
		uint8_t c = f->p[k];
		int dash = k == 8 || k == 13 || k == 18 || k == 23;
		if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return bad(e, "order id");
	}
	memcpy(out, f->p, 36);
	out[36] = '\0';
	return 0;
}

/* [a-z] only, possibly empty when empty_ok. */
static int field_word(const struct frame_field *f, int empty_ok, char *out, struct err *e)
{
	if (f->len == 0 && empty_ok) {
		out[0] = '\0';
		return 0;
	}
	if (frame_field_str(f, out, KS_SIGNER_WORD_MAX, e) < 0)
		return -1;
	for (const char *p = out; *p; p++)
		if (*p < 'a' || *p > 'z')
			return bad(e, "word");
	return 0;
}

static int field_ttl(const struct frame_field *f, long long *ttl, struct err *e)
{
	char buf[KS_SIGNER_WORD_MAX];
	long long v = 0;

	if (frame_field_str(f, buf, sizeof(buf), e) < 0)
		return -1;
	for (const char *p = buf; *p; p++) {
		if (*p < '0' || *p > '9' || v > KS_TOKEN_TTL_MAX)
			return bad(e, "ttl");
		v = v * 10 + (*p - '0');
	}
	if (v < KS_TOKEN_TTL_MIN || v > KS_TOKEN_TTL_MAX)
		return err_set(e, ERR_INPUT, "bad_request",
		               "\"ttl\" must be a whole number of seconds from %d to %d",
		               KS_TOKEN_TTL_MIN, KS_TOKEN_TTL_MAX);
	*ttl = v;
	return 0;
}

/* A PEM text: printable ASCII and line breaks, copied (it may be a private key). */
static int field_pem(const struct frame_field *f, char **out, struct err *e)
{
	if (f->len == 0 || f->len > KS_SIGNER_PEM_MAX)
		return bad(e, "PEM text (empty or too long)");
	for (size_t k = 0; k < f->len; k++) {
		uint8_t c = f->p[k];
		if (!((c >= ' ' && c <= '~') || c == '\n' || c == '\r' || c == '\t'))
			return bad(e, "PEM text");
	}
	if ((*out = OPENSSL_secure_malloc(f->len + 1)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	memcpy(*out, f->p, f->len);
	(*out)[f->len] = '\0';
	return 0;
}

/* challenge id, answer (base64url), token or "", JWS or "": one of the last two. */
static int parse_encrypt(const struct frame_field *f, struct ks_signer_request *r, struct err *e)
{
	if (field_uuid(&f[1], r->challenge, e) < 0)
		return -1;
	if (f[2].len == 0 || f[2].len >= sizeof(r->answer))
		return bad(e, "answer");
	for (size_t k = 0; k < f[2].len; k++) {
		uint8_t c = f[2].p[k];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return bad(e, "answer");
	}
	memcpy(r->answer, f[2].p, f[2].len);
	r->answer[f[2].len] = '\0';
	if (field_token(&f[3], r->token, e) < 0)
		return -1;
	if ((f[3].len == 0) == (f[4].len == 0))
		return bad(e, "authorisation (a token or a signed request, one of them)");
	return f[4].len == 0 ? 0 : field_pem(&f[4], &r->pem[0], e);
}

/* name, who set it (not empty), the route's JSON (printable ASCII: JSON_ENSURE_ASCII). */
static int parse_route_set(const struct frame_field *f, struct ks_signer_request *r, struct err *e)
{
	if (f[2].len == 0)
		return bad(e, "setter");
	return field_name(&f[1], 1, r->name, e) < 0 || field_token(&f[2], r->token, e) < 0 ||
	               field_pem(&f[3], &r->pem[0], e) < 0
	           ? -1
	           : 0;
}

static int parse_fields(const struct frame_msg *m, struct ks_signer_request *r, struct err *e)
{
	const struct frame_field *f = m->f;

	if (field_domain(&f[0], r->domain, e) < 0)
		return -1;
	switch (r->op) {
	case KS_SIGNER_REGISTER:
		return field_pem(&f[1], &r->pem[0], e) < 0 || field_pem(&f[2], &r->pem[1], e) < 0 ||
		               field_pem(&f[3], &r->pem[2], e) < 0 ||
		               field_word(&f[4], 1, r->word, e) < 0 ||
		               field_word(&f[5], 1, r->mode, e) < 0 ||
		               field_token(&f[6], r->token, e) < 0
		           ? -1
		           : 0;
	case KS_SIGNER_TOKEN:
		return field_token(&f[1], r->token, e) < 0 ||
		               field_name(&f[2], 0, r->name, e) < 0 ||
		               field_ttl(&f[3], &r->ttl, e) < 0
		           ? -1
		           : 0;
	case KS_SIGNER_ENROLL:
		return field_token(&f[1], r->token, e) < 0 || field_pem(&f[2], &r->pem[0], e) < 0
		           ? -1
		           : 0;
	case KS_SIGNER_SERVER:
		return field_token(&f[1], r->token, e) < 0 ||
		               field_word(&f[2], 0, r->word, e) < 0 ||
		               field_pem(&f[3], &r->pem[0], e) < 0
		           ? -1
		           : 0;
	case KS_SIGNER_ROUTE:
		return field_name(&f[1], 1, r->name, e);
	case KS_SIGNER_ROUTE_SET:
		return parse_route_set(f, r, e);
	case KS_SIGNER_RENEW:
		return field_pem(&f[1], &r->pem[0], e);
	case KS_SIGNER_ACME:
		return field_uuid(&f[1], r->token, e) < 0 || field_pem(&f[2], &r->pem[0], e) < 0
		           ? -1
		           : 0;
	case KS_SIGNER_ENCRYPT:
		return parse_encrypt(f, r, e);
	case KS_SIGNER_CRL:
	case KS_SIGNER_PUBLISH:
		return 0;
	}
	return bad(e, "op");
}

int ks_signer_request_parse(const uint8_t *body, size_t len, struct ks_signer_request *r,
                            struct err *e)
{
	struct frame_msg m;
	int want;

	memset(r, 0, sizeof(*r));
	if (frame_parse(body, len, &m, e) < 0)
		return -1;
	if ((want = op_nfields(m.type)) < 0)
		return err_set(e, ERR_INPUT, "unknown_op", "unknown op %u", m.type);
	r->op = (enum ks_signer_op)m.type;
	if (m.n != want)
		return err_set(e, ERR_INPUT, "bad_request", "op %s takes %d fields, not %d",
		               ks_signer_op_name(m.type), want, m.n);
	if (parse_fields(&m, r, e) < 0) {
		ks_signer_request_free(r);
		return -1;
	}
	return 0;
}

void ks_signer_request_free(struct ks_signer_request *r)
{
	if (r == NULL)
		return;
	for (int k = 0; k < 3; k++) {
		if (r->pem[k] != NULL)
			OPENSSL_secure_clear_free(r->pem[k], strlen(r->pem[k]) + 1);
		r->pem[k] = NULL;
	}
	OPENSSL_cleanse(r->token, sizeof(r->token));
}
