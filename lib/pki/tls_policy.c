/*
 * tls_policy.c - the TLS settings mapped to a GnuTLS priority string and to
 * OpenSSL's context settings; see tls_policy.h.
 */
#include "pki/tls_policy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* One cipher under each library's names: GnuTLS's cipher (for both versions), the
 * OpenSSL TLS 1.3 suite and the OpenSSL TLS 1.2 suites (ECDHE only; ECDSA first, the
 * certificate type our deployments use). */
struct tls_policy_cipher {
	const char *name;
	const char *gnutls;
	const char *tls13;
	const char *tls12;
};

static const struct tls_policy_cipher tls_policy_ciphers[] = {
    {"AES-128-GCM", "+AES-128-GCM", "TLS_AES_128_GCM_SHA256",
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"},
    {"AES-256-GCM", "+AES-256-GCM", "TLS_AES_256_GCM_SHA384",
     "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"},
    {"CHACHA20-POLY1305", "+CHACHA20-POLY1305", "TLS_CHACHA20_POLY1305_SHA256",
     "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"},
};

/* One group: its name here (and OpenSSL's), then GnuTLS's. */
struct tls_policy_group {
	const char *name;
	const char *gnutls;
};

static const struct tls_policy_group tls_policy_groups[] = {
    {"X25519", "+GROUP-X25519"},   {"X448", "+GROUP-X448"},       {"P-256", "+GROUP-SECP256R1"},
    {"P-384", "+GROUP-SECP384R1"}, {"P-521", "+GROUP-SECP521R1"},
};

#define TLS_POLICY_NCIPHERS (sizeof(tls_policy_ciphers) / sizeof(tls_policy_ciphers[0]))
#define TLS_POLICY_NGROUPS (sizeof(tls_policy_groups) / sizeof(tls_policy_groups[0]))
#define TLS_POLICY_DEFAULT_CIPHERS "AES-128-GCM:AES-256-GCM:CHACHA20-POLY1305"
#define TLS_POLICY_DEFAULT_GROUPS "X25519:P-256"
#define TLS_POLICY_ITEM_MAX 32

/* Appends "sep" (unless dst is empty) and src; -1 when it does not fit. */
static int tls_policy_cat(char *dst, size_t len, const char *sep, const char *src)
{
	size_t have = strlen(dst);
	int n = snprintf(dst + have, len - have, "%s%s", have > 0 ? sep : "", src);

	return n >= 0 && (size_t)n < len - have ? 0 : -1;
}

/*
 * Splits a ':' or ',' separated list of names (blanks around each ignored) into
 * indexes into names[0..n); each name once.  Returns how many, or -1 with e set.
 */
static int tls_policy_list(const char *setting, const char *value, const char *const *names,
                           size_t n, size_t idx[], struct err *e)
{
	char item[TLS_POLICY_ITEM_MAX];
	const char *p = value;
	size_t count = 0, len, i, k;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		len = strcspn(p, ":,");
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0 || len >= sizeof(item))
			return err_set(e, ERR_INPUT, "bad_config",
			               "%s = %s: expected names separated by ':'", setting, value);
		memcpy(item, p, len);
		item[len] = '\0';
		for (i = 0; i < n && strcasecmp(item, names[i]) != 0; i++)
			;
		if (i == n)
			return err_set(e, ERR_INPUT, "bad_config",
			               "%s: unknown or refused name '%s'", setting, item);
		for (k = 0; k < count; k++)
			if (idx[k] == i)
				return err_set(e, ERR_INPUT, "bad_config", "%s: '%s' named twice",
				               setting, item);
		idx[count++] = i;
		p += strcspn(p, ":,");
		if (*p == '\0')
			return (int)count;
		p++;
	}
}

static int tls_policy_versions(struct tls_policy *p, const char *profile, struct err *e)
{
	const char *v = profile != NULL ? profile : "intermediate";

	p->max_version = TLS_POLICY_TLS13;
	if (strcmp(v, "intermediate") == 0)
		p->min_version = TLS_POLICY_TLS12;
	else if (strcmp(v, "modern") == 0)
		p->min_version = TLS_POLICY_TLS13;
	else
		return err_set(e, ERR_INPUT, "bad_config",
		               "tls_profile = %s: must be modern (TLS 1.3 only) or intermediate "
		               "(TLS 1.2 and 1.3)",
		               v);
	return 0;
}

static int tls_policy_add_ciphers(struct tls_policy *p, const char *value, char *gnutls, size_t gl,
                                  struct err *e)
{
	const char *names[TLS_POLICY_NCIPHERS];
	size_t idx[TLS_POLICY_NCIPHERS], i;
	int n;

	for (i = 0; i < TLS_POLICY_NCIPHERS; i++)
		names[i] = tls_policy_ciphers[i].name;
	n = tls_policy_list("tls_ciphers",
	                    value != NULL && *value != '\0' ? value : TLS_POLICY_DEFAULT_CIPHERS,
	                    names, TLS_POLICY_NCIPHERS, idx, e);
	if (n < 0)
		return -1;
	for (i = 0; i < (size_t)n; i++) {
		const struct tls_policy_cipher *c = &tls_policy_ciphers[idx[i]];

		if (tls_policy_cat(gnutls, gl, ":", c->gnutls) < 0 ||
		    tls_policy_cat(p->ossl_suites, sizeof(p->ossl_suites), ":", c->tls13) < 0 ||
		    tls_policy_cat(p->ossl_ciphers, sizeof(p->ossl_ciphers), ":", c->tls12) < 0)
			return err_set(e, ERR_INTERNAL, "internal", "tls_ciphers: too long");
	}
	return 0;
}

static int tls_policy_add_groups(struct tls_policy *p, const char *value, char *gnutls, size_t gl,
                                 struct err *e)
{
	const char *names[TLS_POLICY_NGROUPS];
	size_t idx[TLS_POLICY_NGROUPS], i;
	int n;

	for (i = 0; i < TLS_POLICY_NGROUPS; i++)
		names[i] = tls_policy_groups[i].name;
	n = tls_policy_list("tls_groups",
	                    value != NULL && *value != '\0' ? value : TLS_POLICY_DEFAULT_GROUPS,
	                    names, TLS_POLICY_NGROUPS, idx, e);
	if (n < 0)
		return -1;
	for (i = 0; i < (size_t)n; i++) {
		const struct tls_policy_group *g = &tls_policy_groups[idx[i]];

		if (tls_policy_cat(gnutls, gl, ":", g->gnutls) < 0 ||
		    tls_policy_cat(p->ossl_groups, sizeof(p->ossl_groups), ":", g->name) < 0)
			return err_set(e, ERR_INTERNAL, "internal", "tls_groups: too long");
	}
	return 0;
}

/* GnuTLS is asked whether it takes the priority string it will be given. */
static int tls_policy_check_gnutls(const struct tls_policy *p, struct err *e)
{
	gnutls_priority_t prio;
	const char *where = NULL;
	int rc = gnutls_priority_init(&prio, p->gnutls, &where);

	if (rc != GNUTLS_E_SUCCESS)
		return err_set(e, ERR_INPUT, "bad_config",
		               "GnuTLS refuses the TLS policy at '%.40s': %s",
		               where != NULL ? where : "", gnutls_strerror(rc));
	gnutls_priority_deinit(prio);
	return 0;
}

/* OpenSSL is asked the same, on a context made for the purpose. */
static int tls_policy_check_openssl(const struct tls_policy *p, struct err *e)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int rc;

	if (ctx == NULL)
		return err_set(e, ERR_INTERNAL, "tls", "cannot create a TLS context");
	rc = tls_policy_apply_openssl(p, ctx, e);
	SSL_CTX_free(ctx);
	return rc;
}

int tls_policy_make(struct tls_policy *p, const struct tls_policy_conf *c, struct err *e)
{
	char ciphers[128] = "", groups[128] = "";
	int n;

	memset(p, 0, sizeof(*p));
	if (tls_policy_versions(p, c != NULL ? c->profile : NULL, e) < 0 ||
	    tls_policy_add_ciphers(p, c != NULL ? c->ciphers : NULL, ciphers, sizeof(ciphers), e) <
	        0 ||
	    tls_policy_add_groups(p, c != NULL ? c->groups : NULL, groups, sizeof(groups), e) < 0)
		return -1;
	/* From NORMAL (its signature algorithms, certificate types, safe renegotiation),
	 * everything else replaced: versions, ciphers, AEAD only, ECDHE only, groups. */
	n = snprintf(p->gnutls, sizeof(p->gnutls),
	             "NORMAL:%%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3%s:-CIPHER-ALL:%s:-MAC-ALL:"
	             "+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-ALL:%s",
	             p->min_version == TLS_POLICY_TLS12 ? ":+VERS-TLS1.2" : "", ciphers, groups);
	if (n < 0 || (size_t)n >= sizeof(p->gnutls))
		return err_set(e, ERR_INTERNAL, "internal", "TLS policy: priority string too long");
	return tls_policy_check_gnutls(p, e) < 0 || tls_policy_check_openssl(p, e) < 0 ? -1 : 0;
}

int tls_policy_apply_openssl(const struct tls_policy *p, void *ssl_ctx, struct err *e)
{
	SSL_CTX *ctx = ssl_ctx;

	/* TLS 1.2 suites are set under either profile: with modern they are never used,
	 * and a context that keeps OpenSSL's defaults would be a trap for a later edit. */
	if (SSL_CTX_set_min_proto_version(ctx, p->min_version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, p->max_version) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, p->ossl_ciphers) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, p->ossl_suites) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, p->ossl_groups) != 1) {
		err_set(e, ERR_INPUT, "bad_config", "OpenSSL refuses the TLS policy: %s",
		        ERR_reason_error_string(ERR_get_error()));
		ERR_clear_error();
		return -1;
	}
	/* Server preference; no renegotiation (client-initiated is already off by default in
	 * OpenSSL 3, this refuses it explicitly for every caller); no compression (CRIME).
	 * The fallback SCSV is honoured by OpenSSL without an option. */
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_NO_COMPRESSION);
	return 0;
}
