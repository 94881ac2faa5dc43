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

#include "pki/cert.h"
#include "pki/name.h"
#include "pki/crypto.h"
#include "dns/discover.h"
#include "relay.h"
#include "mail/repverdict.h"
#include "mail/smtp.h"

#define REP_ANSWER_MAX (256 * 1024)
#define REP_POOL_MAX 8     /* idle easy handles kept */
#define REP_CACHE_SETS 512 /* the cache: REP_CACHE_SETS x REP_CACHE_WAYS entries */
#define REP_CACHE_WAYS 4
#define REP_BACKOFF_DEFAULT 5
#define REP_MAX_SUBJECTS 8
#define REP_EVIDENCE_MAX 511
#define REP_TYP "anchor-report+jws"

struct cache_entry {
	char *key; /* NULL: free slot */
	time_t expires;
	time_t stored;
	struct relay_rep_answer a;
};

struct relay_rep {
	int enabled;
	char *url; /* without a trailing '/' */
	char *cacert;
	long timeout_ms;
	long long cache_ttl;
	char *reporter;
	char *hostname;
	char *authserv_id;

	pthread_mutex_t lock; /* guards everything below */
	CURL *idle[REP_POOL_MAX];
	int nidle;
	struct cache_entry cache[REP_CACHE_SETS][REP_CACHE_WAYS];
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
	if (r->hostname == NULL || r->authserv_id == NULL)
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
	for (int i = 0; i < REP_CACHE_SETS; i++)
		for (int j = 0; j < REP_CACHE_WAYS; j++)
			free(r->cache[i][j].key);
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

	memset(a, 0, sizeof(*a));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "anchor-relay/1");
	if (r->cacert != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, r->cacert);
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

static unsigned long key_hash(const char *k)
{
	unsigned long h = 1469598103934665603UL;

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211UL;
	return h;
}

/* Under the lock. */
static int cache_get(struct relay_rep *r, const char *key, time_t now, struct relay_rep_answer *out)
{
	struct cache_entry *set = r->cache[key_hash(key) % REP_CACHE_SETS];

	for (int i = 0; i < REP_CACHE_WAYS; i++)
		if (set[i].key != NULL && strcmp(set[i].key, key) == 0) {
			if (now >= set[i].expires)
				return 0;
			*out = set[i].a;
			return 1;
		}
	return 0;
}

/* Under the lock: the same key, else a free or expired slot, else the oldest. */
static void cache_put(struct relay_rep *r, const char *key, time_t now,
                      const struct relay_rep_answer *a)
{
	struct cache_entry *set = r->cache[key_hash(key) % REP_CACHE_SETS], *slot = NULL;
	char *k;

	for (int i = 0; i < REP_CACHE_WAYS && slot == NULL; i++)
		if (set[i].key != NULL && strcmp(set[i].key, key) == 0)
			slot = &set[i];
	for (int i = 0; i < REP_CACHE_WAYS && slot == NULL; i++)
		if (set[i].key == NULL || now >= set[i].expires)
			slot = &set[i];
	for (int i = 0; slot == NULL && i < REP_CACHE_WAYS; i++)
		if (i == 0 || set[i].stored < slot->stored)
			slot = &set[i];
	if (slot == NULL)
		slot = &set[0];
	if (slot->key == NULL || strcmp(slot->key, key) != 0) {
		if ((k = strdup(key)) == NULL)
			return;
		free(slot->key);
		slot->key = k;
	}
	slot->stored = now;
	slot->expires = now + (time_t)r->cache_ttl;
	slot->a = *a;
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

static void lower_copy(char *out, size_t size, const char *in)
{
	size_t i = 0;

	for (; in != NULL && in[i] && i + 1 < size; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[i] = '\0';
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
	lower_copy(lhelo, sizeof(lhelo), helo);
	lower_copy(ldomain, sizeof(ldomain), domain);
	snprintf(key, sizeof(key), "%.63s\x1f%s\x1f%s", ip ? ip : "", lhelo, ldomain);

	pthread_mutex_lock(&r->lock);
	hit = r->cache_ttl > 0 && cache_get(r, key, now, out);
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
	pthread_mutex_lock(&r->lock);
	if (r->cache_ttl > 0)
		cache_put(r, key, now, out);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* ------------------------------------------------------------------ the message's fields */

struct field {
	char name[64];
	char *value; /* unfolded (CR and LF removed), malloc'd */
};

/* The next header field from *p (lenient: CRLF or LF, lines without a colon are
 * skipped); 0 at the end of the header section. */
static int next_field(const char **p, const char *end, struct field *f)
{
	const char *s = *p, *colon, *eol, *v;
	size_t n, vlen;
	char *out;

	for (;;) {
		if (s >= end || *s == '\n' || (*s == '\r' && s + 1 < end && s[1] == '\n'))
			return 0;
		eol = memchr(s, '\n', (size_t)(end - s));
		eol = eol != NULL ? eol + 1 : end;
		while (eol < end && (*eol == ' ' || *eol == '\t')) {
			const char *nl = memchr(eol, '\n', (size_t)(end - eol));

			eol = nl != NULL ? nl + 1 : end;
		}
		colon = memchr(s, ':', (size_t)(eol - s));
		if (colon != NULL && colon > s && (size_t)(colon - s) < sizeof(f->name) &&
		    s[0] != ' ' && s[0] != '\t')
			break;
		s = eol;
	}
	n = (size_t)(colon - s);
	memcpy(f->name, s, n);
	f->name[n] = '\0';
	while (n > 0 && (f->name[n - 1] == ' ' || f->name[n - 1] == '\t'))
		f->name[--n] = '\0';
	v = colon + 1;
	vlen = (size_t)(eol - v);
	out = malloc(vlen + 1);
	if (out == NULL)
		return -1;
	n = 0;
	for (size_t i = 0; i < vlen; i++)
		if (v[i] != '\r' && v[i] != '\n')
			out[n++] = v[i];
	out[n] = '\0';
	f->value = out;
	*p = eol;
	return 1;
}

/* What the relay's own fields say about a message. */
struct observed {
	char ip[64];
	char helo[256];
	int have_received, have_ar;
	int dkim_pass;
	int csa_pass; /* our csa=pass: the ip and helo are the client's own */
	char signers[2][256];
	int nsigners;
	char from_domain[256]; /* from our AR's header.from, else the From field */
	char message_id[REP_EVIDENCE_MAX - 12 + 1]; /* room for "Message-ID: " */
};

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* A whitespace-delimited token (also stopped by '(' and ';') into out; returns after it. */
static const char *token(const char *s, char *out, size_t size)
{
	size_t n = 0;

	s = skip_ws(s);
	while (*s && *s != ' ' && *s != '\t' && *s != '(' && *s != ';') {
		if (n + 1 < size)
			out[n++] = *s;
		s++;
	}
	out[n] = '\0';
	return s;
}

/* The canonical text of an IP address ("IPv6:" prefix allowed); 0 when it is none. */
static int ip_canon(const char *in, char *out, size_t size)
{
	unsigned char buf[16];

	if (strncasecmp(in, "IPv6:", 5) == 0)
		in += 5;
	if (inet_pton(AF_INET, in, buf) == 1)
		return inet_ntop(AF_INET, buf, out, (socklen_t)size) != NULL;
	if (inet_pton(AF_INET6, in, buf) == 1)
		return inet_ntop(AF_INET6, buf, out, (socklen_t)size) != NULL;
	return 0;
}

/* A HELO name as a subject: a host name (lowercase, no trailing dot) or an address literal. */
static int helo_canon(const char *in, char *out, size_t size)
{
	size_t n;

	lower_copy(out, size, in);
	n = strlen(out);
	if (n > 1 && out[n - 1] == '.' && out[0] != '[')
		out[--n] = '\0';
	if (n == 0 || n >= size - 1)
		return 0;
	if (out[0] == '[') {
		if (strncmp(out, "[ipv6:", 6) == 0)
			memcpy(out + 1, "IPv6", 4); /* the canonical spelling of the tag */
		return smtp_address_literal_valid(out, n);
	}
	return smtp_domain_valid(out, n);
}

/* "from <helo> (<helo> [<ip>]) by <hostname> ...": the relay's own Received field. */
static int parse_received(const char *v, const char *hostname, struct observed *o)
{
	char word[300], helo[300], ip[80] = "", by[300];
	const char *s = token(v, word, sizeof(word)), *open, *close, *lb, *rb;

	if (strcasecmp(word, "from") != 0)
		return 0;
	s = token(s, helo, sizeof(helo));
	s = skip_ws(s);
	if (*s == '(') {
		open = s;
		if ((close = strchr(open, ')')) == NULL)
			return 0;
		/* the last [...] in the comment: the HELO itself may be an address literal */
		for (lb = open; (lb = memchr(lb, '[', (size_t)(close - lb))) != NULL; lb = rb) {
			size_t n;

			if ((rb = memchr(lb, ']', (size_t)(close - lb))) == NULL)
				break;
			n = (size_t)(rb - lb - 1);
			if (n < sizeof(ip)) {
				memcpy(ip, lb + 1, n);
				ip[n] = '\0';
			}
		}
		s = close + 1;
	}
	s = token(s, word, sizeof(word));
	if (strcasecmp(word, "by") != 0)
		return 0;
	token(s, by, sizeof(by));
	if (strcasecmp(by, hostname) != 0)
		return 0;
	o->have_received = 1;
	if (!ip_canon(ip, o->ip, sizeof(o->ip)))
		o->ip[0] = '\0';
	/* inbound writes "unknown" when the client sent no HELO */
	if (strcmp(helo, "unknown") == 0 || !helo_canon(helo, o->helo, sizeof(o->helo)))
		o->helo[0] = '\0';
	return 1;
}

/* The value with RFC 5322 comments removed (quoted strings kept), in place. */
static void strip_comments(char *s)
{
	char *w = s;
	int depth = 0, quoted = 0;

	for (; *s; s++) {
		if (quoted) {
			if (*s == '\\' && s[1]) {
				*w++ = *s++;
			} else if (*s == '"') {
				quoted = 0;
			}
			*w++ = *s;
		} else if (depth > 0) {
			if (*s == '\\' && s[1])
				s++;
			else if (*s == '(')
				depth++;
			else if (*s == ')')
				depth--;
		} else if (*s == '(') {
			depth++;
			*w++ = ' ';
		} else {
			if (*s == '"')
				quoted = 1;
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* A property value without its quotes, lowercase. */
static void prop_value(const char *v, char *out, size_t size)
{
	char tmp[300];
	size_t n;

	lower_copy(tmp, sizeof(tmp), v);
	n = strlen(tmp);
	if (n >= 2 && tmp[0] == '"' && tmp[n - 1] == '"') {
		tmp[n - 1] = '\0';
		snprintf(out, size, "%s", tmp + 1);
	} else {
		snprintf(out, size, "%s", tmp);
	}
}

static void domain_canon(char *d)
{
	size_t n = strlen(d);

	if (n > 0 && d[n - 1] == '.')
		d[n - 1] = '\0';
}

static int domain_ok(const char *d)
{
	struct err e;

	return d[0] != '\0' && name_check_domain(d, &e) == 0;
}

/* The next blank-separated word of *s, quoted strings kept whole; NULL at the end. */
static char *next_word(char **s)
{
	char *p = (char *)skip_ws(*s), *start = p;
	int quoted = 0;

	if (*p == '\0')
		return NULL;
	for (; *p && (quoted || (*p != ' ' && *p != '\t')); p++) {
		if (quoted && *p == '\\' && p[1])
			p++;
		else if (*p == '"')
			quoted = !quoted;
	}
	if (*p)
		*p++ = '\0';
	*s = p;
	return start;
}

/* One resinfo ("dkim=pass header.d=example.com header.i=@example.com"). */
static void parse_resinfo(char *ri, struct observed *o)
{
	char method[64], result[32], *tok, *eq, dom[256] = "", from[256] = "";
	int first = 1, dkim_pass = 0;

	method[0] = result[0] = '\0';
	while ((tok = next_word(&ri)) != NULL) {
		if ((eq = strchr(tok, '=')) == NULL) {
			first = 0;
			continue;
		}
		*eq = '\0';
		if (first) {
			char *slash = strchr(tok, '/');

			if (slash != NULL)
				*slash = '\0';
			lower_copy(method, sizeof(method), tok);
			lower_copy(result, sizeof(result), eq + 1);
			dkim_pass = strcmp(method, "dkim") == 0 && strcmp(result, "pass") == 0;
			if (strcmp(method, "csa") == 0 && strcmp(result, "pass") == 0)
				o->csa_pass = 1;
			first = 0;
		} else if (strcasecmp(tok, "header.d") == 0 && dkim_pass) {
			prop_value(eq + 1, dom, sizeof(dom));
		} else if (strcasecmp(tok, "header.i") == 0 && dkim_pass && !dom[0]) {
			char iv[300], *at;

			prop_value(eq + 1, iv, sizeof(iv));
			at = strrchr(iv, '@');
			snprintf(dom, sizeof(dom), "%.255s", at ? at + 1 : iv);
		} else if (strcasecmp(tok, "header.from") == 0) {
			prop_value(eq + 1, from, sizeof(from));
		} else if (strcasecmp(tok, "smtp.helo") == 0 && !o->helo[0]) {
			char h[300];

			prop_value(eq + 1, h, sizeof(h));
			if (!helo_canon(h, o->helo, sizeof(o->helo)))
				o->helo[0] = '\0';
		} else if (strcasecmp(tok, "policy.iprev") == 0 && !o->ip[0]) {
			char ip[80];

			prop_value(eq + 1, ip, sizeof(ip));
			if (!ip_canon(ip, o->ip, sizeof(o->ip)))
				o->ip[0] = '\0';
		}
	}
	if (dkim_pass) {
		o->dkim_pass = 1;
		domain_canon(dom);
		if (domain_ok(dom) && o->nsigners < 2 &&
		    (o->nsigners == 0 || strcmp(o->signers[0], dom) != 0))
			snprintf(o->signers[o->nsigners++], sizeof(o->signers[0]), "%s", dom);
	}
	if (from[0]) {
		char *at = strrchr(from, '@');

		snprintf(o->from_domain, sizeof(o->from_domain), "%s", at ? at + 1 : from);
		domain_canon(o->from_domain);
	}
}

/* "<authserv-id> [version]; resinfo; ...": only when authserv-id is ours. */
static int parse_authres(char *v, const char *authserv_id, struct observed *o)
{
	char id[256], *part, *s;
	int quoted = 0;

	strip_comments(v);
	token(v, id, sizeof(id));
	if (strcasecmp(id, authserv_id) != 0)
		return 0;
	o->have_ar = 1;
	part = strchr(v, ';');
	while (part != NULL) {
		part++;
		for (s = part; *s && (quoted || *s != ';'); s++) {
			if (quoted && *s == '\\' && s[1])
				s++;
			else if (*s == '"')
				quoted = !quoted;
		}
		if (*s == ';') {
			*s = '\0';
			parse_resinfo(part, o);
			part = s;
		} else {
			parse_resinfo(part, o);
			part = NULL;
		}
	}
	return 1;
}

/* The domain of the (first) From address. */
static void from_domain(char *v, char *out, size_t size)
{
	char *lt, *gt, *at, *end;

	strip_comments(v);
	if ((lt = strchr(v, '<')) != NULL && (gt = strchr(lt, '>')) != NULL) {
		*gt = '\0';
		v = lt + 1;
	} else if ((end = strchr(v, ',')) != NULL) {
		*end = '\0';
	}
	if ((at = strrchr(v, '@')) == NULL)
		return;
	at = (char *)skip_ws(at + 1);
	for (end = at; *end && *end != ' ' && *end != '\t' && *end != '>'; end++)
		;
	*end = '\0';
	lower_copy(out, size, at);
	domain_canon(out);
}

static void observe(const struct relay_rep *r, const char *msg, size_t len, struct observed *o)
{
	const char *p = msg, *end = msg + len;
	char fromdom[256] = "";
	struct field f;

	memset(o, 0, sizeof(*o));
	while (next_field(&p, end, &f) > 0) {
		if (strcasecmp(f.name, "Received") == 0 && !o->have_received)
			parse_received(f.value, r->hostname, o);
		else if (strcasecmp(f.name, "Authentication-Results") == 0 && !o->have_ar)
			parse_authres(f.value, r->authserv_id, o);
		else if (strcasecmp(f.name, "From") == 0 && !fromdom[0])
			from_domain(f.value, fromdom, sizeof(fromdom));
		else if (strcasecmp(f.name, "Message-ID") == 0 && !o->message_id[0])
			repverdict_clean(skip_ws(f.value), o->message_id, sizeof(o->message_id));
		free(f.value);
	}
	if (!o->from_domain[0])
		snprintf(o->from_domain, sizeof(o->from_domain), "%s", fromdom);
	if (!domain_ok(o->from_domain))
		o->from_domain[0] = '\0';
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
	struct observed o;
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
	observe(r, msg, len, &o);
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
