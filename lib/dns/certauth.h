/*
 * certauth.h - may this signed request speak for this name?  The one check every
 * relying party makes before a certificate authenticates anything (PROTOCOL.md §9.1):
 * the relay's control API, the reputation service's reports, delisting requests and
 * federation feeds.
 *
 * certauth_verify_jws() answers in five steps, all of them, always:
 *
 *   1. pin     the anchored domain is discovered (lib/discover: DNS pins, verified
 *              domain object); a domain without an anchor cannot sign
 *   2. chain   the JWS's x5c chain verifies up to a root with one of those pins and
 *              the signature verifies with the leaf's key (lib/jws)
 *   3. leaf    the leaf is not a CA (an issuer cannot act as a user)
 *   4. name    CERTAUTH_ADDRESS: the leaf's rfc822Name is exactly the address;
 *              CERTAUTH_IN_DOMAIN: its dNSName (or its rfc822Name's domain) lies
 *              inside the domain
 *   5. status  the domain's own key server is asked for the certificate by its
 *              fingerprint (GET /v1/fingerprints/{fpr}, §3.4): only "current"
 *              passes; "revoked" and "superseded" (the name enrolled a newer key)
 *              and a certificate the key server does not know are refused
 *
 * Status answers are kept in a cache owned by the struct certauth (never a process
 * global): at most max_entries, each for ttl seconds (monotonic clock); when it is
 * full the oldest entry goes.  Only answers are cached, never failures to get one.
 *
 * When the key server cannot be asked (no answer, an error, an answer that does not
 * describe this certificate) the request is refused, not waved through: ERR_TEMP
 * "key_status_unavailable" (503, with Retry-After CERTAUTH_RETRY_AFTER).  A
 * security product fails closed for authentication; the client retries.
 *
 * A struct certauth is safe to share between threads: the cache has its own lock,
 * never held across a network round trip.
 */
#ifndef ANCHOR_CERTAUTH_H
#define ANCHOR_CERTAUTH_H

#include <stddef.h>
#include <time.h>

#include "dns/discover.h"
#include "core/err.h"
#include "pki/jws.h"

#define CERTAUTH_TTL_DEFAULT 60   /* seconds a status answer is reused */
#define CERTAUTH_MAX_DEFAULT 4096 /* status answers kept */
#define CERTAUTH_RETRY_AFTER 30   /* seconds, for the 503 when the key server is away */
#define CERTAUTH_NAME_MAX 320

enum certauth_rule {
	CERTAUTH_ADDRESS = 0, /* the signer must be this address (a user acting for itself) */
	CERTAUTH_IN_DOMAIN,   /* the signer must be a host or address inside this domain */
};

/* What the signature must prove. */
struct certauth_want {
	const char *name; /* the address (CERTAUTH_ADDRESS) or the domain, lowercase */
	enum certauth_rule rule;
	/* The error code when the domain has no usable anchor (403); NULL: "not_anchored". */
	const char *unanchored_code;
};

struct certauth_config {
	long long ttl;      /* seconds; 0: every request asks the key server */
	size_t max_entries; /* 0: CERTAUTH_MAX_DEFAULT */
};

/*
 * The network, replaceable for the unit tests.  discover: as discover_domain().
 * keyserver_get: GET path from the domain's key server; *body malloc'd; a 404 is
 * ERR_NOTFOUND, anything else that is not an answer ERR_TEMP.  now: monotonic
 * seconds (NULL: CLOCK_MONOTONIC).
 */
struct certauth_net {
	int (*discover)(void *ctx, const char *domain, struct discover_result **out, struct err *e);
	int (*keyserver_get)(void *ctx, const struct discover_result *d, const char *path,
	                     char **body, struct err *e);
	time_t (*now)(void *ctx);
	void *ctx;
};

struct certauth;

/* A checker over disc (borrowed: it must outlive the checker). */
struct certauth *certauth_new(const struct certauth_config *c, struct discover_ctx *disc,
                              struct err *e);
void certauth_free(struct certauth *a); /* accepts NULL */
/* Use net instead of discovery and HTTPS (tests); empties the cache. */
void certauth_set_net(struct certauth *a, const struct certauth_net *net);
void certauth_flush(struct certauth *a);
/* Status answers held now (never more than max_entries). */
size_t certauth_cache_size(struct certauth *a);

/*
 * Verify text (a flattened JWS) as signed by a current certificate that speaks for
 * want.  On success *out holds the verified JWS (caller frees with
 * jws_verified_free) and signer the leaf's name (lowercase).  Errors:
 *   ERR_INPUT "bad_jws"; ERR_UNPROC "jws_signature", "pin_mismatch" (lib/jws);
 *   ERR_FORBIDDEN want.unanchored_code: the domain publishes no usable anchor;
 *   ERR_TEMP "discovery_failed": the anchor cannot be checked now;
 *   ERR_FORBIDDEN "wrong_signer" (CERTAUTH_ADDRESS) / "signer_outside_domain"
 *     (CERTAUTH_IN_DOMAIN): the leaf is a CA or names someone else;
 *   ERR_FORBIDDEN "key_revoked", "key_superseded", "key_unknown";
 *   ERR_TEMP "key_status_unavailable": the key server cannot be asked now.
 */
int certauth_verify_jws(struct certauth *a, const char *text, size_t len,
                        const struct certauth_want *want, struct jws_verified *out,
                        char signer[CERTAUTH_NAME_MAX], struct err *e);

#endif
