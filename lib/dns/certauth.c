/*
 * certauth.c - the one certificate check of every relying party (see certauth.h):
 * pin, chain, leaf, name, and the certificate's current status from its domain's
 * key server, with a bounded cache of status answers.
 */
#include "dns/certauth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/x509v3.h>

#include "core/ttlcache.h"
#include "pki/cert.h"
#include "pki/cert_san.h"
#include "pki/name.h"

#define KEY_MAX (DNS_NAME_MAX + CERT_FPR_LEN + 2)
#define DETAIL_MAX 120

/* What the key server said about one certificate. */
enum verdict { V_CURRENT = 0, V_SUPERSEDED, V_REVOKED, V_UNKNOWN };

/* A cached answer, under "<domain> <fingerprint>" in the cache. */
struct answer {
	enum verdict verdict;
	char detail[DETAIL_MAX]; /* when and why, for the refusal's message */
};

struct certauth {
	struct certauth_net net;
	struct discover_ctx *disc;
	long long ttl;
	struct ttlcache *cache;
};

/* ------------------------------------------------------------------ the cache */

static int answer_copy(const void *value, void *arg)
{
	memcpy(arg, value, sizeof(struct answer));
	return 0;
}

/* The cached verdict for key when it is still fresh: 1, else 0. */
static int cache_get(struct certauth *a, const char *key, time_t now, enum verdict *v,
                     char detail[DETAIL_MAX])
{
	struct answer an;

	if (!ttlcache_get(a->cache, key, (double)now, 0, answer_copy, &an))
		return 0;
	*v = an.verdict;
	memcpy(detail, an.detail, DETAIL_MAX);
	return 1;
}

/* Remember an answer; the oldest goes when the cache is full.  Out of memory only
 * means the next request asks again. */
static void cache_put(struct certauth *a, const char *key, time_t now, enum verdict v,
                      const char *detail)
{
	struct answer *an;

	if (a->ttl <= 0 || strlen(key) >= KEY_MAX || (an = calloc(1, sizeof(*an))) == NULL)
		return;
	an->verdict = v;
	snprintf(an->detail, sizeof(an->detail), "%s", detail);
	ttlcache_put(a->cache, key, an, (double)(now + (time_t)a->ttl), TTLCACHE_ANY_GEN);
}

void certauth_flush(struct certauth *a)
{
	if (a == NULL)
		return;
	ttlcache_clear(a->cache);
}

size_t certauth_cache_size(struct certauth *a)
{
	return ttlcache_count(a->cache);
}

/* ------------------------------------------------------------------ the real network */

static int net_discover(void *ctx, const char *domain, struct discover_result **out, struct err *e)
{
	struct certauth *a = ctx;

	return discover_domain(a->disc, domain, out, e);
}

/* GET path from the domain's key servers (discover_keyserver_get). */
static int net_keyserver_get(void *ctx, const struct discover_result *d, const char *path,
                             char **body, struct err *e)
{
	struct certauth *a = ctx;

	return discover_keyserver_get(a->disc, d, path, body, e);
}

static time_t mono_now(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* ------------------------------------------------------------------ life */

struct certauth *certauth_new(const struct certauth_config *c, struct discover_ctx *disc,
                              struct err *e)
{
	struct certauth *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	a->disc = disc;
	a->ttl = c != NULL && c->ttl >= 0 ? c->ttl : CERTAUTH_TTL_DEFAULT;
	/* One shard: a relying party checks a few certificates a second, not thousands. */
	a->cache = ttlcache_new(
	    c != NULL && c->max_entries > 0 ? c->max_entries : CERTAUTH_MAX_DEFAULT, 1, free);
	if (a->cache == NULL) {
		free(a);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	a->net = (struct certauth_net){net_discover, net_keyserver_get, mono_now, a};
	return a;
}

void certauth_free(struct certauth *a)
{
	if (a == NULL)
		return;
	ttlcache_free(a->cache);
	free(a);
}

void certauth_set_net(struct certauth *a, const struct certauth_net *net)
{
	a->net = *net;
	if (a->net.now == NULL)
		a->net.now = mono_now;
	certauth_flush(a);
}

/* ------------------------------------------------------------------ the checks */

/* Step 1: the pins of domain, from its verified anchor. */
static int anchor_of(struct certauth *a, const char *domain, const struct certauth_want *want,
                     struct discover_result **dr, struct err *e)
{
	const char *code = want->unanchored_code ? want->unanchored_code : "not_anchored";
	struct err de = {0};

	if (a->net.discover(a->net.ctx, domain, dr, &de) < 0) {
		if (err_is_temporary(de.kind) || de.kind == ERR_INTERNAL)
			return err_set(e, ERR_TEMP, "discovery_failed",
			               "the anchor of %s cannot be checked now (%s); retry later",
			               domain, de.msg);
		return err_set(e, ERR_FORBIDDEN, code, "%s has no usable anchor: %s", domain,
		               de.msg);
	}
	if ((*dr)->status != DISCOVER_ANCHORED)
		return err_set(e, ERR_FORBIDDEN, code,
		               "%s publishes no _anchor records: its keys cannot sign requests",
		               domain);
	return 0;
}

/* An IA5 name of a SAN as lowercase text; 0 when it is empty, too long or holds NUL. */
static int ia5_text(const ASN1_IA5STRING *s, char out[CERTAUTH_NAME_MAX])
{
	if (s == NULL || s->length <= 0 || s->length >= CERTAUTH_NAME_MAX ||
	    memchr(s->data, 0, (size_t)s->length) != NULL)
		return 0;
	for (int i = 0; i < s->length; i++)
		out[i] = (char)tolower(s->data[i]);
	out[s->length] = '\0';
	return 1;
}

/*
 * Steps 3 and 4.  CERTAUTH_ADDRESS: some rfc822Name or SmtpUTF8Mailbox is the address
 * (both canonical, pki/cert_san.c).
 * CERTAUTH_IN_DOMAIN: the first dNSName or rfc822Name lies inside the domain.
 */
static int leaf_speaks_for(X509 *leaf, const struct certauth_want *want,
                           char signer[CERTAUTH_NAME_MAX])
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	char name[CERTAUTH_NAME_MAX], want_addr[CERTAUTH_NAME_MAX];
	struct err ignore = {0};
	int ok = 0;

	signer[0] = '\0';
	if (want->rule == CERTAUTH_ADDRESS &&
	    name_canon_address(want->name, want_addr, sizeof(want_addr), &ignore) < 0)
		want_addr[0] = '\0';
	if (X509_check_ca(leaf) != 0) {
		GENERAL_NAMES_free(gens);
		return 0;
	}
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && !ok; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const char *at, *host;

		if (cert_san_entry_address(g, name, CERTAUTH_NAME_MAX, &ignore) == 1) {
			at = strrchr(name, '@'); /* rfc822Name or SmtpUTF8Mailbox, canonical */
			host = at != NULL ? at + 1 : name;
		} else if (g->type == GEN_DNS && want->rule == CERTAUTH_IN_DOMAIN &&
		           ia5_text(g->d.dNSName, name)) {
			host = name;
		} else {
			continue;
		}
		if (signer[0] == '\0')
			snprintf(signer, CERTAUTH_NAME_MAX, "%s", name);
		if (want->rule == CERTAUTH_ADDRESS) {
			ok = strcmp(name, want_addr) == 0;
		} else {
			ok = name_in_domain(host, want->name);
			break; /* the first name is the signer's */
		}
	}
	if (ok)
		snprintf(signer, CERTAUTH_NAME_MAX, "%s", name);
	GENERAL_NAMES_free(gens);
	return ok;
}

static int unavailable(struct err *e, const char *domain, const char *why)
{
	return err_set(e, ERR_TEMP, "key_status_unavailable",
	               "the status of the signing key cannot be checked with the key server of "
	               "%s now (%s); retry in %d seconds",
	               domain, why, CERTAUTH_RETRY_AFTER);
}

/* Read a certificate object (§3.2) that must describe the certificate fpr. */
static int parse_status(const char *body, const char *domain, const char *fpr, enum verdict *v,
                        char detail[DETAIL_MAX], struct err *e)
{
	json_t *o = json_loads(body, 0, NULL), *rev;
	const char *status = json_string_value(json_object_get(o, "status"));
	const char *got = json_string_value(json_object_get(o, "fingerprint"));
	const char *when;
	int rc = 0;

	detail[0] = '\0';
	if (!json_is_object(o) || status == NULL || got == NULL || strcasecmp(got, fpr) != 0) {
		json_decref(o);
		return unavailable(e, domain, "its answer does not describe this certificate");
	}
	if (strcmp(status, "current") == 0) {
		*v = V_CURRENT;
	} else if (strcmp(status, "superseded") == 0) {
		*v = V_SUPERSEDED;
		when = json_string_value(json_object_get(o, "superseded"));
		snprintf(detail, DETAIL_MAX, "since %.40s", when ? when : "an unknown time");
	} else if (strcmp(status, "revoked") == 0) {
		*v = V_REVOKED;
		rev = json_object_get(o, "revocation");
		when = json_string_value(json_object_get(rev, "time"));
		snprintf(detail, DETAIL_MAX, "%.40s, at %.40s",
		         json_string_value(json_object_get(rev, "reason"))
		             ? json_string_value(json_object_get(rev, "reason"))
		             : "unspecified",
		         when ? when : "an unknown time");
	} else {
		rc = unavailable(e, domain, "it gave an unknown status");
	}
	json_decref(o);
	return rc;
}

/* Step 5, over the network: what the domain's key server says about fpr. */
static int status_fetch(struct certauth *a, const struct discover_result *d, const char *fpr,
                        enum verdict *v, char detail[DETAIL_MAX], struct err *e)
{
	char path[CERT_FPR_LEN + 32], *body = NULL;
	struct err ne = {0};
	int rc;

	snprintf(path, sizeof(path), "/v1/fingerprints/%s", fpr);
	if (a->net.keyserver_get(a->net.ctx, d, path, &body, &ne) < 0) {
		free(body);
		if (ne.kind == ERR_NOTFOUND) {
			*v = V_UNKNOWN;
			detail[0] = '\0';
			return 0;
		}
		return unavailable(e, d->domain, ne.msg[0] ? ne.msg : "no answer");
	}
	rc = parse_status(body, d->domain, fpr, v, detail, e);
	free(body);
	return rc;
}

static int refuse_status(enum verdict v, const char *detail, const char *signer, const char *domain,
                         struct err *e)
{
	switch (v) {
	case V_CURRENT:
		return 0;
	case V_REVOKED:
		return err_set(e, ERR_FORBIDDEN, "key_revoked",
		               "the signing key of %.100s was revoked (%s): it authenticates "
		               "nothing any more",
		               signer, detail);
	case V_SUPERSEDED:
		return err_set(e, ERR_FORBIDDEN, "key_superseded",
		               "the signing key of %.100s was superseded by a newer one (%s): sign "
		               "with the current key",
		               signer, detail);
	default:
		return err_set(e, ERR_FORBIDDEN, "key_unknown",
		               "the key server of %s does not publish the signing key of %.100s",
		               domain, signer);
	}
}

static int status_check(struct certauth *a, const struct discover_result *d, X509 *leaf,
                        const char *signer, struct err *e)
{
	char fpr[CERT_FPR_LEN], key[KEY_MAX], detail[DETAIL_MAX];
	enum verdict v = V_UNKNOWN;
	time_t now = a->net.now(a->net.ctx);

	if (cert_fingerprint(leaf, fpr, e) < 0)
		return -1;
	snprintf(key, sizeof(key), "%s %s", d->domain, fpr);
	if (!cache_get(a, key, now, &v, detail)) {
		if (status_fetch(a, d, fpr, &v, detail, e) < 0)
			return -1; /* not cached: the next request asks again */
		cache_put(a, key, now, v, detail);
	}
	return refuse_status(v, detail, signer, d->domain, e);
}

int certauth_verify_jws(struct certauth *a, const char *text, size_t len,
                        const struct certauth_want *want, struct jws_verified *out,
                        char signer[CERTAUTH_NAME_MAX], struct err *e)
{
	const char *at = strrchr(want->name, '@');
	const char *domain = want->rule == CERTAUTH_ADDRESS && at != NULL ? at + 1 : want->name;
	struct discover_result *dr = NULL;
	const char *pins[DNS_MAX_PINS];
	int rc = -1;

	memset(out, 0, sizeof(*out));
	signer[0] = '\0';
	if (want->rule == CERTAUTH_ADDRESS && at == NULL)
		return err_set(e, ERR_INPUT, "bad_name", "'%.100s' is not an address", want->name);
	if (anchor_of(a, domain, want, &dr, e) < 0)
		goto out;
	for (int i = 0; i < dr->npins && i < DNS_MAX_PINS; i++)
		pins[i] = dr->pins[i];
	if (jws_verify(text, len, pins, dr->npins < DNS_MAX_PINS ? dr->npins : DNS_MAX_PINS, out,
	               e) < 0)
		goto out;
	if (!leaf_speaks_for(out->leaf, want, signer)) {
		if (want->rule == CERTAUTH_ADDRESS)
			err_set(e, ERR_FORBIDDEN, "wrong_signer",
			        "the request is not signed by a certificate of %s", want->name);
		else
			err_set(e, ERR_FORBIDDEN, "signer_outside_domain",
			        "the signing certificate (%.100s) does not belong to %s",
			        signer[0] ? signer : "no name", want->name);
		goto out;
	}
	rc = status_check(a, dr, out->leaf, signer, e);
out:
	if (rc < 0)
		jws_verified_free(out);
	discover_result_free(dr);
	return rc;
}
