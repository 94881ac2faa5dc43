/*
 * tls_policy.h - the one TLS policy of every listener, whichever TLS library
 * serves it: the HTTPS daemons (libmicrohttpd over GnuTLS) and the relay's
 * STARTTLS (OpenSSL) get it from the same three settings.
 *
 *   tls_profile  modern        TLS 1.3 only (Mozilla's "modern")
 *                intermediate  TLS 1.2 and 1.3, ECDHE key exchange and AEAD
 *                              suites only (Mozilla's "intermediate", without
 *                              its DHE suites); the default
 *   tls_ciphers  unset (or empty), or a list from AES-128-GCM, AES-256-GCM,
 *                CHACHA20-POLY1305 (':' or ',' between), in the server's order
 *                of preference; each names the TLS 1.3 suite and the TLS 1.2
 *                ECDHE-ECDSA and ECDHE-RSA suites with that cipher
 *   tls_groups   unset (or empty), or a list from X25519, X448, P-256, P-384, P-521;
 *                unset: X25519:P-256
 *
 * The names are this module's own, not either library's, so that one value
 * means the same on every listener; anything else (a CBC or non-ECDHE suite, a
 * library's own syntax) is a configuration error that -n reports.  Both
 * libraries are asked, when the policy is made, whether they take what it maps
 * to, so that a library built without a cipher fails at -n too.
 *
 * Every policy also has: the server's order of preference, no renegotiation
 * (TLS 1.2 clients asking for one are refused; TLS 1.3 has none), no
 * compression, and the fallback SCSV (RFC 7507) honoured, which both libraries
 * do by themselves once the versions are bounded.
 */
#ifndef ANCHOR_TLS_POLICY_H
#define ANCHOR_TLS_POLICY_H

#include <stddef.h>

#include "core/conf.h"
#include "core/err.h"

/* The settings as a daemon's configuration holds them (owned by its table). */
struct tls_policy_conf {
	char *profile;
	char *ciphers;
	char *groups;
};

/* The three parameters, for a daemon's conf_param table; at is the offset of the
 * struct tls_policy_conf in its settings struct (offsetof(settings, field)). */
#define TLS_POLICY_CONF_PARAMS(at)                                                                 \
	{"tls_profile",                                                                            \
	 CONF_STR,                                                                                 \
	 "intermediate",                                                                           \
	 0,                                                                                        \
	 0,                                                                                        \
	 (at) + offsetof(struct tls_policy_conf, profile),                                         \
	 "modern (TLS 1.3 only) or intermediate (TLS 1.2 and 1.3, ECDHE and AEAD suites only)"},   \
	    {"tls_ciphers",                                                                        \
	     CONF_STR,                                                                             \
	     NULL,                                                                                 \
	     0,                                                                                    \
	     0,                                                                                    \
	     (at) + offsetof(struct tls_policy_conf, ciphers),                                     \
	     "AEAD ciphers in order of preference, from AES-128-GCM, AES-256-GCM, "                \
	     "CHACHA20-POLY1305; unset: all three in that order"},                                 \
	{                                                                                          \
		"tls_groups", CONF_STR, NULL, 0, 0,                                                \
		    (at) + offsetof(struct tls_policy_conf, groups),                               \
		    "key exchange groups in order of preference, from X25519, X448, P-256, "       \
		    "P-384, "                                                                      \
		    "P-521; unset: X25519:P-256"                                                   \
	}

#define TLS_POLICY_TLS12 0x0303
#define TLS_POLICY_TLS13 0x0304

/* What the settings map to, for either library. */
struct tls_policy {
	int min_version; /* TLS_POLICY_TLS12 or TLS_POLICY_TLS13 */
	int max_version;
	char gnutls[512];       /* a GnuTLS priority string */
	char ossl_ciphers[512]; /* OpenSSL's TLS 1.2 cipher list */
	char ossl_suites[128];  /* OpenSSL's TLS 1.3 ciphersuites */
	char ossl_groups[64];   /* OpenSSL's groups list */
};

/* The policy of c (NULL: every default), checked with both libraries; -1 with an
 * ERR_INPUT "bad_config" error that names the setting and its allowed values. */
int tls_policy_make(struct tls_policy *p, const struct tls_policy_conf *c, struct err *e);

/* Applies p to an OpenSSL context (an SSL_CTX *): versions, suites, groups and the
 * options every listener shares. */
int tls_policy_apply_openssl(const struct tls_policy *p, void *ssl_ctx, struct err *e);

#endif
