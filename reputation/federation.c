/*
 * federation.c - the signed feed of score changes, and importing the feeds of peers.
 *
 * The feed lists subjects in the order their summary last changed (rep_subject_scores.seq)
 * with this provider's own evidence only (imported evidence is never passed on, so two
 * providers that import each other do not echo), signed as a JWS by the provider's key,
 * whose chain ends in its own domain's pinned root.
 *
 * The importer polls each configured peer, verifies every page against the pins that
 * discovery finds for the peer's domain, and stores the peer's weights, multiplied by the
 * weight configured for it, as the evidence of one reporter named "peer:<domain>": the
 * reporter and network caps apply to it like to anyone else.  A page is applied in one
 * transaction together with the new cursor, so a crash repeats a page rather than losing it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "pki/crypto.h"
#include "core/log.h"
#include "handlers.h"
#include "store.h"

#define REP_TYPE_FEED "anchor-reputation-feed"
#define REP_FEED_PAGES 20 /* pages fetched from one peer per round */

/* ------------------------------------------------------------------ the key */

int rep_federation_load_key(struct rep *rep, struct err *e)
{
	const struct rep_settings *s = &rep->cfg;
	BIO *bio;
	X509 *c;

	if (s->federation_key == NULL)
		return 0;
	if ((rep->fed_key = crypto_key_read_private(s->federation_key, e)) == NULL)
		return -1;
	if ((bio = BIO_new_file(s->federation_cert, "r")) == NULL)
		return err_set_ssl(e, ERR_INPUT, "bad_config", s->federation_cert);
	while (rep->fed_nchain < JWS_MAX_CHAIN &&
	       (c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		rep->fed_chain[rep->fed_nchain++] = c;
	BIO_free(bio);
	ERR_clear_error();
	if (rep->fed_nchain < 2)
		return err_set(e, ERR_INPUT, "bad_config",
		               "federation_cert %s must hold the certificate, its issuer and the "
		               "domain root",
		               s->federation_cert);
	if (!crypto_key_matches(rep->fed_key, X509_get0_pubkey(rep->fed_chain[0])))
		return err_set(e, ERR_INPUT, "bad_config",
		               "federation_key is not the key of the first certificate in %s",
		               s->federation_cert);
	return 0;
}

/* ------------------------------------------------------------------ the feed */

static json_t *feed_changes(const struct rep_feed_change *v, int n)
{
	json_t *changes = json_array();

	for (int i = 0; i < n; i++)
		json_array_append_new(
		    changes, json_pack("{s:I, s:s, s:f, s:f, s:I, s:s, s:I, s:I}", "seq",
		                       (json_int_t)v[i].seq, "subject", v[i].subject, "bad",
		                       v[i].bad, "good", v[i].good, "t", (json_int_t)v[i].t,
		                       "verdict", v[i].verdict, "reports", (json_int_t)v[i].reports,
		                       "reporters", (json_int_t)v[i].reporters));
	return changes;
}

void rep_federation_feed(struct rep_req *r)
{
	struct rep *rep = r->rep;
	const char *since_text = http_query_arg(r->http, "since");
	const char *limit_text = http_query_arg(r->http, "limit");
	long long since = since_text ? strtoll(since_text, NULL, 10) : 0;
	long long limit = limit_text ? strtoll(limit_text, NULL, 10) : rep->cfg.federation_batch;
	char issued[32];
	struct rep_feed_change *changes = NULL;
	json_t *payload;
	struct err e = {0};
	char *text, *jws;
	int n = 0;
	long long next = since;
	time_t now = time(NULL);
	struct tm tm;

	if (rep->fed_key == NULL)
		return http_reply_errorf(r->resp, ERR_NOTFOUND, "federation_disabled",
		                         "this provider publishes no feed (federation_key unset)");
	if (since < 0 || limit < 1 || limit > rep->cfg.federation_batch)
		return http_reply_errorf(r->resp, ERR_INPUT, "bad_request",
		                         "since must be >= 0 and limit 1 to %lld",
		                         rep->cfg.federation_batch);
	if (rep_store_feed(r->db, since, limit, &changes, &n, &e) < 0)
		return rep_fail(r, &e);
	if (n > 0)
		next = changes[n - 1].seq;
	gmtime_r(&now, &tm);
	strftime(issued, sizeof(issued), "%Y-%m-%dT%H:%M:%SZ", &tm);
	payload = json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:o}", "type", REP_TYPE_FEED,
	                    "provider", rep->cfg.provider_domain, "issued", issued, "since",
	                    (json_int_t)since, "next", (json_int_t)next, "half_life",
	                    rep->p.half_life, "changes", feed_changes(changes, n));
	free(changes);
	text = json_dumps(payload, JSON_COMPACT);
	json_decref(payload);
	jws = text ? jws_sign(text, strlen(text), rep->fed_key, rep->fed_chain, rep->fed_nchain,
	                      "anchor-reputation-feed+jws", &e)
	           : NULL;
	free(text);
	if (jws == NULL) {
		if (e.kind == ERR_NONE)
			err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		return rep_fail(r, &e);
	}
	http_add_header(r->resp, "Cache-Control", "no-store");
	http_reply_text(r->resp, 200, "application/json", jws, strlen(jws));
}

/* ------------------------------------------------------------------ importing */

struct rep_federation {
	struct rep *rep;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stop;
};

static int import_change(struct rep *rep, struct db *db, const struct rep_peer *peer, json_t *ch,
                         long long now, struct err *e)
{
	const char *subject = json_string_value(json_object_get(ch, "subject"));
	const char *verdict = json_string_value(json_object_get(ch, "verdict"));
	json_t *jbad = json_object_get(ch, "bad"), *jgood = json_object_get(ch, "good");
	json_t *jt = json_object_get(ch, "t"), *jseq = json_object_get(ch, "seq");
	char reporter[300];
	struct rep_import im;
	struct rep_subject s;
	struct err se = {0};
	enum rep_verdict v;

	if (subject == NULL || rep_subject_parse(subject, &s, &se) < 0 || !json_is_number(jbad) ||
	    !json_is_number(jgood) || json_number_value(jbad) < 0 || json_number_value(jgood) < 0 ||
	    json_number_value(jbad) > 1e9 || json_number_value(jgood) > 1e9 ||
	    !json_is_integer(jt) || !json_is_integer(jseq) || verdict == NULL ||
	    rep_verdict_parse(verdict, &v) < 0) {
		log_warn(NULL, "federation %s: a malformed change skipped (%s)", peer->domain,
		         se.kind ? se.msg : "bad member");
		return 0;
	}
	snprintf(reporter, sizeof(reporter), "peer:%s", peer->domain);
	im.peer = peer->domain;
	im.subject = s.text;
	im.verdict = verdict;
	im.seq = (long long)json_integer_value(jseq);
	/* A peer's clock running ahead must not make its evidence last longer here. */
	im.t = json_integer_value(jt) > now ? now : (long long)json_integer_value(jt);
	im.reporters = (long long)json_integer_value(json_object_get(ch, "reporters"));
	im.bad = json_number_value(jbad);
	im.good = json_number_value(jgood);
	if (rep_store_evidence_import(
	        db, s.text, reporter, im.bad * peer->weight, im.good * peer->weight, im.t,
	        (long long)json_integer_value(json_object_get(ch, "reports")), e) < 0 ||
	    rep_store_import_note(db, &im, e) < 0) /* what the peer signed, unweighted */
		return -1;
	return rep_subject_refresh(rep, db, s.text, now, e);
}

/* Apply one verified page; *n changes, *next the peer's cursor after it. */
static int import_page(struct rep *rep, struct db *db, const struct rep_peer *peer,
                       const char *payload, size_t len, long long *n, long long *next,
                       struct err *e)
{
	json_t *doc = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL), *changes, *ch;
	const char *type = json_string_value(json_object_get(doc, "type"));
	const char *provider = json_string_value(json_object_get(doc, "provider"));
	long long now = (long long)time(NULL);
	size_t i;

	changes = json_object_get(doc, "changes");
	if (type == NULL || strcmp(type, REP_TYPE_FEED) != 0 || provider == NULL ||
	    strcmp(provider, peer->domain) != 0 || !json_is_array(changes) ||
	    !json_is_integer(json_object_get(doc, "next"))) {
		json_decref(doc);
		return err_set(e, ERR_UNPROC, "bad_feed",
		               "the feed of %s is not an anchor-reputation-feed of that provider",
		               peer->domain);
	}
	*next = (long long)json_integer_value(json_object_get(doc, "next"));
	*n = (long long)json_array_size(changes);
	if (db_begin(db, e) < 0)
		goto fail_nobegin;
	json_array_foreach(changes, i, ch)
	{
		if (import_change(rep, db, peer, ch, now, e) < 0)
			goto fail;
	}
	if (rep_store_peer_advance(db, peer->domain, *next, *n, e) < 0 || db_commit(db, e) < 0)
		goto fail;
	if (*n > 0)
		rep_changed_all(rep);
	json_decref(doc);
	return 0;
fail:
	db_rollback(db);
fail_nobegin:
	json_decref(doc);
	return -1;
}

static int fetch_page(struct rep *rep, const struct rep_peer *peer, long long cursor,
                      struct jws_verified *v, struct err *e)
{
	struct https_opts o = {.cacert = discover_config(rep->disc)->cacert,
	                       .connect_timeout_ms = (int)rep->cfg.dns_timeout_ms,
	                       .timeout_ms = 30000};
	struct https_reply reply = {0};
	char path[96], signer[320];
	int rc;

	snprintf(path, sizeof(path), "/v1/federation/feed?since=%lld&limit=%lld", cursor,
	         rep->cfg.federation_batch);
	if (https_get_url(peer->url, path, &o, &reply, e) < 0)
		return -1;
	rc = rep_verify_anchored(rep, reply.body, reply.len, peer->domain, v, signer, e);
	https_reply_clear(&reply);
	return rc;
}

static int poll_peer(struct rep *rep, struct db *db, const struct rep_peer *peer, struct err *e)
{
	long long cursor, n = 0, next = 0;

	if (rep_store_peer_open(db, peer, &cursor, e) < 0)
		return -1;
	for (int page = 0; page < REP_FEED_PAGES; page++) {
		struct jws_verified v = {0};
		int rc;

		if (fetch_page(rep, peer, cursor, &v, e) < 0)
			return -1;
		rc = import_page(rep, db, peer, v.payload, v.payload_len, &n, &next, e);
		jws_verified_free(&v);
		if (rc < 0)
			return -1;
		if (n > 0)
			log_info(NULL, "federation %s: imported %lld change(s), cursor %lld",
			         peer->domain, n, next);
		if (n == 0 || next <= cursor)
			break;
		cursor = next;
	}
	return 0;
}

static void note_error(struct db *db, const struct rep_peer *peer, const struct err *pe)
{
	log_warn(NULL, "federation %s: %s: %s", peer->domain, pe->code, pe->msg);
	rep_store_peer_error(db, peer->domain, pe->msg);
}

static void *importer(void *arg)
{
	struct rep_federation *f = arg;
	struct rep *rep = f->rep;

	pthread_mutex_lock(&f->lock);
	while (!f->stop) {
		struct timespec until;

		pthread_mutex_unlock(&f->lock);
		struct db *db = db_pool_get(rep->pool);

		for (int i = 0; i < rep->npeers; i++) {
			struct err e = {0};

			if (poll_peer(rep, db, &rep->peers[i], &e) < 0)
				note_error(db, &rep->peers[i], &e);
		}
		db_pool_put(rep->pool, db);
		pthread_mutex_lock(&f->lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)rep->cfg.federation_interval;
		while (!f->stop && pthread_cond_timedwait(&f->wake, &f->lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

struct rep_federation *rep_federation_start(struct rep *rep, struct err *e)
{
	struct rep_federation *f;

	if (rep->npeers == 0)
		return NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	f->rep = rep;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->wake, NULL);
	if (pthread_create(&f->thread, NULL, importer, f) != 0) {
		pthread_mutex_destroy(&f->lock);
		pthread_cond_destroy(&f->wake);
		free(f);
		err_set(e, ERR_INTERNAL, "internal", "cannot start the federation importer");
		return NULL;
	}
	log_info(NULL, "federation: importing from %d peer(s) every %llds", rep->npeers,
	         rep->cfg.federation_interval);
	return f;
}

void rep_federation_stop(struct rep_federation *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = 1;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->wake);
	free(f);
}
