/*
 * reputation.c - the relay's client of anchor-reputation (PROTOCOL.md §11):
 * verdicts on connecting clients (GET /v1/query, cached) and users' spam
 * complaints turned into signed reports (POST /v1/reports).
 *
 * Everything here runs on worker threads and blocks: one libcurl easy handle
 * per call, taken from a small locked pool so that connections to the service
 * are kept alive between calls.  Every call has a hard timeout
 * (reputation_timeout_ms); after a failed query (timeout, no connection, 5xx,
 * 429, garbage; not a 4xx refusing one question) the client refuses to ask for
 * a few seconds, so that an outage costs each connection nothing rather than
 * a full timeout.  Failures are never cached.
 *
 * A report names only what the relay itself saw: the connecting IP and HELO
 * from its own Received field (the topmost whose "by" is our hostname), the
 * signers of passing signatures from its own Authentication-Results (the
 * topmost with our authserv-id), and the From domain when one of those
 * signers vouches for it (aligned, as in DMARC's relaxed mode).  Fields that
 * merely claim to be ours further down are never reached, because ours are
 * prepended above them (and inbound removes incoming Authentication-Results
 * bearing our authserv-id, RFC 8601 §5).  verified_identity is true when a
 * signature passed or our CSA check passed.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/text.h"
#include "pki/cert.h"
#include "pki/name.h"
#include "pki/crypto.h"
#include "dns/discover.h"
#include "relay.h"
#include "rep_trace.h"
#include "mail/repverdict.h"
#include "mail/smtp.h"
#include "core/ttlcache.h"
#include "http/https_client.h"

#define REP_ANSWER_MAX (256 * 1024)
#define REP_POOL_MAX 8      /* idle easy handles kept */
#define REP_CACHE_MAX 2048  /* answers kept; the oldest goes first */
#define REP_CACHE_SHARDS 16 /* connections ask at once */
#define REP_BACKOFF_DEFAULT 5
#define REP_MAX_SUBJECTS 8
#define REP_TYP "anchor-report+jws"

struct relay_rep {
	int enabled;
	char *url; /* without a trailing '/' */
	char *cacert;
	long timeout_ms;
	long long cache_ttl;
	char *reporter;
	char *hostname;
	char *authserv_id;

	struct ttlcache *cache; /* struct relay_rep_answer by ip, HELO and domain */
	pthread_mutex_t lock;   /* guards everything below */
	CURL *idle[REP_POOL_MAX];
	int nidle;
	time_t down_until;
	long long backoff;
	relay_rep_sign_fn sign_fn;
	void *sign_arg;
};

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
	for (int i = 0; i < r->nidle; i++)
		curl_easy_cleanup(r->idle[i]);
	ttlcache_free(r->cache);
	pthread_mutex_destroy(&r->lock);
	free(r->url);
	free(r->cacert);
	free(r->reporter);
	free(r->hostname);
	free(r->authserv_id);
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

/* One request: GET url, or POST body (application/json) when body is not NULL.
 * 0 with a->status set whatever the status; -1 when no answer came. */
static int http_call(struct relay_rep *r, CURL *c, const char *url, const char *body,
                     struct answer *a, struct err *e)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	CURLcode rc;
	struct https_opts o = {.cacert = r->cacert,
	                       .connect_timeout_ms = (int)r->timeout_ms,
	                       .timeout_ms = (int)r->timeout_ms,
	                       .user_agent = "anchor-relay/1"};

	memset(a, 0, sizeof(*a));
	https_easy_setup(c, &o);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body != NULL) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
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

/* The error of a non-2xx answer: the service's own {"error", "message"} when it sent one. */
static int error_from_answer(const struct answer *a, struct err *e)
{
	json_t *doc = a->body != NULL ? json_loadb(a->body, a->len, 0, NULL) : NULL;
	const char *code = json_string_value(json_object_get(doc, "error"));
	const char *msg = json_string_value(json_object_get(doc, "message"));
	char ccode[ERR_CODE_MAX], cmsg[200];
	enum err_kind kind = a->status == 429 || a->status >= 500 ? ERR_TEMP
	                     : a->status == 401                   ? ERR_AUTH
	                     : a->status == 403                   ? ERR_FORBIDDEN
	                     : a->status == 404                   ? ERR_NOTFOUND
	                     : a->status == 400                   ? ERR_INPUT
	                                                          : ERR_UNPROC;

	repverdict_clean(code != NULL && code[0] ? code : "http_status", ccode, sizeof(ccode));
	repverdict_clean(msg, cmsg, sizeof(cmsg));
	err_set(e, kind, ccode, "anchor-reputation answered HTTP %ld%s%s", a->status,
	        cmsg[0] ? ": " : "", cmsg);
	json_decref(doc);
	return -1;
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
	if (http_call(r, c, url, NULL, &a, e) < 0)
		goto out;
	if (a.status != 200) {
		*refused = a.status >= 400 && a.status < 500 && a.status != 429;
		error_from_answer(&a, e);
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

/* ------------------------------------------------------------------ reports */

static int category_ok(const char *c)
{
	static const char *const cats[] = {"spam",  "phishing", "malware",
	                                   "abuse", "not-spam", "auth-fail"};

	for (size_t i = 0; c != NULL && i < sizeof(cats) / sizeof(cats[0]); i++)
		if (strcmp(c, cats[i]) == 0)
			return 1;
	return 0;
}

static void add_subject(json_t *arr, const char *kind, const char *value)
{
	char s[320];
	size_t i;
	json_t *v;

	if (value[0] == '\0' || json_array_size(arr) >= REP_MAX_SUBJECTS)
		return;
	snprintf(s, sizeof(s), "%s:%s", kind, value);
	json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), s) == 0) return;
	json_array_append_new(arr, json_string(s));
}

char *relay_rep_report_payload(const struct relay_rep *r, const char *msg, size_t len,
                               const char *category, time_t now, struct err *e)
{
	struct relay_rep_trace o;
	uint8_t rnd[12];
	char hex[2 * sizeof(rnd) + 1], id[40], observed[32], evidence[REP_EVIDENCE_MAX + 1];
	struct tm tm;
	json_t *subjects, *payload;
	char *text;

	if (r->reporter == NULL) {
		err_set(e, ERR_INPUT, "bad_config", "reporter_domain is not set: no reports");
		return NULL;
	}
	if (!category_ok(category)) {
		err_set(
		    e, ERR_INPUT, "bad_category",
		    "the category must be spam, phishing, malware, abuse, not-spam or auth-fail");
		return NULL;
	}
	if (crypto_random_bytes(rnd, sizeof(rnd), e) < 0)
		return NULL;
	relay_rep_trace_read(r->hostname, r->authserv_id, msg, len, &o);
	if ((subjects = json_array()) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	add_subject(subjects, "ip", o.ip);
	add_subject(subjects, "helo", o.helo);
	for (int i = 0; i < o.nsigners; i++)
		add_subject(subjects, "signer", o.signers[i]);
	/* the From domain only when a passing signature vouches for it (aligned, as DMARC
	 * relaxed): else anyone could sign spam "From" a victim's domain and get it reported */
	for (int i = 0; i < o.nsigners; i++)
		if (name_in_domain(o.from_domain, o.signers[i]))
			add_subject(subjects, "domain", o.from_domain);
	if (json_array_size(subjects) == 0) {
		json_decref(subjects);
		err_set(e, ERR_INPUT, "no_subjects",
		        "the message carries no Received or Authentication-Results field of %s: "
		        "nothing to report",
		        r->hostname);
		return NULL;
	}
	crypto_hex(rnd, sizeof(rnd), hex);
	snprintf(id, sizeof(id), "relay-%s", hex);
	gmtime_r(&now, &tm);
	strftime(observed, sizeof(observed), "%Y-%m-%dT%H:%M:%SZ", &tm);
	payload = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:b}", "type", "anchor-report", "id",
	                    id, "reporter", r->reporter, "category", category, "subjects", subjects,
	                    "observed", observed, "verified_identity", o.dkim_pass || o.csa_pass);
	if (payload != NULL && o.message_id[0]) {
		snprintf(evidence, sizeof(evidence), "Message-ID: %s", o.message_id);
		json_object_set_new(payload, "evidence", json_string(evidence));
	}
	text = payload != NULL ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (text == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return text;
}

int relay_rep_report(struct relay_rep *r, struct relay_signer_client *sc, const char *msg,
                     size_t len, const char *category, struct err *e)
{
	char url[2048], *payload = NULL, *jws = NULL;
	relay_rep_sign_fn fn;
	void *fn_arg;
	struct answer a = {0};
	CURL *c = NULL;
	int rc = -1;

	if (!relay_rep_enabled(r))
		return err_set(e, ERR_INPUT, "disabled", "no reputation service is configured");
	if ((payload = relay_rep_report_payload(r, msg, len, category, time(NULL), e)) == NULL)
		return -1;
	pthread_mutex_lock(&r->lock);
	fn = r->sign_fn;
	fn_arg = r->sign_arg;
	pthread_mutex_unlock(&r->lock);
	if ((fn != NULL ? fn(fn_arg, payload, REP_TYP, &jws, e)
	                : relay_signer_sign_jws(sc, payload, REP_TYP, &jws, e)) < 0)
		goto out;
	if ((c = handle_take(r)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "cannot set up libcurl");
		goto out;
	}
	snprintf(url, sizeof(url), "%s/v1/reports", r->url);
	if (http_call(r, c, url, jws, &a, e) < 0)
		goto out;
	if (a.status != 200 && a.status != 201) {
		error_from_answer(&a, e);
		goto out;
	}
	rc = 0;
out:
	answer_clear(&a);
	if (c != NULL)
		handle_give(r, c);
	free(jws);
	free(payload);
	return rc;
}
