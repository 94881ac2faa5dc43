/*
 * renew_policy.h - renewal by the current key (PROTOCOL.md §5.3): the signed
 * request's payload and the domain's limits on when a certificate may be
 * renewed.  Pure: no database, no clock (the caller passes "now"), so the
 * rules can be tested and fuzzed on their own.  issue.c applies them inside
 * the signer.
 */
#ifndef KS_RENEW_POLICY_H
#define KS_RENEW_POLICY_H

#include <jansson.h>

#include "core/err.h"

#define KS_RENEW_TYPE "anchor-renew-request"
#define KS_RENEW_JWS_TYP "anchor-renew-request+jws"

/* The limits, from the settings (renew_window, renew_min_interval, renew_max_lifetime). */
struct ks_renew_policy {
	long long window;       /* seconds before notAfter renewal opens; 0: a third of the
	                         * current certificate's lifetime */
	long long min_interval; /* seconds a certificate must have been current */
	long long max_lifetime; /* seconds a renewed certificate may live; 0: cert_days */
	long long cert_days;    /* the server's validity of a new certificate */
	long long own_window;   /* the domain's own window, used when shorter; 0: none */
};

/* A domain's own limits (its admin sets them; PUT /v1/domains/{d}/renewal), in seconds;
 * KS_RENEW_UNSET: the server's.  The server's limits bound them: a domain may open
 * renewal later, require a longer interval and issue shorter certificates, never the
 * opposite. */
#define KS_RENEW_UNSET (-1LL)
struct ks_renew_limits {
	long long window, min_interval, max_lifetime;
};

/* The limits that apply to a domain: each of its own, held within the server's
 * (*server), or the server's where it has none. */
void ks_renew_policy_for(const struct ks_renew_policy *server, const struct ks_renew_limits *dom,
                         struct ks_renew_policy *out);

/*
 * Can an admin set these limits (KS_RENEW_UNSET members are left to the server)?
 * ERR_INPUT "renew_limit" naming the member and the server's bound when one is looser
 * than the server allows (window longer than a non-zero renew_window, min_interval
 * shorter than renew_min_interval, max_lifetime longer than renew_max_lifetime or
 * cert_days), or out of range (window at least 1s, max_lifetime at least 1d, none
 * beyond 825 days).
 */
int ks_renew_limits_check(const struct ks_renew_policy *server, const struct ks_renew_limits *dom,
                          struct err *e);

/* What the policy looks at: the current certificate, in Unix seconds. */
struct ks_renew_state {
	long long now;
	long long not_before, not_after;
	long long issued_at; /* when the key server issued it (not the backdated notBefore) */
};

/* The signed payload, checked; the strings are borrowed from the JSON object. */
struct ks_renew_request {
	const char *name;    /* the address or host of the certificate being renewed */
	const char *purpose; /* smime, mta, keyserver or signing */
	const char *csr;     /* PEM: the new key's proof of possession */
	long long issued;    /* when the holder signed it */
};

/*
 * Check the payload of a renewal request signed at p.issued against now:
 * {"type": "anchor-renew-request", "name", "purpose", "csr", "issued"} and
 * nothing else.  ERR_INPUT "bad_request" (shape), "stale_request" (issued
 * more than KS_PAYLOAD_SKEW seconds from now, payload.h).
 */
int ks_renew_request_parse(const json_t *payload, long long now, struct ks_renew_request *out,
                           struct err *e);

/* Seconds before notAfter from which renewal is allowed. */
long long ks_renew_window(const struct ks_renew_policy *p, const struct ks_renew_state *s);

/*
 * May the current certificate be renewed now?  ERR_FORBIDDEN "cert_expired"
 * (enroll again with a token), ERR_CONFLICT "renew_too_early" (not inside the
 * window yet; the message says from when), ERR_RATE "renew_too_often"
 * (current for less than min_interval).
 */
int ks_renew_check(const struct ks_renew_policy *p, const struct ks_renew_state *s, struct err *e);

/* Days of validity of the renewed certificate: cert_days, capped by max_lifetime (at
 * least one day). */
int ks_renew_days(const struct ks_renew_policy *p);

#endif
