/*
 * verify.c - DKIM verification with anchored and legacy keys.
 *
 * Every DKIM-Signature of a message is checked by lib/dkim; what this file
 * decides is where each key comes from and whether it may be believed:
 *
 *   - d= a legacy domain (no _anchor records): the TXT record at
 *     s._domainkey.d, as any DKIM verifier reads it (source DNS);
 *   - d= an anchored domain: GET /v1/domains/{d}/dkim/{s} from its key
 *     server (PROTOCOL.md §3.5).  The certificate must chain to the root the
 *     domain's DNS pins, be a signing certificate of the host the selector
 *     stands for (§8.1), carry the log entry of its issuance with an inclusion
 *     proof to a signed tree head that is consistent with the heads the relay
 *     has seen before (a fork is a failure), and not be revoked (a revoked
 *     key is a permerror "key_revoked").  The key record handed to lib/dkim is
 *     made from the certificate's public key (source ANCHOR);
 *   - s=anchor-user with i=<address> at an anchored domain: the user's own
 *     key, GET /v1/addresses/{i}: each current S/MIME certificate of the
 *     address that passes the same checks is tried (source USER).
 *
 * A key server or DNS server that times out or answers garbage gives a
 * temperror for that signature, no worse.  Keys (and permanent failures)
 * are cached for key_cache_ttl; temporary failures are not.  Every function
 * here may run on many worker threads at once: the cache and the
 * remembered tree heads are behind their own locks, and no lock is held
 * across a network round trip.
 *
 * The network is reached through struct relay_verify_net (the real one is
 * verify_net.c's) so that the unit tests can run every check offline
 * (relay_verifier_set_net).  What the results say about the message's
 * authors, and whether it is refused, is author.c's.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/x509v3.h>

#include "pki/cert.h"
#include "pki/cert_san.h"
#include "pki/name.h"
#include "dns/discover.h"
#include "mail/dkim.h"
#include "dns/dns.h"
#include "pki/merkle.h"
#include "core/ttlcache.h"
#include "relay.h"
#include "pki/tlog_client.h"

#define KEY_CACHE_MAX 8192  /* entries; the oldest goes when it is full */
#define KEY_CACHE_SHARDS 16 /* worker threads verify at once */
#define MAX_KEYS 8          /* certificates tried for one user signature */
#define OBSERVE_TRIES 3

/* The keys for one selector (or user), or the permanent reason there are none. */
struct keyset {
	enum relay_key_source source;
	char user[RELAY_ADDR_MAX];
	int n;
	char *rec[MAX_KEYS]; /* DKIM key records */
	struct err err;      /* n == 0: why */
};

struct relay_verifier {
	struct relay_verify_net net;
	struct discover_ctx *dctx;
	long long ttl;
	struct ttlcache *cache; /* struct keyset by selector or user */
	pthread_mutex_t heads_lock;
	struct tlog_store *heads; /* the newest tree head seen per domain */
};

/* ------------------------------------------------------------------ key sets */

static void keyset_clear(struct keyset *k)
{
	for (int i = 0; i < k->n; i++)
		free(k->rec[i]);
	memset(k, 0, sizeof(*k));
}

static int keyset_copy(struct keyset *dst, const struct keyset *src)
{
	*dst = *src;
	for (int i = 0; i < src->n; i++) {
		if ((dst->rec[i] = strdup(src->rec[i])) == NULL) {
			dst->n = i;
			keyset_clear(dst);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ the cache */

static time_t now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void keyset_free(void *k)
{
	keyset_clear(k);
	free(k);
}

static int keyset_copy_out(const void *value, void *arg)
{
	return keyset_copy(arg, value);
}

/* 1 and a copy in *out when key is cached and fresh. */
static int cache_get(struct relay_verifier *v, const char *key, struct keyset *out)
{
	return ttlcache_get(v->cache, key, (double)now_mono(), 0, keyset_copy_out, out);
}

static void cache_put(struct relay_verifier *v, const char *key, const struct keyset *ks)
{
	struct keyset *copy;

	if (v->ttl <= 0 || (copy = calloc(1, sizeof(*copy))) == NULL)
		return;
	if (keyset_copy(copy, ks) < 0) {
		free(copy);
		return; /* not cached: only slower */
	}
	ttlcache_put(v->cache, key, copy, (double)(now_mono() + v->ttl), TTLCACHE_ANY_GEN);
}

void relay_verifier_flush(struct relay_verifier *v)
{
	if (v == NULL)
		return;
	ttlcache_clear(v->cache);
}

/* ------------------------------------------------------------------ the verifier */

struct relay_verifier *relay_verifier_new(const struct relay_settings *s, struct err *e)
{
	char *heads_path = NULL;
	struct relay_verifier *v = calloc(1, sizeof(*v));
	int ms = s->lookup_timeout_ms > 0 ? (int)s->lookup_timeout_ms : 2000;
	struct discover_config c = {
	    .resolver = s->dns_server && *s->dns_server ? s->dns_server : NULL,
	    .trust_anchor_file =
	        s->dns_trust_anchor && *s->dns_trust_anchor ? s->dns_trust_anchor : NULL,
	    .cacert = s->keyserver_cacert && *s->keyserver_cacert ? s->keyserver_cacert : NULL,
	    .timeout_ms = ms,
	    .https_timeout_ms = 2 * ms,
	};

	if (v == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	pthread_mutex_init(&v->heads_lock, NULL);
	v->ttl = s->key_cache_ttl >= 0 ? s->key_cache_ttl : 300; /* 0: never reused */
	/* Heads are remembered across restarts (state_dir/log-heads.json), so that a key
	 * server cannot show a forked log to a relay that has just restarted. */
	if (s->state_dir != NULL && *s->state_dir != '\0' &&
	    asprintf(&heads_path, "%s/log-heads.json", s->state_dir) < 0)
		heads_path = NULL;
	if ((v->cache = ttlcache_new(KEY_CACHE_MAX, KEY_CACHE_SHARDS, keyset_free)) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (v->cache == NULL || (v->dctx = discover_new(&c, e)) == NULL ||
	    (v->heads = tlog_store_open(heads_path, e)) == NULL) {
		free(heads_path);
		relay_verifier_free(v);
		return NULL;
	}
	free(heads_path);
	relay_verify_net_real(&v->net, v->dctx);
	return v;
}

void relay_verifier_free(struct relay_verifier *v)
{
	if (v == NULL)
		return;
	ttlcache_free(v->cache);
	tlog_store_free(v->heads);
	discover_free(v->dctx);
	pthread_mutex_destroy(&v->heads_lock);
	free(v);
}

void relay_verifier_set_net(struct relay_verifier *v, const struct relay_verify_net *net)
{
	v->net = *net;
	relay_verifier_flush(v);
}

/* ------------------------------------------------------------------ the log */

/* A consistency proof fetched before the head store was locked. */
struct prefetch {
	int have;
	uint64_t first, second;
	int n;
	uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
};

static int prefetched(void *ctx, const char *domain, uint64_t first, uint64_t second,
                      uint8_t (*proof)[MERKLE_HASH_LEN], int *n, struct err *e)
{
	const struct prefetch *pf = ctx;

	if (!pf->have || pf->first != first || pf->second != second)
		return err_set(e, ERR_TEMP, "log_moved",
		               "the remembered head of %s changed meanwhile", domain);
	memcpy(proof, pf->proof, sizeof(pf->proof[0]) * (size_t)pf->n);
	*n = pf->n;
	return 0;
}

static int fetch_consistency(struct relay_verifier *v, const struct discover_result *d,
                             struct prefetch *pf, struct err *e)
{
	char path[DNS_NAME_MAX + 96], *body = NULL;
	json_t *doc;

	snprintf(path, sizeof(path), "/v1/domains/%s/log/consistency?first=%llu&second=%llu",
	         d->domain, (unsigned long long)pf->first, (unsigned long long)pf->second);
	if (v->net.keyserver_get(v->net.ctx, d, path, &body, e) < 0) {
		e->kind = ERR_TEMP;
		return -1;
	}
	doc = json_loads(body, 0, NULL);
	free(body);
	if (json_integer_value(json_object_get(doc, "first")) != (json_int_t)pf->first ||
	    json_integer_value(json_object_get(doc, "second")) != (json_int_t)pf->second ||
	    merkle_proof_from_json(json_object_get(doc, "proof"), pf->proof, &pf->n, e) < 0) {
		json_decref(doc);
		return err_set(e, ERR_TEMP, "keyserver_garbage",
		               "the key server of %s sent no usable consistency proof", d->domain);
	}
	json_decref(doc);
	pf->have = 1;
	return 0;
}

/* A verified head was seen: it must be consistent with the one remembered. */
static int observe_head(struct relay_verifier *v, const struct discover_result *d,
                        const struct tlog_head *head, struct err *e)
{
	for (int tries = 0; tries < OBSERVE_TRIES; tries++) {
		struct prefetch *pf = calloc(1, sizeof(*pf));
		const struct tlog_head *old;
		uint64_t old_size = 0;
		int have, rc;

		if (pf == NULL)
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		pthread_mutex_lock(&v->heads_lock);
		old = tlog_store_get(v->heads, head->domain);
		have = old != NULL;
		if (have)
			old_size = old->size;
		pthread_mutex_unlock(&v->heads_lock);
		if (have && old_size != head->size) {
			pf->first = old_size < head->size ? old_size : head->size;
			pf->second = old_size < head->size ? head->size : old_size;
			if (fetch_consistency(v, d, pf, e) < 0) {
				free(pf);
				return -1;
			}
		}
		pthread_mutex_lock(&v->heads_lock);
		rc = tlog_store_observe(v->heads, head, prefetched, pf, e);
		pthread_mutex_unlock(&v->heads_lock);
		free(pf);
		if (rc == 0 || strcmp(e->code, "log_moved") != 0)
			return rc;
		err_clear(e);
	}
	return err_set(e, ERR_TEMP, "log_moved", "the log head of %s kept changing", d->domain);
}

/* ------------------------------------------------------------------ certificate objects */

static int garbage(struct err *e, const struct discover_result *d, const char *what)
{
	return err_set(e, ERR_TEMP, "keyserver_garbage", "the key server of %s sent %s", d->domain,
	               what);
}

/* The purpose the log recorded for the certificate (the leaf is bound to it by
 * tlog_verify_cert's fingerprint check). */
static int logged_purpose_is(const json_t *cert, const char *purpose)
{
	const char *text = json_string_value(json_object_get(json_object_get(cert, "log"), "leaf"));
	json_t *leaf = text ? json_loads(text, 0, NULL) : NULL;
	const char *p = json_string_value(json_object_get(leaf, "purpose"));
	int ok = p != NULL && strcmp(p, purpose) == 0;

	json_decref(leaf);
	return ok;
}

/*
 * A certificate object of the domain d, to be believed: it chains to the pinned
 * root, its log entry is included in the signed head (head_text) and that head is
 * consistent with what was seen before, and the log recorded it with purpose.
 * *leaf receives the certificate.  Revocation is the caller's to check.
 */
static int check_cert_object(struct relay_verifier *v, const struct discover_result *d,
                             const json_t *cert, const char *head_text, const char *purpose,
                             X509 **leaf, struct err *e)
{
	const char *pem = json_string_value(json_object_get(cert, "certificate"));
	const char *pinv[DNS_MAX_PINS];
	struct tlog_head head = {0};
	int rc = -1;

	*leaf = NULL;
	if (pem == NULL || (*leaf = cert_from_pem(pem, strlen(pem), e)) == NULL)
		return garbage(e, d, "a certificate object without a readable certificate");
	if (d->root == NULL || d->issuer == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "discovery gave no verified root");
	if (cert_verify_chain(*leaf, d->issuer, d->root, e) < 0) {
		char msg[ERR_MSG_MAX];
		snprintf(msg, sizeof(msg), "%s", e->msg);
		return err_set(e, ERR_UNPROC, "key_untrusted",
		               "the key does not chain to the pinned root of %s: %s", d->domain,
		               msg);
	}
	if (head_text == NULL)
		return err_set(e, ERR_UNPROC, "log_missing",
		               "the key server of %s sent the key without a tree head", d->domain);
	for (int i = 0; i < d->npins && i < DNS_MAX_PINS; i++)
		pinv[i] = d->pins[i];
	if (tlog_head_verify(head_text, strlen(head_text), d->domain, pinv, d->npins, &head, e) <
	        0 ||
	    tlog_verify_cert(cert, &head, e) < 0)
		goto out;
	if (!logged_purpose_is(cert, purpose)) {
		err_set(e, ERR_UNPROC, "log_mismatch", "the log does not record a %s key", purpose);
		goto out;
	}
	rc = observe_head(v, d, &head, e);
out:
	if (rc < 0 && e->kind != ERR_TEMP && e->kind != ERR_INTERNAL)
		e->kind = ERR_UNPROC;
	tlog_head_clear(&head);
	return rc;
}

/* For gateway encryption (encrypt_policy.c): the same checks on an encryption
 * certificate object, through the same network and remembered log heads. */
int relay_verifier_check_cert(struct relay_verifier *v, const struct discover_result *d,
                              const json_t *cert, const char *head_text, const char *purpose,
                              X509 **leaf, struct err *e)
{
	return check_cert_object(v, d, cert, head_text, purpose, leaf, e);
}

const struct relay_verify_net *relay_verifier_net(const struct relay_verifier *v)
{
	return &v->net;
}

static json_t *get_json(struct relay_verifier *v, const struct discover_result *d, const char *path,
                        struct err *e)
{
	char *body = NULL;
	json_t *doc;

	if (v->net.keyserver_get(v->net.ctx, d, path, &body, e) < 0) {
		if (e->kind != ERR_NOTFOUND)
			e->kind = ERR_TEMP;
		return NULL;
	}
	doc = json_loads(body, 0, NULL);
	free(body);
	if (!json_is_object(doc)) {
		json_decref(doc);
		garbage(e, d, "an answer that is not a JSON object");
		return NULL;
	}
	return doc;
}

static int is_ldh_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-')
			return 0;
	return 1;
}

/* The domain's signing key for selector, from its key server. */
static int anchored_key(struct relay_verifier *v, const struct discover_result *d,
                        const char *selector, struct keyset *out, struct err *e)
{
	char path[DNS_NAME_MAX + 96], sel[64], host[DNS_NAME_MAX + 70];
	json_t *obj = NULL;
	X509 *leaf = NULL;
	const char *name;
	int rc = -1;

	if (!is_ldh_label(selector))
		return err_set(e, ERR_NOTFOUND, "dkim_no_key",
		               "%s is anchored and publishes no key for selector %s", d->domain,
		               selector);
	snprintf(path, sizeof(path), "/v1/domains/%s/dkim/%s", d->domain, selector);
	if ((obj = get_json(v, d, path, e)) == NULL)
		goto out;
	if (check_cert_object(v, d, obj, json_string_value(json_object_get(obj, "tree_head")),
	                      "signing", &leaf, e) < 0)
		goto out;
	name = json_string_value(json_object_get(obj, "name"));
	if (strcmp(selector, "anchor") == 0)
		snprintf(host, sizeof(host), "%s", d->domain);
	else
		snprintf(host, sizeof(host), "%s.%s", selector, d->domain);
	if (name == NULL || dns_dkim_selector(name, d->domain, sel, sizeof(sel)) < 0 ||
	    strcasecmp(sel, selector) != 0 ||
	    X509_check_host(leaf, name, 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) != 1) {
		err_set(e, ERR_UNPROC, "key_mismatch",
		        "the key server of %s answered for selector %s with the key of %s",
		        d->domain, selector, name ? name : "nothing");
		goto out;
	}
	if (tlog_check_status(obj, e) < 0)
		goto out;
	if ((out->rec[0] = dkim_key_record(X509_get0_pubkey(leaf), e)) == NULL) {
		e->kind = e->kind == ERR_INTERNAL ? ERR_INTERNAL : ERR_UNPROC;
		goto out;
	}
	out->n = 1;
	out->source = RELAY_KEY_ANCHOR;
	rc = 0;
out:
	X509_free(leaf);
	json_decref(obj);
	return rc;
}

/* The current keys of the address, from its domain's key server. */
static int user_keys(struct relay_verifier *v, const struct discover_result *d, const char *address,
                     struct keyset *out, struct err *e)
{
	char addr[RELAY_ADDR_MAX], *path = NULL, *esc = NULL;
	struct err ignore_canon = {0};
	json_t *doc = NULL, *c;
	const char *head;
	int revoked = 0, rc = -1;
	size_t i;

	/* i= in the canonical form of the key server's records and the From authors
	 * (PROTOCOL.md §1.3): a U-label or upper-case spelling is the same address */
	if (name_canon_address(address, addr, sizeof(addr), &ignore_canon) < 0) {
		snprintf(addr, sizeof(addr), "%s", address);
		for (char *p = addr; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	if (strcasecmp(relay_addr_domain(addr), d->domain) != 0 || addr[0] == '@')
		return err_set(e, ERR_NOTFOUND, "dkim_no_key",
		               "%s is not an address the key server of %s speaks for", addr,
		               d->domain);
	if ((esc = curl_easy_escape(NULL, addr, 0)) == NULL ||
	    asprintf(&path, "/v1/addresses/%s", esc) < 0) {
		path = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if ((doc = get_json(v, d, path, e)) == NULL)
		goto out;
	head = json_string_value(json_object_get(doc, "tree_head"));
	if (!json_is_array(json_object_get(doc, "certificates"))) {
		garbage(e, d, "an address answer without certificates");
		goto out;
	}
	json_array_foreach(json_object_get(doc, "certificates"), i, c)
	{
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *purpose = json_string_value(json_object_get(c, "purpose"));
		struct err ignore = {0};
		X509 *leaf = NULL;
		char *rec;

		if (out->n >= MAX_KEYS || name == NULL || purpose == NULL ||
		    strcasecmp(name, addr) != 0 || strcmp(purpose, "smime") != 0)
			continue;
		if (check_cert_object(v, d, c, head, "smime", &leaf, e) < 0)
			goto out; /* the answer as a whole is not to be believed */
		if (!cert_san_has_address(leaf, addr)) { /* rfc822Name or SmtpUTF8Mailbox */
			X509_free(leaf);
			err_set(e, ERR_UNPROC, "key_mismatch",
			        "the certificate listed for %s is not issued to it", addr);
			goto out;
		}
		if (tlog_check_status(c, &ignore) < 0)
			revoked = 1;
		else if ((rec = dkim_key_record(X509_get0_pubkey(leaf), &ignore)) != NULL)
			out->rec[out->n++] = rec; /* a P-256 key has no DKIM form: skipped */
		X509_free(leaf);
	}
	if (out->n == 0) {
		if (revoked)
			err_set(e, ERR_UNPROC, "key_revoked", "the key of %s was revoked", addr);
		else
			err_set(e, ERR_NOTFOUND, "dkim_no_key", "%s has no key DKIM can use", addr);
		goto out;
	}
	out->source = RELAY_KEY_USER;
	snprintf(out->user, sizeof(out->user), "%s", addr);
	rc = 0;
out:
	json_decref(doc);
	free(path);
	curl_free(esc);
	return rc;
}

static int dns_key(struct relay_verifier *v, const char *selector, const char *domain,
                   struct keyset *out, struct err *e)
{
	char name[DKIM_SELECTOR_MAX + DKIM_DOMAIN_MAX + 16];

	snprintf(name, sizeof(name), "%s._domainkey.%s", selector, domain);
	if (v->net.dns_txt(v->net.ctx, name, &out->rec[0], e) < 0)
		return -1;
	out->n = 1;
	out->source = RELAY_KEY_DNS;
	return 0;
}

/* The keys for (selector, domain), or the user's when identity is an address. */
static int fetch_keys(struct relay_verifier *v, const char *selector, const char *domain,
                      const char *identity, struct keyset *out, struct err *e)
{
	struct discover_result *d = NULL;
	int rc;

	if (v->net.discover(v->net.ctx, domain, &d, e) < 0) {
		discover_result_free(d);
		return -1; /* its kind says: ERR_TEMP (DNS, network) or a verdict */
	}
	if (d->status == DISCOVER_LEGACY)
		rc = dns_key(v, selector, domain, out, e);
	else if (identity != NULL)
		rc = user_keys(v, d, identity, out, e);
	else
		rc = anchored_key(v, d, selector, out, e);
	discover_result_free(d);
	return rc;
}

static int keys_get(struct relay_verifier *v, const char *selector, const char *domain,
                    const char *identity, struct keyset *out, struct err *e)
{
	char key[DKIM_SELECTOR_MAX + DKIM_DOMAIN_MAX + DKIM_IDENTITY_MAX + 8];
	char dom[DNS_NAME_MAX];
	int rc;

	memset(out, 0, sizeof(*out));
	/* d= is compared without regard to case (RFC 6376 §3.5), and a trailing dot names
	 * the same domain: discovery and the key server know it in canonical form */
	if (dns_name_canon(domain, dom, sizeof(dom), e) < 0) {
		e->kind = ERR_UNPROC;
		return -1;
	}
	domain = dom;
	snprintf(key, sizeof(key), "%s\x01%s\x01%s", selector, domain, identity ? identity : "");
	for (char *p = key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (cache_get(v, key, out)) {
		if (out->n > 0)
			return 0;
		*e = out->err;
		return -1;
	}
	rc = fetch_keys(v, selector, domain, identity, out, e);
	if (rc < 0) {
		keyset_clear(out);
		if (e->kind == ERR_TEMP || e->kind == ERR_INTERNAL)
			return -1; /* asked again next time */
		out->err = *e;
	}
	cache_put(v, key, out);
	return rc;
}

/* ------------------------------------------------------------------ signatures */

struct sig_ctx {
	struct relay_verifier *v;
	const char *identity; /* a user signature's i=, else NULL */
	int fetched;
	int cand; /* which of keys to hand out */
	struct keyset keys;
};

static int lookup_key(const char *selector, const char *domain, void *ctx, char **record,
                      struct err *e)
{
	struct sig_ctx *sc = ctx;

	*record = NULL;
	if (!sc->fetched) {
		if (keys_get(sc->v, selector, domain, sc->identity, &sc->keys, e) < 0)
			return -1;
		sc->fetched = 1;
	}
	if (sc->cand >= sc->keys.n)
		return err_set(e, ERR_NOTFOUND, "dkim_no_key", "no further key");
	if ((*record = strdup(sc->keys.rec[sc->cand])) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return 0;
}

static int rank(enum dkim_status s)
{
	switch (s) {
	case DKIM_PASS:
		return 5;
	case DKIM_FAIL:
		return 4;
	case DKIM_PERMERROR:
		return 3;
	case DKIM_TEMPERROR:
		return 2;
	case DKIM_NEUTRAL:
	case DKIM_NONE:
		break;
	}
	return 1;
}

/* The identity of a user signature (s=anchor-user, an address in i=), or NULL. */
static const char *user_identity(const struct dkim_hdr *h, struct dkim_sig *sig)
{
	const char *value = memchr(h->raw, ':', h->rawlen);
	struct err ignore = {0};

	if (value == NULL || dkim_sig_parse(value + 1, h->rawlen - (size_t)(value + 1 - h->raw), 0,
	                                    sig, &ignore) < 0)
		return NULL;
	if (strcasecmp(sig->s, RELAY_USER_SELECTOR) != 0 || sig->i[0] == '@' ||
	    strchr(sig->i, '@') == NULL)
		return NULL;
	return sig->i;
}

/* The verdict of the idx-th signature: each of its candidate keys in turn, the best
 * verdict kept (a user may hold several keys). */
static void verify_one(struct relay_verifier *v, const char *msg, size_t len,
                       const struct dkim_hdr *h, size_t idx, int headers_only, struct dkim_sig *sig,
                       struct relay_sig *out)
{
	struct sig_ctx sc = {.v = v};
	struct dkim_result r;
	int best = -1;

	sc.identity = user_identity(h, sig);
	for (sc.cand = 0;; sc.cand++) {
		struct err e = {0};

		dkim_verify_sig_opts(msg, len, idx, headers_only, lookup_key, &sc, &r, &e);
		if (rank(r.status) > best) {
			best = rank(r.status);
			out->r = r;
		}
		if (r.status == DKIM_PASS || !sc.fetched || sc.cand + 1 >= sc.keys.n)
			break;
	}
	out->source = sc.fetched ? sc.keys.source : RELAY_KEY_NONE;
	if (out->source == RELAY_KEY_USER)
		snprintf(out->user, sizeof(out->user), "%s", sc.keys.user);
	keyset_clear(&sc.keys);
}

/* ------------------------------------------------------------------ the message */

/* The field is called name (lib/dkim trims the blanks before the colon). */
static int is_field(const struct dkim_hdr *h, const char *name)
{
	size_t n = strlen(name);

	return h->nlen == n && strncasecmp(h->name, name, n) == 0;
}

static int verify_message(struct relay_verifier *v, const char *msg, size_t len, int headers_only,
                          struct relay_auth *out, struct err *e);

int relay_verify_message(struct relay_verifier *v, const char *msg, size_t len,
                         struct relay_auth *out, struct err *e)
{
	return verify_message(v, msg, len, 0, out, e);
}

int relay_verify_view(struct relay_verifier *v, const char *msg, size_t len, struct relay_auth *out,
                      struct err *e)
{
	return verify_message(v, msg, len, 1, out, e);
}

static int verify_message(struct relay_verifier *v, const char *msg, size_t len, int headers_only,
                          struct relay_auth *out, struct err *e)
{
	struct dkim_sig *sig = NULL;
	struct dkim_msg m;
	size_t nsigs = 0, idx = 0;
	int smtputf8 = out->smtputf8;

	memset(out, 0, sizeof(*out));
	out->smtputf8 = smtputf8;
	out->headers_only = headers_only;
	if (dkim_msg_parse(msg, len, &m, e) < 0)
		return -1;
	relay_auth_authors(&m, out);
	for (size_t j = 0; j < m.nhdrs; j++)
		nsigs += is_field(&m.hdrs[j], "DKIM-Signature");
	if (nsigs > 0 && ((out->sigs = calloc(nsigs, sizeof(*out->sigs))) == NULL ||
	                  (sig = malloc(sizeof(*sig))) == NULL)) {
		dkim_msg_free(&m);
		relay_auth_clear(out);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (size_t j = 0; j < m.nhdrs && idx < nsigs; j++) {
		if (!is_field(&m.hdrs[j], "DKIM-Signature"))
			continue;
		verify_one(v, msg, len, &m.hdrs[j], idx, headers_only, sig, &out->sigs[idx]);
		idx++;
	}
	out->nsigs = idx;
	free(sig);
	dkim_msg_free(&m);
	relay_auth_conclude(out, &v->net);
	return 0;
}
