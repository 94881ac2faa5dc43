/*
 * encrypt_policy.c - what a recipient's domain asks of an encrypting relay, and
 * the recipient's certificates, believed only as far as the verifier believes a
 * signing key (encrypt.h, PROTOCOL.md §12.9):
 *
 *   - the requirement is the `encryption` member of the domain object that
 *     discovery verified against the pins in DNS (none for a legacy domain);
 *   - the certificates are `encryption.certificates` of GET /v1/addresses/{a}
 *     from the domain's key server; each must chain to the pinned root, carry
 *     its log inclusion proof to a signed head consistent with the heads seen
 *     before (verify.c's checks), name `encryption.address` (an address of the
 *     same domain), not be revoked or superseded, and hold a key OpenSSL's CMS
 *     can encrypt to (smime_cert_check_recipient).  One that fails is left out;
 *     an answer that cannot be believed at all gives none.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "core/text.h"
#include "core/ttlcache.h"
#include "dns/discover.h"
#include "encrypt_policy.h"
#include "mail/smime.h"
#include "pki/tlog_client.h"

void relay_enc_target_clear(struct relay_enc_target *t)
{
	if (t == NULL)
		return;
	sk_X509_pop_free(t->certs, X509_free);
	memset(t, 0, sizeof(*t));
}

const char *relay_enc_req_name(enum relay_enc_req r)
{
	return r == RELAY_ENC_REQUIRED        ? "required"
	       : r == RELAY_ENC_OPPORTUNISTIC ? "opportunistic"
	                                      : "none";
}

static enum relay_enc_req req_of(const struct discover_result *d)
{
	const char *v = json_string_value(json_object_get(d->object, "encryption"));

	if (d->status != DISCOVER_ANCHORED || v == NULL)
		return RELAY_ENC_NONE;
	if (strcmp(v, "required") == 0)
		return RELAY_ENC_REQUIRED;
	return strcmp(v, "opportunistic") == 0 ? RELAY_ENC_OPPORTUNISTIC : RELAY_ENC_NONE;
}

static int discover(struct relay_verifier *v, const char *domain, struct discover_result **d,
                    struct err *e)
{
	const struct relay_verify_net *net = relay_verifier_net(v);

	*d = NULL;
	if (net->discover(net->ctx, domain, d, e) < 0) {
		e->kind = ERR_TEMP;
		return -1;
	}
	return 0;
}

int relay_enc_requirement(struct relay_verifier *v, const char *domain, enum relay_enc_req *out,
                          struct err *e)
{
	struct discover_result *d = NULL;
	int rc = discover(v, domain, &d, e);

	if (rc == 0)
		*out = req_of(d);
	discover_result_free(d);
	return rc;
}

/* One listed certificate: pushed onto t->certs when every check passes. */
static int take_cert(struct relay_verifier *v, const struct discover_result *d, const json_t *c,
                     const char *head, const char *encaddr, struct relay_enc_target *t,
                     struct err *e)
{
	const char *purpose = json_string_value(json_object_get(c, "purpose"));
	const char *kid = json_string_value(json_object_get(c, "key_id"));
	X509 *leaf = NULL;

	if (purpose == NULL ||
	    (strcmp(purpose, "encryption") != 0 && strcmp(purpose, "smime") != 0))
		return err_set(e, ERR_UNPROC, "bad_purpose", "a certificate of purpose %s",
		               purpose ? purpose : "(none)");
	if (relay_verifier_check_cert(v, d, c, head, purpose, &leaf, e) < 0)
		return -1;
	if (X509_check_email(leaf, encaddr, 0, 0) != 1)
		err_set(e, ERR_UNPROC, "key_mismatch", "key %s is not issued to %s",
		        kid ? kid : "?", encaddr);
	else if (tlog_check_status(c, e) == 0 && smime_cert_check_recipient(leaf, e) == 0 &&
	         sk_X509_push(t->certs, leaf) > 0)
		return 0;
	X509_free(leaf);
	return -1;
}

/* The address answer's encryption certificates of rcpt (the domain d's). */
static void fetch_certs(struct relay_verifier *v, const struct discover_result *d, const char *rcpt,
                        struct relay_enc_target *t)
{
	const struct relay_verify_net *net = relay_verifier_net(v);
	char *esc = curl_easy_escape(NULL, rcpt, 0), *path = NULL, *body = NULL;
	const char *head, *encaddr;
	json_t *doc = NULL, *enc, *c;
	struct err e = {0};
	size_t i, listed;

	if (esc == NULL || asprintf(&path, "/v1/addresses/%s", esc) < 0) {
		path = NULL;
		text_printf(t->why, sizeof(t->why), "out of memory");
		goto out;
	}
	if (net->keyserver_get(net->ctx, d, path, &body, &e) < 0) {
		text_printf(t->why, sizeof(t->why), "%s",
		            e.kind == ERR_NOTFOUND ? "its key server publishes no certificate"
		                                   : e.msg);
		goto out;
	}
	doc = json_loads(body, 0, NULL);
	enc = json_object_get(doc, "encryption");
	head = json_string_value(json_object_get(doc, "tree_head"));
	encaddr = json_string_value(json_object_get(enc, "address"));
	if (encaddr == NULL || strcasecmp(relay_addr_domain(encaddr), d->domain) != 0) {
		text_printf(t->why, sizeof(t->why), "the key server of %s sent no usable answer",
		            d->domain);
		goto out;
	}
	listed = json_array_size(json_object_get(enc, "certificates"));
	json_array_foreach(json_object_get(enc, "certificates"), i, c)
	{
		err_clear(&e);
		if (take_cert(v, d, c, head, encaddr, t, &e) < 0) {
			log_info(NULL, "encryption: %s: a certificate left out: %s", rcpt, e.msg);
			text_printf(t->why, sizeof(t->why), "%s", e.msg);
		}
	}
	if (sk_X509_num(t->certs) == 0 && listed == 0)
		text_printf(t->why, sizeof(t->why),
		            "no encryption certificate is published for it");
out:
	json_decref(doc);
	free(body);
	free(path);
	curl_free(esc);
}

static int relay_enc_lookup_now(struct relay_verifier *v, const char *rcpt,
                                struct relay_enc_target *out, struct err *e);

/* ------------------------------------------------------------------ the cache */

/*
 * Answers are reused for ttl seconds (key_status_ttl): without it every message would
 * cost an HTTPS request and the log checks per recipient.  A certificate revoked meanwhile
 * is dropped within that time, as a revoked signing key of a control-API user is.
 */
#define ENC_CACHE_MAX 4096
#define ENC_CACHE_SHARDS 16

static struct ttlcache *enc_cache;
static pthread_once_t enc_cache_once = PTHREAD_ONCE_INIT;

static void target_free(void *t)
{
	relay_enc_target_clear(t);
	free(t);
}

static void enc_cache_init(void)
{
	enc_cache = ttlcache_new(ENC_CACHE_MAX, ENC_CACHE_SHARDS, target_free);
}

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec;
}

/* dst as a copy of src (certificates up-ref'd); -1 when out of memory. */
static int target_copy(const void *src, void *dst)
{
	const struct relay_enc_target *a = src;
	struct relay_enc_target *b = dst;

	*b = *a;
	b->certs = NULL;
	if (a->certs != NULL && (b->certs = X509_chain_up_ref(a->certs)) == NULL)
		return -1;
	return 0;
}

static void cache_put(const char *rcpt, const struct relay_enc_target *t, long long ttl)
{
	struct relay_enc_target *copy;

	if (ttl <= 0 || enc_cache == NULL || (copy = calloc(1, sizeof(*copy))) == NULL)
		return;
	if (target_copy(t, copy) < 0) {
		free(copy);
		return;
	}
	ttlcache_put(enc_cache, rcpt, copy, now_mono() + (double)ttl, TTLCACHE_ANY_GEN);
}

int relay_enc_lookup(struct relay_verifier *v, const char *rcpt, long long ttl,
                     struct relay_enc_target *out, struct err *e)
{
	pthread_once(&enc_cache_once, enc_cache_init);
	if (ttl > 0 && ttlcache_get(enc_cache, rcpt, now_mono(), 0, target_copy, out) == 1)
		return 0;
	if (relay_enc_lookup_now(v, rcpt, out, e) < 0)
		return -1;
	cache_put(rcpt, out, ttl);
	return 0;
}

static int relay_enc_lookup_now(struct relay_verifier *v, const char *rcpt,
                                struct relay_enc_target *out, struct err *e)
{
	struct discover_result *d = NULL;

	memset(out, 0, sizeof(*out));
	snprintf(out->domain, sizeof(out->domain), "%s", relay_addr_domain(rcpt));
	if (discover(v, out->domain, &d, e) < 0) {
		discover_result_free(d);
		return -1;
	}
	out->req = req_of(d);
	if (out->req != RELAY_ENC_NONE) {
		if ((out->certs = sk_X509_new_null()) == NULL)
			snprintf(out->why, sizeof(out->why), "out of memory");
		else
			fetch_certs(v, d, rcpt, out);
	}
	discover_result_free(d);
	return 0;
}
