/*
 * client.c - anchor-policyd's questions to anchor-reputation: GET /v1/query
 * over HTTPS with libcurl's multi interface driven by the daemon's libevent
 * loop, so that a slow answer never blocks other connections.  Every query
 * has a hard timeout (timeout_ms); after a failure the client refuses to ask
 * for `backoff` seconds, so that an outage costs each message nothing rather
 * than timeout_ms.  Connections are kept alive between queries (the multi
 * handle's connection cache).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "log.h"
#include "policyd.h"

#define ANSWER_MAX (256 * 1024)

struct query {
	struct policy_client *c;
	CURL *easy;
	char *body;
	size_t len;
	int too_big;
	policy_done_fn done; /* NULL once cancelled */
	void *arg;
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

static void finish(struct query *q, CURLcode rc)
{
	struct policy_client *c = q->c;
	policy_done_fn done = q->done;
	void *arg = q->arg;
	struct policy_verdict v;
	struct err e = {0};
	long status = 0;
	int ok = 0;

	curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK)
		err_set(&e, ERR_TEMP, rc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "unreachable",
		        "%s", q->errbuf[0] ? q->errbuf : curl_easy_strerror(rc));
	else if (q->too_big)
		err_set(&e, ERR_UNPROC, "bad_answer", "the answer is larger than %d octets",
		        ANSWER_MAX);
	else if (status != 200)
		err_set(&e, ERR_TEMP, "http_status", "anchor-reputation answered HTTP %ld", status);
	else if (policy_verdict_from_json(q->body ? q->body : "", q->len, &v, &e) == 0)
		ok = 1;
	if (!ok)
		c->down_until = time(NULL) + c->s->backoff;
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
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 16L);
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

static int add_param(CURL *easy, char *url, size_t size, const char *name, const char *value)
{
	char *esc;
	size_t len = strlen(url);
	int n;

	if (value == NULL || value[0] == '\0')
		return 0;
	esc = curl_easy_escape(easy, value, 0);
	if (esc == NULL)
		return -1;
	n = snprintf(url + len, size - len, "%s%s=%s", strchr(url, '?') ? "&" : "?", name, esc);
	curl_free(esc);
	return n < 0 || (size_t)n >= size - len ? -1 : 0;
}

int policy_client_query(struct policy_client *c, const char *ip, const char *helo,
                        const char *domain, policy_done_fn done, void *arg, struct err *e)
{
	char url[2048];
	struct query *q;
	time_t now = time(NULL);
	size_t blen = strlen(c->s->reputation_url);

	if (now < c->down_until)
		return err_set(
		    e, ERR_TEMP, "backoff",
		    "anchor-reputation failed less than %lld s ago; not asking again yet",
		    c->s->backoff);
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	q->c = c;
	q->done = done;
	q->arg = arg;
	q->easy = curl_easy_init();
	if (q->easy == NULL) {
		free(q);
		return err_set(e, ERR_INTERNAL, "internal", "cannot set up libcurl");
	}
	snprintf(url, sizeof(url), "%.*s/v1/query",
	         (int)(blen > 0 && c->s->reputation_url[blen - 1] == '/' ? blen - 1 : blen),
	         c->s->reputation_url);
	if (add_param(q->easy, url, sizeof(url), "ip", ip) < 0 ||
	    add_param(q->easy, url, sizeof(url), "helo", helo) < 0 ||
	    add_param(q->easy, url, sizeof(url), "domain", domain) < 0) {
		curl_easy_cleanup(q->easy);
		free(q);
		return err_set(e, ERR_INPUT, "bad_request", "the query does not fit in a URL");
	}
	curl_easy_setopt(q->easy, CURLOPT_URL, url);
	curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
	curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(q->easy, CURLOPT_ERRORBUFFER, q->errbuf);
	curl_easy_setopt(q->easy, CURLOPT_TIMEOUT_MS, (long)c->s->timeout_ms);
	curl_easy_setopt(q->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)c->s->timeout_ms);
	curl_easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(q->easy, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(q->easy, CURLOPT_USERAGENT, "anchor-policyd/1");
	if (c->s->cacert != NULL && c->s->cacert[0] != '\0')
		curl_easy_setopt(q->easy, CURLOPT_CAINFO, c->s->cacert);
	if (curl_multi_add_handle(c->multi, q->easy) != CURLM_OK) {
		curl_easy_cleanup(q->easy);
		free(q);
		return err_set(e, ERR_INTERNAL, "internal", "cannot start the query");
	}
	q->next = c->queries;
	c->queries = q;
	return 0;
}
