/*
 * gateway_decrypt.c - inbound gateway decryption (PROTOCOL.md §12.11).
 *
 * A domain whose mail is encrypted to a corporate or group key (§5.5) may hand those
 * keys to its relay's signer (gateway_decrypt_keys): mail to that domain that arrives as
 * S/MIME enveloped data is then decrypted before it is queued, and says so in its own
 * X-Anchor-Decrypted field.  The keys stay in the signer; this side only decides, sends
 * the message there and puts the answer together.  Nothing here refuses a message: one
 * that cannot be decrypted goes on as it came, marked "failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "mail/header.h"
#include "relayd.h"

#define DECRYPTED_FIELD RELAYD_DECRYPTED_FIELD

/* Whether gateway_decrypt_keys names domain (its entries are "domain:key:cert"). */
static int domain_decrypts(const char *spec, const char *domain)
{
	size_t n = strlen(domain);

	for (const char *p = spec; p != NULL && *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		if (strncasecmp(p, domain, n) == 0 && p[n] == ':')
			return 1;
		p = strchr(p, ',');
	}
	return 0;
}

/* The one domain of every recipient, when it decrypts; NULL otherwise. */
static const char *decrypting_domain(const struct relay_settings *s, char *const *rcpts,
                                     size_t nrcpt)
{
	const char *dom = NULL;

	for (size_t i = 0; i < nrcpt; i++) {
		const char *at = strrchr(rcpts[i], '@');
		if (at == NULL || (dom != NULL && strcasecmp(dom, at + 1) != 0))
			return NULL; /* several domains: each would need its own copy */
		dom = at + 1;
	}
	return dom != NULL && domain_decrypts(s->gateway_decrypt_keys, dom) ? dom : NULL;
}

/* The message's own Content-Type says S/MIME enveloped (or auth-enveloped) data. */
static int is_enveloped(const char *msg, size_t len)
{
	struct mail_field f;
	size_t n = 0;
	char *v;
	int yes;

	if (mail_header_find(msg, len, "Content-Type", &f) != 1 ||
	    (v = mail_field_unfold(&f, &n)) == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		v[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
	yes = strstr(v, "pkcs7-mime") != NULL && strstr(v, "enveloped-data") != NULL;
	free(v);
	return yes;
}

/* The outer header without its Content-* fields, then the inner entity. */
static char *assemble(const char *msg, size_t len, const char *plain, size_t plen, const char *fpr,
                      size_t *outlen)
{
	struct mail_header h;
	struct mail_field f;
	size_t o, start = 0, cap = len + plen + 256;
	char *out = malloc(cap);

	if (out == NULL)
		return NULL;
	o = (size_t)snprintf(out, cap, "%s: gateway; cert=%s\r\n", DECRYPTED_FIELD, fpr);
	mail_header_init(&h, msg, len);
	while (mail_header_next(&h, &f) == 1) {
		if (!(f.nlen > 8 && strncasecmp(f.raw, "Content-", 8) == 0)) {
			memcpy(out + o, msg + start, f.end - start);
			o += f.end - start;
		}
		start = f.end;
	}
	memcpy(out + o, plain, plen);
	o += plen;
	out[o] = '\0';
	*outlen = o;
	return out;
}

static char *mark_failed(const char *msg, size_t len, const char *code, size_t *outlen)
{
	char head[160];
	int n = snprintf(head, sizeof(head), "%s: failed; reason=%.60s\r\n", DECRYPTED_FIELD, code);
	char *out = n > 0 ? malloc((size_t)n + len + 1) : NULL;

	if (out == NULL)
		return NULL;
	memcpy(out, head, (size_t)n);
	memcpy(out + n, msg, len);
	out[(size_t)n + len] = '\0';
	*outlen = (size_t)n + len;
	return out;
}

char *relayd_gateway_decrypt(struct relayd_conn *c, const char *msg, size_t len, size_t *outlen)
{
	const char *dom = decrypting_domain(c->d->s, c->rcpts, c->nrcpt);
	char fpr[80], *plain = NULL, *out;
	size_t plen = 0;
	struct err e = {0};

	if (dom == NULL || !is_enveloped(msg, len))
		return NULL;
	if (relay_signer_decrypt(c->d->signer, dom, msg, len, &plain, &plen, fpr, &e) < 0) {
		log_info(NULL,
		         "conn %lu: gateway decryption for %s failed: %s (%s); delivered as "
		         "it came",
		         c->id, dom, e.msg, e.code);
		return mark_failed(msg, len, e.code[0] ? e.code : "internal", outlen);
	}
	out = assemble(msg, len, plain, plen, fpr, outlen);
	OPENSSL_cleanse(plain, plen);
	free(plain);
	if (out != NULL)
		log_info(NULL, "conn %lu: decrypted for %s with %s", c->id, dom, fpr);
	return out;
}
