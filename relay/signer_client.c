/*
 * signer_client.c - the relay's side of the signer: a small pool of Unix
 * socket connections shared by the worker threads.
 *
 * The pool, its deadline (CLIENT_TIMEOUT_MS, then ERR_TEMP) and the
 * replacing of a broken connection are lib/core/frame's client.
 *
 * The client does the work on the message (body hash, canonical header
 * data, the unsigned DKIM-Signature field, the JWS signing input) and sends
 * the signer only what the key must sign.
 *
 * Signatures come back as "<domain signature>\r\n<user signature>\r\n": the
 * domain's signature on top, where stock verifiers (dkimpy verifies the
 * first field only) find the one whose key is in DNS.  The user signature
 * has d= the user's domain, s=anchor-user and i= the address: its key comes
 * from the key server's /v1/addresses/{i}, not from DNS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pki/name.h"
#include "pki/jws.h"
#include "relay.h"
#include "signer_proto.h"

#define CLIENT_TIMEOUT_MS 5000

/* The pool, the deadline and the replacing of a broken connection are lib/core/frame's. */
struct relay_signer_client {
	struct frame_client *fc;
};

struct relay_signer_client *relay_signer_client_new(const char *socket_path, struct err *e)
{
	struct relay_signer_client *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	if ((c->fc = frame_client_new(socket_path, "signer", CLIENT_TIMEOUT_MS, e)) == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void relay_signer_client_free(struct relay_signer_client *c)
{
	if (c == NULL)
		return;
	frame_client_free(c->fc);
	free(c);
}

/* One request and its answer: 0 with *ans (fields in *buf, free it) holding nfields fields. */
static int call(struct relay_signer_client *c, enum signer_op op, const struct frame_field *f,
                int n, int nfields, struct frame_msg *ans, uint8_t **buf, struct err *e)
{
	return frame_client_call(c->fc, (uint8_t)op, f, n, nfields, ans, buf, e);
}

/* ---------------------------------------------------------------- the API */

/* name lowercased into out, then checked as a domain (user 0) or an address. */
static int lower_name(const char *name, int user, char *out, size_t cap, struct err *e)
{
	size_t k;

	if (name == NULL || strlen(name) >= cap)
		return err_set(e, ERR_INPUT, "bad_name", "a missing or too long name");
	for (k = 0; name[k]; k++)
		out[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + 32 : name[k]);
	out[k] = '\0';
	if (user && strchr(out, '/') != NULL)
		return err_set(e, ERR_INPUT, "bad_name", "an address with '/'");
	return user ? name_check_address(out, e) : name_check_domain(out, e);
}

/* The selector and algorithm of domain's key. */
static int domain_info(struct relay_signer_client *c, const char *domain, char *sel,
                       enum dkim_alg *alg, struct err *e)
{
	struct frame_field f = frame_str(domain);
	struct frame_msg ans;
	uint8_t *buf;
	char a[32];
	int rc = -1;

	if (call(c, SIGNER_OP_DOMAIN, &f, 1, 2, &ans, &buf, e) < 0)
		return -1;
	if (frame_field_str(&ans.f[0], sel, DKIM_SELECTOR_MAX, e) == 0 &&
	    frame_field_str(&ans.f[1], a, sizeof(a), e) == 0 && dkim_alg_parse(a, alg) == 0)
		rc = 0;
	else
		err_set(e, ERR_TEMP, "signer_garbage", "the signer's key description is garbled");
	free(buf);
	return rc;
}

int relay_signer_has_domain(struct relay_signer_client *c, const char *domain, struct err *e)
{
	char dom[DKIM_DOMAIN_MAX], sel[DKIM_SELECTOR_MAX];
	enum dkim_alg alg;
	struct err why = {0};

	if (lower_name(domain, 0, dom, sizeof(dom), &why) < 0)
		return 0; /* not a domain name: the signer holds no key for it */
	if (domain_info(c, dom, sel, &alg, e) == 0)
		return 1;
	if (e->kind != ERR_NOTFOUND)
		return -1;
	err_clear(e);
	return 0;
}

/* The algorithm of the user's key; ERR_NOTFOUND when the signer has none. */
static int user_info(struct relay_signer_client *c, const char *addr, enum dkim_alg *alg,
                     struct err *e)
{
	struct frame_field f = frame_str(addr);
	struct frame_msg ans;
	uint8_t *buf;
	char a[32];
	int rc = -1;

	if (call(c, SIGNER_OP_USER, &f, 1, 1, &ans, &buf, e) < 0)
		return -1;
	if (frame_field_str(&ans.f[0], a, sizeof(a), e) == 0 && dkim_alg_parse(a, alg) == 0)
		rc = 0;
	else
		err_set(e, ERR_TEMP, "signer_garbage", "the signer's key description is garbled");
	free(buf);
	return rc;
}

/* One DKIM-Signature field: prepared here, signed by the signer (op, name), finished here. */
static char *sign_one(struct relay_signer_client *c, enum signer_op op, const char *name,
                      const char *msg, size_t len, const struct dkim_sign_opts *o,
                      enum dkim_alg alg, struct err *e)
{
	struct dkim_sign_prep p = {0};
	struct frame_field f[3];
	struct frame_msg ans;
	uint8_t *buf = NULL;
	char *out = NULL;

	if (dkim_sign_prepare(msg, len, o, alg, &p, e) < 0)
		goto out;
	if (p.datalen > SIGNER_MAX_DATA) {
		err_set(e, ERR_TOOBIG, "headers_too_big", "the signed header fields are too large");
		goto out;
	}
	f[0] = frame_str(name);
	f[1] = frame_str(dkim_alg_name(alg));
	f[2].p = (const uint8_t *)p.data;
	f[2].len = p.datalen;
	if (call(c, op, f, 3, 1, &ans, &buf, e) < 0)
		goto out;
	out = dkim_sign_finish(&p, ans.f[0].p, ans.f[0].len, e);
out:
	free(buf);
	dkim_sign_prep_clear(&p);
	return out;
}

/* The user's signature, or NULL with *e clear when the signer has no usable key for user. */
static char *sign_user(struct relay_signer_client *c, const char *user, const char *msg, size_t len,
                       time_t now, struct err *e)
{
	char addr[SIGNER_NAME_MAX];
	struct dkim_sign_opts o = {.s = SIGNER_USER_SELECTOR, .now = now};
	enum dkim_alg alg;
	struct err why = {0};

	if (lower_name(user, 1, addr, sizeof(addr), &why) < 0)
		return NULL; /* no key file can be named after it */
	if (user_info(c, addr, &alg, &why) < 0) {
		/* No key, or one the signer will not use (it logs why): the domain signature
		 * stands. */
		if (why.kind == ERR_NOTFOUND || why.kind == ERR_UNPROC ||
		    why.kind == ERR_FORBIDDEN || why.kind == ERR_INPUT)
			return NULL;
		*e = why;
		return NULL;
	}
	o.d = strchr(addr, '@') + 1;
	o.i = addr;
	return sign_one(c, SIGNER_OP_SIGN_USER, addr, msg, len, &o, alg, e);
}

int relay_signer_sign(struct relay_signer_client *c, const char *msg, size_t len,
                      const char *domain, const char *user, char **fields, struct err *e)
{
	char dom[DKIM_DOMAIN_MAX], sel[DKIM_SELECTOR_MAX];
	struct dkim_sign_opts o = {.now = time(NULL)};
	char *dsig = NULL, *usig = NULL;
	struct err why = {0};
	enum dkim_alg alg;
	int rc = -1;

	*fields = NULL;
	if (lower_name(domain, 0, dom, sizeof(dom), &why) < 0)
		return err_set(e, ERR_NOTFOUND, "no_signing_key", "no signing key for %.100s: %s",
		               domain ? domain : "(none)", why.msg);
	if (domain_info(c, dom, sel, &alg, e) < 0)
		return -1; /* ERR_NOTFOUND no_signing_key from the signer */
	o.d = dom;
	o.s = sel;
	if ((dsig = sign_one(c, SIGNER_OP_SIGN_DOMAIN, dom, msg, len, &o, alg, e)) == NULL)
		goto out;
	if (user != NULL && *user) {
		usig = sign_user(c, user, msg, len, o.now, e);
		if (usig == NULL && e->kind != ERR_NONE)
			goto out;
	}
	if (asprintf(fields, "%s\r\n%s%s", dsig, usig ? usig : "", usig ? "\r\n" : "") < 0) {
		*fields = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(dsig);
	free(usig);
	return rc;
}

/* The report chain the signer holds. */
static int report_chain(struct relay_signer_client *c, X509 **chain, int *n, struct err *e)
{
	struct frame_msg ans;
	uint8_t *buf;
	BIO *bio;
	X509 *x;

	*n = 0;
	if (call(c, SIGNER_OP_REPORT_CHAIN, NULL, 0, 1, &ans, &buf, e) < 0)
		return -1;
	bio = BIO_new_mem_buf(ans.f[0].p, (int)ans.f[0].len);
	while (bio != NULL && *n < JWS_MAX_CHAIN &&
	       (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		chain[(*n)++] = x;
	BIO_free(bio);
	free(buf);
	if (*n == 0)
		return err_set(e, ERR_TEMP, "signer_garbage",
		               "the signer's report chain is garbled");
	return 0;
}

int relay_signer_sign_jws(struct relay_signer_client *c, const char *payload, const char *typ,
                          char **jws, struct err *e)
{
	X509 *chain[JWS_MAX_CHAIN];
	struct frame_field f;
	struct frame_msg ans;
	uint8_t *buf = NULL;
	char *in = NULL;
	int n = 0, rc = -1;

	*jws = NULL;
	if (payload == NULL)
		return err_set(e, ERR_INPUT, "bad_request", "no payload");
	if (report_chain(c, chain, &n, e) < 0)
		return -1;
	in = jws_signing_input(payload, strlen(payload), jws_alg_name(X509_get0_pubkey(chain[0])),
	                       chain, n, typ, e);
	if (in == NULL)
		goto out;
	if (strlen(in) > SIGNER_MAX_DATA) {
		err_set(e, ERR_TOOBIG, "payload_too_big", "the object to sign is too large");
		goto out;
	}
	f = frame_str(in);
	if (call(c, SIGNER_OP_SIGN_REPORT, &f, 1, 1, &ans, &buf, e) < 0)
		goto out;
	if ((*jws = jws_assemble(in, ans.f[0].p, ans.f[0].len, e)) != NULL)
		rc = 0;
out:
	for (int k = 0; k < n; k++)
		X509_free(chain[k]);
	free(in);
	free(buf);
	return rc;
}

int relay_signer_decrypt(struct relay_signer_client *c, const char *domain, const char *msg,
                         size_t len, char **plain, size_t *plen, char fpr[80], struct err *e)
{
	char dom[DKIM_DOMAIN_MAX];
	struct frame_field f[2];
	struct frame_msg ans;
	uint8_t *buf = NULL;
	int rc = -1;

	*plain = NULL;
	*plen = 0;
	if (lower_name(domain, 0, dom, sizeof(dom), e) < 0)
		return -1;
	if (len == 0 || len > SIGNER_MAX_DATA)
		return err_set(e, ERR_TOOBIG, "too_big",
		               "a message of %zu bytes is over what the "
		               "signer decrypts (%d)",
		               len, SIGNER_MAX_DATA);
	f[0] = frame_str(dom);
	f[1].p = (const uint8_t *)msg;
	f[1].len = len;
	if (call(c, SIGNER_OP_DECRYPT, f, 2, 2, &ans, &buf, e) < 0)
		return -1;
	if (frame_field_str(&ans.f[1], fpr, 80, e) == 0 && (*plain = malloc(ans.f[0].len + 1))) {
		memcpy(*plain, ans.f[0].p, ans.f[0].len);
		(*plain)[ans.f[0].len] = '\0';
		*plen = ans.f[0].len;
		rc = 0;
	} else if (e->kind == ERR_NONE) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	free(buf);
	return rc;
}
