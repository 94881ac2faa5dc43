/*
 * rep_query.c - the relay's verdicts on connecting clients (GET /v1/query, PROTOCOL.md
 * §11.2), cached.
 *
 * One libcurl easy handle per call, taken from a small locked pool so that connections
 * to the service are kept alive between calls (lib/http's https_easy_setup configures
 * each).  After a failed query (timeout, no connection, 5xx, 429, garbage; not a 4xx
 * refusing one question) the client refuses to ask for a few seconds, so that an outage
 * costs each connection nothing rather than a full timeout.  Failures are never cached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/text.h"
#include "core/ttlcache.h"
#include "mail/repverdict.h"
#include "rep_priv.h"

#define REP_ANSWER_MAX (256 * 1024)

/* ------------------------------------------------------------------ HTTPS */

struct answer {
	char *body;
	size_t len;
	int too_big;
	long status;
};

static void answer_clear(struct answer *a)
{
	free(a->body);
	memset(a, 0, sizeof(*a));
}

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t len = size * n;
	char *b;

	if (a->len + len > REP_ANSWER_MAX) {
		a->too_big = 1;
		return 0; /* aborts the transfer */
	}
	b = realloc(a->body, a->len + len + 1);
	if (b == NULL)
		return 0;
	memcpy(b + a->len, data, len);
	a->len += len;
	b[a->len] = '\0';
	a->body = b;
	return len;
}

static CURL *handle_take(struct relay_rep *r)
{
	CURL *c = NULL;

	pthread_mutex_lock(&r->lock);
	if (r->nidle > 0)
		c = r->idle[--r->nidle];
	pthread_mutex_unlock(&r->lock);
	return c != NULL ? c : curl_easy_init();
}

/* Back to the pool with its connection still open (curl_easy_reset keeps it). */
static void handle_give(struct relay_rep *r, CURL *c)
{
	curl_easy_reset(c);
	pthread_mutex_lock(&r->lock);
	if (r->nidle < REP_POOL_MAX) {
		r->idle[r->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	if (c != NULL)
		curl_easy_cleanup(c);
}

/* One GET of url.  0 with a->status set whatever the status; -1 when no answer came. */
static int http_get(struct relay_rep *r, CURL *c, const char *url, struct answer *a, struct err *e)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	CURLcode rc;
	struct https_opts o = rep_https_opts(r);

	memset(a, 0, sizeof(*a));
	https_easy_setup(c, &o);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(c);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK) {
		const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);

		if (a->too_big)
			err_set(e, ERR_UNPROC, "bad_answer",
			        "anchor-reputation's answer is larger than %d octets",
			        REP_ANSWER_MAX);
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			err_set(e, ERR_TEMP, "timeout",
			        "anchor-reputation did not answer in %ld ms: %s", r->timeout_ms,
			        why);
		else
			err_set(e, ERR_TEMP, "unreachable", "anchor-reputation: %s", why);
		answer_clear(a);
		return -1;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	return 0;
}

/* ------------------------------------------------------------------ the cache */

static int answer_copy(const void *value, void *arg)
{
	memcpy(arg, value, sizeof(struct relay_rep_answer));
	return 0;
}

static int cache_get(struct relay_rep *r, const char *key, time_t now, struct relay_rep_answer *out)
{
	return ttlcache_get(r->cache, key, (double)now, 0, answer_copy, out);
}

static void cache_put(struct relay_rep *r, const char *key, time_t now,
                      const struct relay_rep_answer *a)
{
	struct relay_rep_answer *copy = malloc(sizeof(*copy));

	if (copy == NULL)
		return; /* not cached: only slower */
	*copy = *a;
	ttlcache_put(r->cache, key, copy, (double)(now + (time_t)r->cache_ttl), TTLCACHE_ANY_GEN);
}

/* ------------------------------------------------------------------ queries */

static enum relay_rep_verdict verdict_of(const char *v)
{
	if (strcmp(v, "block") == 0)
		return RELAY_REP_BLOCK;
	if (strcmp(v, "trusted") == 0)
		return RELAY_REP_TRUSTED;
	if (strcmp(v, "known") == 0)
		return RELAY_REP_KNOWN;
	return RELAY_REP_UNKNOWN;
}

static int add_param(CURL *c, char *url, size_t size, const char *name, const char *value)
{
	size_t len = strlen(url);
	char *esc;
	int n;

	if (value == NULL || value[0] == '\0')
		return 0;
	if ((esc = curl_easy_escape(c, value, 0)) == NULL)
		return -1;
	n = snprintf(url + len, size - len, "%s%s=%s", strchr(url, '?') ? "&" : "?", name, esc);
	curl_free(esc);
	return n < 0 || (size_t)n >= size - len ? -1 : 0;
}

/* *refused is set when the question, not the service, was at fault (a 4xx other than
 * 429): such a failure says nothing about the service's health. */
static int ask(struct relay_rep *r, const char *ip, const char *helo, const char *domain,
               struct relay_rep_answer *out, int *refused, struct err *e)
{
	char url[2048];
	struct repverdict v;
	struct answer a;
	CURL *c = handle_take(r);
	int rc = -1;

	if (c == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "cannot set up libcurl");
	snprintf(url, sizeof(url), "%s/v1/query", r->url);
	if (add_param(c, url, sizeof(url), "ip", ip) < 0 ||
	    add_param(c, url, sizeof(url), "helo", helo) < 0 ||
	    add_param(c, url, sizeof(url), "domain", domain) < 0) {
		handle_give(r, c);
		*refused = 1;
		return err_set(e, ERR_INPUT, "bad_request", "the query does not fit in a URL");
	}
	if (http_get(r, c, url, &a, e) < 0)
		goto out;
	if (a.status != 200) {
		*refused = a.status >= 400 && a.status < 500 && a.status != 429;
		rep_error_from_answer(a.status, a.body, a.len, e);
		goto out;
	}
	if (repverdict_parse(a.body != NULL ? a.body : "", a.len, &v, e) < 0)
		goto out;
	memset(out, 0, sizeof(*out));
	out->verdict = verdict_of(v.verdict);
	snprintf(out->csa, sizeof(out->csa), "%s", v.csa);
	snprintf(out->reason, sizeof(out->reason), "%.*s", (int)sizeof(out->reason) - 1, v.reason);
	rc = 0;
out:
	answer_clear(&a);
	handle_give(r, c);
	return rc;
}

int relay_rep_query(struct relay_rep *r, const char *ip, const char *helo, const char *domain,
                    struct relay_rep_answer *out, struct err *e)
{
	char key[64 + 256 + 256 + 8], lhelo[256], ldomain[256];
	time_t now = time(NULL);
	int hit, down, refused = 0;

	if (!relay_rep_enabled(r))
		return err_set(e, ERR_INPUT, "disabled", "no reputation service is configured");
	if ((ip == NULL || !ip[0]) && (helo == NULL || !helo[0]) && (domain == NULL || !domain[0]))
		return err_set(e, ERR_INPUT, "bad_request", "a query needs an ip, helo or domain");
	text_lower_copy(lhelo, sizeof(lhelo), helo);
	text_lower_copy(ldomain, sizeof(ldomain), domain);
	snprintf(key, sizeof(key), "%.63s\x1f%s\x1f%s", ip ? ip : "", lhelo, ldomain);

	hit = r->cache_ttl > 0 && cache_get(r, key, now, out);
	pthread_mutex_lock(&r->lock);
	down = !hit && now < r->down_until;
	pthread_mutex_unlock(&r->lock);
	if (hit)
		return 0;
	if (down)
		return err_set(
		    e, ERR_TEMP, "backoff",
		    "anchor-reputation failed less than %lld s ago; not asking again yet",
		    r->backoff);

	if (ask(r, ip, lhelo, ldomain, out, &refused, e) < 0) {
		if (refused)
			return -1; /* one client's odd HELO must not silence the service for all */
		pthread_mutex_lock(&r->lock);
		r->down_until = time(NULL) + (time_t)r->backoff;
		pthread_mutex_unlock(&r->lock);
		return -1;
	}
	if (r->cache_ttl > 0)
		cache_put(r, key, now, out);
	return 0;
}
