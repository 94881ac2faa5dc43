/*
 * reputation.c - the relay's client of anchor-reputation (PROTOCOL.md §11): its
 * set-up and what the query (rep_query.c) and the reports (rep_report.c) share.
 *
 * Everything runs on worker threads and blocks; every call has a hard timeout
 * (reputation_timeout_ms).  See rep_priv.h for the files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/ttlcache.h"
#include "mail/repverdict.h"
#include "rep_priv.h"

#define REP_CACHE_MAX 2048  /* answers kept; the oldest goes first */
#define REP_CACHE_SHARDS 16 /* connections ask at once */
#define REP_BACKOFF_DEFAULT 5

/* ------------------------------------------------------------------ set-up */

static char *dup_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

struct relay_rep *relay_rep_new(const struct relay_settings *s, struct err *e)
{
	struct relay_rep *r = calloc(1, sizeof(*r));
	size_t n;

	if (r == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->backoff = REP_BACKOFF_DEFAULT;
	r->timeout_ms = s->reputation_timeout_ms > 0 ? (long)s->reputation_timeout_ms : 500;
	r->cache_ttl = s->reputation_cache_ttl;
	r->cacert = dup_or_null(s->reputation_cacert);
	r->reporter = dup_or_null(s->reporter_domain);
	r->own_networks = dup_or_null(s->own_networks);
	r->own_hosts = dup_or_null(s->own_hosts);
	r->local_domains = dup_or_null(s->local_domains);
	r->hostname = strdup(s->hostname != NULL ? s->hostname : "localhost");
	if (r->hostname != NULL)
		r->authserv_id = strdup(s->authserv_id != NULL && s->authserv_id[0] ? s->authserv_id
		                                                                    : r->hostname);
	if (r->hostname == NULL || r->authserv_id == NULL ||
	    (r->cache_ttl > 0 &&
	     (r->cache = ttlcache_new(REP_CACHE_MAX, REP_CACHE_SHARDS, free)) == NULL))
		goto nomem;
	if (s->reputation_url == NULL || s->reputation_url[0] == '\0')
		return r; /* disabled */
	if (strncmp(s->reputation_url, "https://", 8) != 0 || s->reputation_url[8] == '\0') {
		err_set(e, ERR_INPUT, "bad_config", "reputation_url must be https://host[:port]");
		relay_rep_free(r);
		return NULL;
	}
	if ((r->url = strdup(s->reputation_url)) == NULL)
		goto nomem;
	n = strlen(r->url);
	while (n > 8 && r->url[n - 1] == '/')
		r->url[--n] = '\0';
	if (https_init(e) < 0) {
		relay_rep_free(r);
		return NULL;
	}
	r->enabled = 1;
	return r;
nomem:
	err_set(e, ERR_INTERNAL, "internal", "out of memory");
	relay_rep_free(r);
	return NULL;
}

void relay_rep_free(struct relay_rep *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < r->nidle; i++) /* the handles rep_query.c kept */
		curl_easy_cleanup(r->idle[i]);
	ttlcache_free(r->cache);
	pthread_mutex_destroy(&r->lock);
	free(r->url);
	free(r->cacert);
	free(r->reporter);
	free(r->hostname);
	free(r->authserv_id);
	free(r->own_networks);
	free(r->own_hosts);
	free(r->local_domains);
	free(r);
}

int relay_rep_enabled(const struct relay_rep *r)
{
	return r != NULL && r->enabled;
}

void relay_rep_set_signer(struct relay_rep *r, relay_rep_sign_fn fn, void *arg)
{
	pthread_mutex_lock(&r->lock);
	r->sign_fn = fn;
	r->sign_arg = arg;
	pthread_mutex_unlock(&r->lock);
}

void relay_rep_set_backoff(struct relay_rep *r, long long seconds)
{
	pthread_mutex_lock(&r->lock);
	r->backoff = seconds < 0 ? 0 : seconds;
	pthread_mutex_unlock(&r->lock);
}

/* ------------------------------------------------------------------ shared */

struct https_opts rep_https_opts(const struct relay_rep *r)
{
	struct https_opts o = {.cacert = r->cacert,
	                       .connect_timeout_ms = (int)r->timeout_ms,
	                       .timeout_ms = (int)r->timeout_ms,
	                       .user_agent = "anchor-relay/1"};

	return o;
}

int rep_error_from_answer(long status, const char *body, size_t len, struct err *e)
{
	json_t *doc = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;
	const char *code = json_string_value(json_object_get(doc, "error"));
	const char *msg = json_string_value(json_object_get(doc, "message"));
	char ccode[ERR_CODE_MAX], cmsg[200];
	enum err_kind kind = status == 429 || status >= 500 ? ERR_TEMP
	                     : status == 401                ? ERR_AUTH
	                     : status == 403                ? ERR_FORBIDDEN
	                     : status == 404                ? ERR_NOTFOUND
	                     : status == 400                ? ERR_INPUT
	                                                    : ERR_UNPROC;

	repverdict_clean(code != NULL && code[0] ? code : "http_status", ccode, sizeof(ccode));
	repverdict_clean(msg, cmsg, sizeof(cmsg));
	err_set(e, kind, ccode, "anchor-reputation answered HTTP %ld%s%s", status,
	        cmsg[0] ? ": " : "", cmsg);
	json_decref(doc);
	return -1;
}
