/*
 * partial_fetch.c - receiver-chosen transfer, the receiver's fetch (PROTOCOL.md §12.12):
 * on its user's request (the control API, POST /v1/partial/{id}/fetch), the whole
 * message of a view is fetched from its sender, checked against what the view promised
 * (its size and SHA-256), verified as any message is, and queued for the view's
 * recipients beside the view; then the sender is told (FETCH ... DONE) and the record
 * goes.  A refused or mismatching fetch queues nothing and keeps the record.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "deliver_conn.h"
#include "partial.h"
#include "peers.h"
#include "pki/crypto.h"
#include "relayd.h"

#define FETCH_MAX_RCPTS 1000

static struct relayd *partial_d;

void relayd_partial_start(struct relayd *d)
{
	partial_d = d;
}

struct record {
	char peer[RELAY_PEER_NAME_MAX]; /* the anchored peer the view came from */
	char sender[SMTP_PATH_MAX];
	char *rcpts[FETCH_MAX_RCPTS];
	size_t n;
	struct relay_partial_meta m; /* token, sha256, size, view, host, port */
	int smtputf8;
};

static void record_clear(struct record *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->rcpts[i]);
	r->n = 0;
}

static void result(struct relay_partial_result *out, int http, const char *code, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
static void result(struct relay_partial_result *out, int http, const char *code, const char *fmt,
                   ...)
{
	va_list ap;

	out->http = http;
	snprintf(out->code, sizeof(out->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(out->text, sizeof(out->text), fmt, ap);
	va_end(ap);
}

/* One "key=value" line of a record. */
static int record_line(struct record *r, const char *k, const char *v, char *meta, size_t msize)
{
	size_t ml = strlen(meta);

	if (strcmp(k, "peer") == 0)
		snprintf(r->peer, sizeof(r->peer), "%s", v);
	else if (strcmp(k, "sender") == 0)
		snprintf(r->sender, sizeof(r->sender), "%s", v);
	else if (strcmp(k, "rcpt") == 0) {
		if (r->n >= FETCH_MAX_RCPTS || (r->rcpts[r->n] = strdup(v)) == NULL)
			return -1;
		r->n++;
	} else if (strcmp(k, "smtputf8") == 0)
		r->smtputf8 = strcmp(v, "1") == 0;
	else if (ml + strlen(k) + strlen(v) + 4 < msize) /* the sender's fields, checked below */
		snprintf(meta + ml, msize - ml, "%s%s=%s", ml ? "; " : "", k, v);
	return 0;
}

static int record_read(const char *id, struct record *r, struct relay_partial_result *out)
{
	char path[4096], meta[1024] = "", *text, *line, *save = NULL;
	struct err e = {0};
	size_t len;

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "%s/partial/in/%s", partial_d->s->state_dir, id);
	if ((text = relay_partial_file_read(path, 1 << 20, &len, &e)) == NULL) {
		result(out, 404, "not_found", "no partial message %s here (never, or fetched)", id);
		return -1;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		if (record_line(r, line, eq + 1, meta, sizeof(meta)) < 0)
			break;
	}
	free(text);
	if (r->n == 0 || r->peer[0] == '\0' ||
	    relay_partial_meta_parse(meta, strlen(meta), &r->m, &e) < 0) {
		record_clear(r);
		result(out, 500, "bad_record", "the record of %s is unreadable: %s", id, e.msg);
		return -1;
	}
	return 0;
}

/* "2.0.0 N octets follow" -> N; -1 when the reply says something else. */
static long long announced(const struct relay_smtp_reply *rep)
{
	const char *p = rep->text;
	char *end;
	long long n;

	if (rep->enhanced[0] != '\0' && strncmp(p, rep->enhanced, strlen(rep->enhanced)) == 0)
		p += strlen(rep->enhanced);
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	n = strtoll(p, &end, 10);
	return strncmp(end, " octets", 7) == 0 ? n : -1;
}

/* Greeting, EHLO, STARTTLS (our client certificate: anchored_client), and the server
 * proven to hold the key of the peer the view came from; EHLO again, into caps. */
static int fetch_session(struct relay_dconn *c, const struct record *r,
                         struct relay_smtp_caps *caps, struct relay_partial_result *out)
{
	const struct relay_settings *s = partial_d->s;
	int t = (int)s->command_timeout;
	struct relay_smtp_reply rep;
	struct relay_hop hop;
	char name[RELAY_PEER_NAME_MAX];

	memset(&hop, 0, sizeof(hop));
	snprintf(hop.host, sizeof(hop.host), "%s", r->m.host);
	hop.port = r->m.port;
	hop.tls_required = 1;
	if (relay_dconn_tcp(c, r->m.host, r->m.port, (int)s->connect_timeout) < 0 ||
	    relay_dconn_read_reply(c, t, &rep) < 0 || rep.code != 220 ||
	    relay_dconn_printf(c, t, "EHLO %s\r\n", s->hostname) < 0 ||
	    relay_dconn_read_reply(c, t, &rep) < 0 ||
	    relay_dconn_printf(c, t, "STARTTLS\r\n") < 0 ||
	    relay_dconn_read_reply(c, t, &rep) < 0) {
		result(out, 502, "sender_unreachable", "%s", c->why[0] ? c->why : "no greeting");
		return -1;
	}
	if (rep.code != 220 || c->inlen > 0 || relay_dconn_tls(c, &hop, t) < 0) {
		result(out, 502, "fetch_refused", "%s: no TLS for the fetch (%d %s)", c->peer,
		       rep.code, c->why[0] ? c->why : rep.text);
		return -1;
	}
	if (!relay_peer_of_ssl(s, c->ssl, name, sizeof(name)) || strcmp(name, r->peer) != 0) {
		result(out, 502, "fetch_refused",
		       "%s does not hold the key of %s, the peer the view came from", c->peer,
		       r->peer);
		return -1;
	}
	if (relay_dconn_printf(c, t, "EHLO %s\r\n", s->hostname) < 0 ||
	    relay_dconn_read_reply(c, t, &rep) < 0) {
		result(out, 502, "sender_unreachable", "%s", c->why);
		return -1;
	}
	relay_smtp_caps_parse(&rep, caps);
	return 0;
}

/* The session, FETCH; *msg the message (malloc'd) or out says why not.  The session stays
 * open for DONE. */
static int fetch_bytes(struct relay_dconn *c, const struct record *r, char **msg, size_t *len,
                       struct relay_partial_result *out)
{
	const struct relay_settings *s = partial_d->s;
	int t = (int)s->command_timeout, td = (int)s->data_timeout;
	struct relay_smtp_reply rep;
	struct relay_smtp_caps caps;
	long long n;

	if (fetch_session(c, r, &caps, out) < 0)
		return -1;
	if (!caps.anchor_partial) {
		result(out, 502, "fetch_refused", "%s does not offer ANCHOR-PARTIAL to us",
		       c->peer);
		return -1;
	}
	if (relay_dconn_printf(c, t, "FETCH %s\r\n", r->m.token) < 0 ||
	    relay_dconn_read_reply(c, td, &rep) < 0) {
		result(out, 502, "sender_unreachable", "%s", c->why);
		return -1;
	}
	if (rep.code != 250 || (n = announced(&rep)) < 0) {
		result(out, rep.code / 100 == 4 ? 503 : 502, "fetch_refused", "%s: %d %s", c->peer,
		       rep.code, rep.text);
		return -1;
	}
	if ((unsigned long long)n != r->m.size) {
		result(out, 502, "hash_mismatch", "%s announces %lld octets; the view said %llu",
		       c->peer, n, r->m.size);
		return -1;
	}
	if ((*msg = malloc((size_t)n + 1)) == NULL ||
	    relay_dconn_read_bytes(c, *msg, (size_t)n, td) < 0) {
		result(out, 502, "sender_unreachable", "%s", *msg ? c->why : "out of memory");
		return -1;
	}
	(*msg)[n] = '\0';
	*len = (size_t)n;
	return 0;
}

/* ---- queueing ---- */

struct commit_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, ok;
};

static void on_commit(const char *id, int ok, const struct err *e, void *arg)
{
	struct commit_wait *w = arg;

	(void)id;
	(void)e;
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	w->ok = ok;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Our trace fields, the tier header and Anchor-Partial before the fetched message. */
static char *full_head(const struct record *r, const char *id, const struct relay_auth *a,
                       struct err *e)
{
	const struct relay_settings *s = partial_d->s;
	const char *authserv = s->authserv_id ? s->authserv_id : s->hostname;
	struct relay_tier_input in = {0};
	char date[64], why[200], *ar, *out = NULL;
	enum relay_tier t;

	in.auth = a;
	in.list = relay_tier_lists(partial_d->lists, r->rcpts[0], a);
	t = relay_tier_decide(&in, why, sizeof(why));
	relayd_rfc5322_date(time(NULL), date, sizeof(date));
	if ((ar = relay_authres_field(authserv, a, r->m.host, "", "", e)) == NULL)
		return NULL;
	if (asprintf(
	        &out,
	        "Received: from [%s] by %s (anchor-relay) with ESMTP (ANCHOR-PARTIAL FETCH);\r\n"
	        "\t%s\r\n%s\r\n%s: %s (%s)\r\n" RELAY_PARTIAL_FIELD ": id=%s; view=full\r\n",
	        r->m.host, s->hostname, date, ar, s->tier_header, relay_tier_name(t), why, id) < 0)
		out = NULL;
	free(ar);
	return out;
}

static int queue_full(const struct record *r, const char *id, const char *msg, size_t len,
                      struct relay_partial_result *out)
{
	const struct relay_settings *s = partial_d->s;
	struct relay_auth a = {0};
	struct relay_refusal rf;
	struct commit_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
	struct err e = {0};
	char *clean, *head = NULL, *full = NULL, **rcpts = NULL;
	size_t cleanlen, hl;
	int rc = -1;

	clean = relayd_strip_our_fields(msg, len, s->authserv_id ? s->authserv_id : s->hostname,
	                                s->tier_header, &cleanlen);
	a.smtputf8 = r->smtputf8;
	if (clean == NULL ||
	    relay_verify_message(partial_d->verifier, clean, cleanlen, &a, &e) < 0) {
		result(out, 502, "message_refused", "the message cannot be read: %s", e.msg);
		goto out;
	}
	if (relay_auth_refusal(&a, &rf)) {
		result(out, 502, "message_refused", "%d %s %s", rf.code, rf.status, rf.text);
		goto out;
	}
	if ((head = full_head(r, id, &a, &e)) == NULL ||
	    (full = malloc((hl = strlen(head)) + cleanlen)) == NULL ||
	    (rcpts = relay_partial_rcpts(s, partial_d->lists, &a, r->rcpts, r->n)) == NULL) {
		result(out, 503, "internal", "out of memory");
		goto out;
	}
	memcpy(full, head, hl);
	memcpy(full + hl, clean, cleanlen);
	if (queue_submit(partial_d->qin, r->sender, (const char *const *)rcpts, r->n, full,
	                 hl + cleanlen, on_commit, &w, out->queue_id, &e) < 0) {
		result(out, 503, "queue_failed", "%s", e.msg);
		goto out;
	}
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	if (!w.ok)
		result(out, 503, "queue_failed", "the message could not be queued");
	else
		rc = 0;
out:
	relay_partial_rcpts_free(rcpts, r->n);
	free(full);
	free(head);
	free(clean);
	relay_auth_clear(&a);
	return rc;
}

static int is_rcpt(const struct record *r, const char *rcpt)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcasecmp(r->rcpts[i], rcpt) == 0)
			return 1;
	return 0;
}

void relayd_partial_fetch(const char *id, const char *rcpt, struct relay_partial_result *out)
{
	struct record r;
	struct relay_dconn c;
	struct relay_smtp_reply rep;
	char *msg = NULL, hash[CRYPTO_HEX256_LEN], path[4096];
	size_t len = 0;
	int t;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.fd = -1;
	if (partial_d == NULL || !relay_partial_is_hex(id, RELAY_PARTIAL_ID_HEX)) {
		result(out, 404, "not_found", "no partial message %.40s here", id);
		return;
	}
	if (record_read(id, &r, out) < 0)
		return;
	if (rcpt != NULL && !is_rcpt(&r, rcpt)) {
		result(out, 403, "not_your_message", "%s is not a recipient of %s", rcpt, id);
		record_clear(&r);
		return;
	}
	t = (int)partial_d->s->command_timeout;
	if (fetch_bytes(&c, &r, &msg, &len, out) == 0) {
		crypto_sha256_hex(msg, len, hash);
		if (strcmp(hash, r.m.sha256) != 0)
			result(out, 502, "hash_mismatch",
			       "the message fetched from %s is not the one the view described "
			       "(SHA-256 %.16s..., the view said %.16s...)",
			       c.peer, hash, r.m.sha256);
		else if (queue_full(&r, id, msg, len, out) == 0) {
			result(out, 200, "fetched", "%zu octets from %s, queued as %s", len, c.peer,
			       out->queue_id);
			if (relay_dconn_printf(&c, t, "FETCH %s DONE\r\n", r.m.token) == 0)
				relay_dconn_read_reply(&c, t, &rep);
			snprintf(path, sizeof(path), "%s/partial/in/%s", partial_d->s->state_dir,
			         id);
			unlink(path);
		}
	}
	if (c.fd >= 0 && relay_dconn_printf(&c, 5, "QUIT\r\n") == 0)
		relay_dconn_read_reply(&c, 5, &rep);
	relay_dconn_close(&c);
	log_info(NULL, "partial %s: fetch: %s: %s", id, out->code, out->text);
	free(msg);
	record_clear(&r);
}
