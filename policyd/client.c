/*
 * client.c - anchor-policyd's questions to anchor-reputation: GET /v1/query
 * over HTTPS with libcurl's multi interface driven by the daemon's libevent
 * loop, so that a slow answer never blocks other connections.  Every query
 * has a hard timeout (timeout_ms); after a failure the client refuses to ask
 * for `backoff` seconds, so that an outage costs each message nothing rather
 * than timeout_ms.  Connections are kept alive between queries (the multi
 * handle's connection cache).
 *
 * At most reputation_connections connections are open to the service at once;
 * queries beyond that wait in libcurl's queue for a connection to come free
 * (still within their timeout_ms).  anchor-reputation closes at once every
 * connection from one address beyond its max_connections_per_ip (32 by default),
 * so without this bound a burst of queries would open one connection each, and
 * every one the service closed would fail open (and start the backoff).  The
 * connection cache keeps as many as may be open, so that a burst reuses its
 * connections instead of closing one and opening the next.
 *
 * Only an outage backs off: no answer, a timeout, 429, 5xx or an answer that is not a
 * verdict.  A 4xx (but 429) is the service refusing this one question, which carries
 * the SMTP client's own text: it says nothing about the service, so it never backs off
 * (one client's odd HELO would otherwise silence the service for everybody).  The
 * question is asked again with the client address alone, which policyd has checked
 * (an IP address, as Postfix saw it): the verdict then carries a note saying what was
 * refused and the service's message.  Refused even so, the query fails with
 * ERR_INPUT "refused" and still no backoff.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "core/log.h"
#include "http/https_client.h"
#include "policyd.h"
#include "mail/repverdict.h"

#define ANSWER_MAX (256 * 1024)

struct query {
	struct policy_client *c;
	CURL *easy;
	char *body;
	size_t len;
	int too_big;
	policy_done_fn done; /* NULL once cancelled */
	void *arg;
	char ip[64];       /* for the retry with the address alone */
	int full;          /* more than the address was asked */
	char refused[300]; /* the refusal of the full question, once retried */
	char errbuf[CURL_ERROR_SIZE];
	struct query *next;
};

struct sockctx {
	struct event *ev;
};

struct policy_client {
	struct event_base *base;
	const struct policy_settings *s;
	CURLM *multi;
	struct event *timer;
	struct query *queries;
	int running;
	time_t down_until;
};

/* ------------------------------------------------------------------ completion */

static void query_destroy(struct query *q)
{
	curl_multi_remove_handle(q->c->multi, q->easy);
	curl_easy_cleanup(q->easy);
	free(q->body);
	free(q);
}

static void query_free(struct query *q)
{
	struct query **p;

	for (p = &q->c->queries; *p != NULL; p = &(*p)->next)
		if (*p == q) {
			*p = q->next;
			break;
		}
	query_destroy(q);
}

/* The service's own {"error", "message"} of a refusal, as one line of printable ASCII. */
static void refusal_text(const struct query *q, long status, char *out, size_t size)
{
	json_t *doc = q->body != NULL ? json_loadb(q->body, q->len, 0, NULL) : NULL;
	const char *code = json_string_value(json_object_get(doc, "error"));
	const char *msg = json_string_value(json_object_get(doc, "message"));
	char raw[400];

	snprintf(raw, sizeof(raw), "HTTP %ld %s: %s", status, code ? code : "(no code)",
	         msg ? msg : "(no message)");
	repverdict_clean(raw, out, size);
	json_decref(doc);
}

static int start_query(struct policy_client *c, const char *ip, const char *helo,
                       const char *domain, policy_done_fn done, void *arg, const char *refused,
                       struct err *e);

static void finish(struct query *q, CURLcode rc)
{
	struct policy_client *c = q->c;
	policy_done_fn done = q->done;
	void *arg = q->arg;
	struct policy_verdict v;
	struct err e = {0};
	long status = 0;
	int ok = 0, refused = 0;

	curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK)
		err_set(&e, ERR_TEMP, rc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "unreachable",
		        "%s", q->errbuf[0] ? q->errbuf : curl_easy_strerror(rc));
	else if (q->too_big)
		err_set(&e, ERR_UNPROC, "bad_answer", "the answer is larger than %d octets",
		        ANSWER_MAX);
	else if (status >= 400 && status < 500 && status != 429)
		refused = 1;
	else if (status != 200)
		err_set(&e, ERR_TEMP, "http_status", "anchor-reputation answered HTTP %ld", status);
	else if (policy_verdict_from_json(q->body ? q->body : "", q->len, &v, &e) == 0)
		ok = 1;
	if (ok && q->refused[0] != '\0')
		snprintf(v.note, sizeof(v.note), "%s", q->refused);
	if (refused) {
		char text[260];

		refusal_text(q, status, text, sizeof(text));
		if (q->full && done != NULL) {
			char note[300];
			struct err re = {0};

			snprintf(note, sizeof(note),
			         "judged on the client address alone: the service refused the "
			         "full query (%.220s)",
			         text);
			/* the same callback, once, when the second answer comes */
			if (start_query(c, q->ip, NULL, NULL, done, arg, note, &re) == 0) {
				query_free(q);
				return;
			}
			e = re;
		} else {
			err_set(&e, ERR_INPUT, "refused", "anchor-reputation refused the query: %s",
			        text);
		}
	} else if (!ok) {
		c->down_until = time(NULL) + c->s->backoff;
	}
	query_free(q);
	if (done != NULL)
		done(arg, ok ? &v : NULL, &e);
}

static void check_done(struct policy_client *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		struct query *q = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
		if (q != NULL)
			finish(q, msg->data.result);
	}
}

/* ------------------------------------------------------------------ libevent glue */

static void on_socket_event(evutil_socket_t fd, short kind, void *arg)
{
	struct policy_client *c = arg;
	int action =
	    (kind & EV_READ ? CURL_CSELECT_IN : 0) | (kind & EV_WRITE ? CURL_CSELECT_OUT : 0);

	/* No evtimer_del when nothing runs: check_done may just have started a query, and
	 * libcurl keeps the timer right through set_timer. */
	curl_multi_socket_action(c->multi, fd, action, &c->running);
	check_done(c);
}

static void on_timer(evutil_socket_t fd, short kind, void *arg)
{
	struct policy_client *c = arg;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &c->running);
	check_done(c);
}

static int set_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct policy_client *c = userp;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	if (timeout_ms < 0)
		evtimer_del(c->timer);
	else
		evtimer_add(c->timer, &tv);
	return 0;
}

static int watch_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct policy_client *c = userp;
	struct sockctx *sc = socketp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (sc != NULL) {
			event_free(sc->ev);
			free(sc);
		}
		curl_multi_assign(c->multi, s, NULL);
		return 0;
	}
	kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0) |
	               EV_PERSIST);
	if (sc == NULL) {
		sc = calloc(1, sizeof(*sc));
		if (sc == NULL)
			return -1;
		curl_multi_assign(c->multi, s, sc);
	} else {
		event_free(sc->ev);
	}
	sc->ev = event_new(c->base, s, kind, on_socket_event, c);
	if (sc->ev == NULL)
		return -1;
	event_add(sc->ev, NULL);
	return 0;
}

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
	struct query *q = arg;
	size_t len = size * n;
	char *b;

	if (q->len + len > ANSWER_MAX) {
		q->too_big = 1;
		return 0; /* aborts the transfer */
	}
	b = realloc(q->body, q->len + len + 1);
	if (b == NULL)
		return 0;
	memcpy(b + q->len, data, len);
	q->len += len;
	b[q->len] = '\0';
	q->body = b;
	return len;
}

/* ------------------------------------------------------------------ the API */

struct policy_client *policy_client_new(struct event_base *base, const struct policy_settings *s,
                                        struct err *e)
{
	struct policy_client *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	c->base = base;
	c->s = s;
	c->multi = curl_multi_init();
	c->timer = evtimer_new(base, on_timer, c);
	if (c->multi == NULL || c->timer == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "cannot set up libcurl");
		policy_client_free(c);
		return NULL;
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, watch_socket);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, set_timer);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)s->reputation_connections);
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)s->reputation_connections);
	return c;
}

void policy_client_free(struct policy_client *c)
{
	struct query *q, *next;

	if (c == NULL)
		return;
	for (q = c->queries, c->queries = NULL; q != NULL; q = next) {
		next = q->next;
		query_destroy(q);
	}
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	if (c->timer != NULL)
		event_free(c->timer);
	free(c);
}

void policy_client_cancel(struct policy_client *c, void *arg)
{
	struct query *q;

	for (q = c->queries; q != NULL; q = q->next)
		if (q->arg == arg)
			q->done = NULL;
}

/* "&name=<escaped value>" appended to *url (malloc'd, grown); nothing for an empty value. */
static int add_param(CURL *easy, char **url, const char *name, const char *value)
{
	char *esc, *grown;
	size_t len = strlen(*url), need;

	if (value == NULL || value[0] == '\0')
		return 0;
	esc = curl_easy_escape(easy, value, 0);
	if (esc == NULL)
		return -1;
	need = len + strlen(name) + strlen(esc) + 3;
	grown = realloc(*url, need);
	if (grown == NULL) {
		curl_free(esc);
		return -1;
	}
	snprintf(grown + len, need - len, "%s%s=%s", strchr(grown, '?') ? "&" : "?", name, esc);
	curl_free(esc);
	*url = grown;
	return 0;
}

static char *query_url(const struct policy_client *c, CURL *easy, const char *ip, const char *helo,
                       const char *domain)
{
	size_t blen = strlen(c->s->reputation_url);
	char *url;

	if (blen > 0 && c->s->reputation_url[blen - 1] == '/')
		blen--;
	url = malloc(blen + sizeof("/v1/query"));
	if (url == NULL)
		return NULL;
	memcpy(url, c->s->reputation_url, blen);
	memcpy(url + blen, "/v1/query", sizeof("/v1/query"));
	if (add_param(easy, &url, "ip", ip) < 0 || add_param(easy, &url, "helo", helo) < 0 ||
	    add_param(easy, &url, "domain", domain) < 0) {
		free(url);
		return NULL;
	}
	return url;
}

static int start_query(struct policy_client *c, const char *ip, const char *helo,
                       const char *domain, policy_done_fn done, void *arg, const char *refused,
                       struct err *e)
{
	struct query *q = calloc(1, sizeof(*q));
	/* A local policy service may be plain http; https is verified as everywhere. */
	struct https_opts opts = {.cacert =
	                              c->s->cacert != NULL && c->s->cacert[0] ? c->s->cacert : NULL,
	                          .connect_timeout_ms = (int)c->s->timeout_ms,
	                          .timeout_ms = (int)c->s->timeout_ms,
	                          .user_agent = "anchor-policyd/1",
	                          .allow_http = 1};
	char *url;

	if (q == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	q->c = c;
	q->done = done;
	q->arg = arg;
	snprintf(q->ip, sizeof(q->ip), "%s", ip);
	q->full = (helo != NULL && helo[0] != '\0') || (domain != NULL && domain[0] != '\0');
	snprintf(q->refused, sizeof(q->refused), "%s", refused ? refused : "");
	q->easy = curl_easy_init();
	if (q->easy == NULL) {
		free(q);
		return err_set(e, ERR_INTERNAL, "internal", "cannot set up libcurl");
	}
	url = query_url(c, q->easy, ip, helo, domain);
	if (url == NULL) {
		curl_easy_cleanup(q->easy);
		free(q);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory for the query URL");
	}
	curl_easy_setopt(q->easy, CURLOPT_URL, url); /* libcurl keeps its own copy */
	free(url);
	curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
	curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(q->easy, CURLOPT_ERRORBUFFER, q->errbuf);
	https_easy_setup(q->easy, &opts);
	if (curl_multi_add_handle(c->multi, q->easy) != CURLM_OK) {
		curl_easy_cleanup(q->easy);
		free(q);
		return err_set(e, ERR_INTERNAL, "internal", "cannot start the query");
	}
	q->next = c->queries;
	c->queries = q;
	return 0;
}

int policy_client_query(struct policy_client *c, const char *ip, const char *helo,
                        const char *domain, policy_done_fn done, void *arg, struct err *e)
{
	if (time(NULL) < c->down_until)
		return err_set(
		    e, ERR_TEMP, "backoff",
		    "anchor-reputation failed less than %lld s ago; not asking again yet",
		    c->s->backoff);
	return start_query(c, ip, helo, domain, done, arg, NULL, e);
}
