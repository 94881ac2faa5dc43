/*
 * control.c - the relay's HTTPS control API (see control.h and
 * PROTOCOL.md §12.6), over lib/http:
 *
 *   GET    /v1/lists/{rcpt}                          the recipient's lists
 *   PUT    /v1/lists/{rcpt}/{trust|block|subscribe}/{entry}
 *   DELETE /v1/lists/{rcpt}/{trust|block|subscribe}/{entry}
 *   POST   /v1/complaints  {"category": "spam"|"not-spam", "message": <base64>}
 *   POST   /v1/sign        {"message": <base64>}: signed and given back (signback.c)
 *   POST   /v1/partial/{id}/fetch                    a view's whole message (partial_fetch.c)
 *
 * Two ways in.  The admin sends "Authorization: Bearer <token>" (the SHA-256
 * of the token is control_token_hash) and may act for any local recipient.
 * A recipient sends, as the request body, a flattened JWS signed by its own
 * S/MIME key with x5c [leaf, issuer, root]; the root must be pinned by the
 * recipient's domain in DNS, the leaf must name the recipient and still be
 * its current key (lib/certauth: pin, chain, name and the key server's status
 * of the certificate, so a revoked or superseded key changes nothing), and the
 * payload binds the method, the path, the real body and the time, so that a
 * signed request cannot be replayed elsewhere or later (control_signed.c).
 */
#include "core/hash.h"
#include "control.h"
#include "deliver_cache.h"
#include "deliver_resume.h"
#include "encrypt.h"
#include "held_sweep.h"
#include "defer.h"
#include "partial.h"
#include "signback.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509v3.h>

#include "pki/cert.h"
#include "pki/name.h"
#include "dns/certauth.h"
#include "dns/discover.h"
#include "http/http.h"
#include "http/metrics.h"
#include "pki/jws.h"
#include "core/log.h"
#include "core/text.h"
#include "mail/queue.h"

#define CONTROL_THREADS 4
#define CONTROL_MAX_CONNECTIONS 64
#define CONTROL_CONN_TIMEOUT 30
#define CONTROL_RATE 20.0
#define CONTROL_BURST 60.0
#define CONTROL_DEFAULT_MESSAGE_MAX (10LL * 1024 * 1024)
#define REPLAY_BUCKETS 256
#define REPLAY_SAME_SECOND 16 /* requests one key may sign within the same second */
#define REPLAY_PRUNE_AT 4096

/* The newest request accepted from one key, and those accepted in that second. */
struct replay {
	struct replay *next;
	char pin[CRYPTO_PIN_MAX];
	long long newest;
	int n;
	uint8_t seen[REPLAY_SAME_SECOND][32];
};

struct relay_control {
	const struct relay_settings *s;
	struct relay_lists *lists;
	struct relay_rep *rep;
	struct relay_signer_client *sc;
	struct queue *qin, *qout;     /* for /metrics; either may be NULL */
	struct metrics_tls *smtp_tls; /* STARTTLS handshakes, for /metrics; may be NULL */
	struct discover_ctx *disc;
	struct certauth *auth; /* the signer's certificate and its status, cached */
	struct http_server *http;
	long long started; /* replay memory is lost on restart: refuse what is older */
	pthread_mutex_t replay_mu;
	struct replay *replay[REPLAY_BUCKETS];
	size_t nreplay;
	struct relay_defer *defer; /* held messages' decisions (defer_control.c); may be NULL */
};

/* ---- signed requests ---- */

/* ---- replay ---- */

static unsigned replay_bucket(const char *pin)
{
	return (unsigned)(hash_str(pin) % REPLAY_BUCKETS);
}

/* Forget keys whose newest request is out of the window: anything they sign now is newer. */
static void replay_prune(struct relay_control *c, long long now)
{
	for (size_t b = 0; b < REPLAY_BUCKETS; b++) {
		struct replay **rp = &c->replay[b];
		while (*rp != NULL) {
			if ((*rp)->newest < now - RELAY_CONTROL_WINDOW - 1) {
				struct replay *dead = *rp;
				*rp = dead->next;
				free(dead);
				c->nreplay--;
			} else {
				rp = &(*rp)->next;
			}
		}
	}
}

/* Accept a request only when it is newer than (or, in the same second, different from) every
 * request accepted before from its key. */
static int replay_check(struct relay_control *c, const struct relay_control_signed *r,
                        struct err *e)
{
	struct replay *x;
	unsigned b = replay_bucket(r->key_pin);
	int rc = 0;

	if (r->issued < c->started)
		return err_set(e, ERR_INPUT, "stale_request",
		               "the request was signed before the relay started; sign it again");
	pthread_mutex_lock(&c->replay_mu);
	for (x = c->replay[b]; x != NULL; x = x->next)
		if (strcmp(x->pin, r->key_pin) == 0)
			break;
	if (x == NULL) {
		if (c->nreplay >= REPLAY_PRUNE_AT)
			replay_prune(c, (long long)time(NULL));
		if ((x = calloc(1, sizeof(*x))) == NULL) {
			rc = err_set(e, ERR_INTERNAL, "internal", "out of memory");
			goto out;
		}
		snprintf(x->pin, sizeof(x->pin), "%s", r->key_pin);
		x->newest = r->issued - 1;
		x->next = c->replay[b];
		c->replay[b] = x;
		c->nreplay++;
	}
	if (r->issued > x->newest) {
		x->newest = r->issued;
		x->n = 0;
	} else if (r->issued < x->newest) {
		rc = err_set(e, ERR_CONFLICT, "replayed",
		             "a request signed later was already accepted from this key");
		goto out;
	}
	for (int i = 0; i < x->n; i++)
		if (memcmp(x->seen[i], r->digest, 32) == 0) {
			rc = err_set(e, ERR_CONFLICT, "replayed",
			             "this request was already accepted");
			goto out;
		}
	if (x->n == REPLAY_SAME_SECOND) {
		rc = err_set(e, ERR_RATE, "rate_limited",
		             "too many requests signed in the same second; sign again");
		goto out;
	}
	memcpy(x->seen[x->n++], r->digest, 32);
out:
	pthread_mutex_unlock(&c->replay_mu);
	return rc;
}

/* ---- authorisation ---- */

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* rcpt must be a mail address of one of local_domains. */
static int local_rcpt(const struct relay_control *c, const char *rcpt, struct err *e)
{
	struct err ne = {0};

	if (name_check_address(rcpt, &ne) < 0)
		return err_set(e, ERR_INPUT, "bad_name", "'%.100s' is not a mail address: %s", rcpt,
		               ne.msg);
	if (!relay_is_local_domain(c->s, domain_of(rcpt)))
		return err_set(e, ERR_NOTFOUND, "unknown_domain",
		               "this relay does not receive mail for %s", domain_of(rcpt));
	return 0;
}

/* Who may act: the admin (*admin = 1) or the recipient who signed the body. */
struct caller {
	int admin;
	char rcpt[RELAY_ADDR_MAX]; /* the signer; "" for the admin */
	json_t *body;              /* the effective body (a reference), or NULL */
	char key_pin[CRYPTO_PIN_MAX];
};

/* A user-signed request; local: the signer must be of a local domain (a recipient). */
static int authorize_user(struct relay_control *c, const struct http_request *req, int local,
                          struct caller *who, struct err *e)
{
	struct relay_control_signed r = {0};
	char addr[RELAY_ADDR_MAX];
	int rc = -1;

	if (relay_control_peek_address(req->json, addr, e) < 0 ||
	    (local && local_rcpt(c, addr, e) < 0))
		goto out;
	if (relay_control_verify_request(c->auth, req->body, req->body_len, req->method, req->path,
	                                 time(NULL), &r, e) < 0 ||
	    replay_check(c, &r, e) < 0)
		goto out;
	snprintf(who->rcpt, sizeof(who->rcpt), "%s", r.address);
	snprintf(who->key_pin, sizeof(who->key_pin), "%s", r.key_pin);
	who->body = r.body;
	r.body = NULL;
	rc = 0;
out:
	relay_control_signed_clear(&r);
	return rc;
}

static int authorize_as(struct relay_control *c, const struct http_request *req, int local,
                        struct caller *who, struct err *e)
{
	memset(who, 0, sizeof(*who));
	if (req->authorization != NULL) {
		if (http_auth_token_hash(req, c->s->control_token_hash, e) < 0) {
			if (e->kind == ERR_FORBIDDEN)
				err_set(e, ERR_FORBIDDEN, "forbidden",
				        "the admin API is disabled here (control_token_hash is not "
				        "set); sign the request with the recipient's key");
			else
				err_set(e, ERR_AUTH, "unauthorized",
				        "the admin token is not valid");
			return -1;
		}
		who->admin = 1;
		who->body = req->json != NULL ? json_incref(req->json) : NULL;
		return 0;
	}
	if (req->json != NULL && json_object_get(req->json, "signature") != NULL)
		return authorize_user(c, req, local, who, e);
	return err_set(e, ERR_AUTH, "unauthorized",
	               "this request needs the admin's Authorization: Bearer token or a body "
	               "signed by the recipient's key");
}

/* The admin, or a recipient of a local domain that signed the request. */
static int authorize(struct relay_control *c, const struct http_request *req, struct caller *who,
                     struct err *e)
{
	return authorize_as(c, req, 1, who, e);
}

/* The recipient acted on must be a local one and, for a user, the signer. */
static int may_act_for(const struct relay_control *c, const struct caller *who, const char *rcpt,
                       struct err *e)
{
	if (local_rcpt(c, rcpt, e) < 0)
		return -1;
	if (!who->admin && strcmp(who->rcpt, rcpt) != 0)
		return err_set(e, ERR_INPUT, "address_mismatch",
		               "the request is signed for %s, not for %s", who->rcpt, rcpt);
	return 0;
}

/* ---- resources ---- */

static void reply_lists(struct relay_control *c, struct http_response *resp, const char *rcpt)
{
	struct err e = {0};
	char *text = relay_lists_json(c->lists, rcpt, &e);

	if (text == NULL)
		http_reply_error(resp, &e);
	else
		http_reply_text(resp, 200, "application/json", text, strlen(text));
}

static void lists_route(struct relay_control *c, const struct http_request *req,
                        struct http_response *resp, const struct caller *who, char *rcpt)
{
	struct err e = {0};
	const char *list, *entry;
	int rc;

	text_lower_copy(rcpt, strlen(rcpt) + 1, rcpt);
	if (may_act_for(c, who, rcpt, &e) < 0) {
		http_reply_error(resp, &e);
		return;
	}
	if (req->nseg == 3) {
		reply_lists(c, resp, rcpt);
		return;
	}
	list = req->seg[3];
	entry = req->seg[4];
	if (strcmp(req->method, "PUT") == 0)
		rc = relay_lists_add(c->lists, rcpt, list, entry, &e);
	else
		rc = relay_lists_remove(c->lists, rcpt, list, entry, &e);
	if (rc < 0) {
		http_reply_error(resp, &e);
		return;
	}
	log_info(req->reqid, "control: %s %s %s list of %s: %.100s%s%s",
	         who->admin ? "admin" : "user",
	         strcmp(req->method, "PUT") == 0 ? "added to" : "removed from", list, rcpt, entry,
	         who->admin ? "" : " key ", who->admin ? "" : who->key_pin);
	reply_lists(c, resp, rcpt);
}

/* {"status": "reported", "category", "subjects": [...], "source": "external" | "none"}:
 * "none" when the message never left our own servers, so that no hop was reported. */
static json_t *complaint_answer(const char *category, const struct relay_rep_reported *rep)
{
	json_t *subjects = json_array();

	for (int i = 0; subjects != NULL && i < rep->nsubjects; i++)
		json_array_append_new(subjects, json_string(rep->subjects[i]));
	return json_pack("{s:s, s:s, s:o*, s:s, s:i}", "status", "reported", "category", category,
	                 "subjects", subjects, "source", rep->external ? "external" : "none",
	                 "own_hops", rep->own_hops);
}

static void complaint_route(struct relay_control *c, const struct http_request *req,
                            struct http_response *resp, const struct caller *who)
{
	struct err e = {0};
	const char *category, *b64;
	struct relay_rep_reported rep;
	uint8_t *msg = NULL;
	size_t len = 0;

	if (!who->admin && local_rcpt(c, who->rcpt, &e) < 0)
		goto fail;
	if (who->body == NULL) {
		err_set(&e, ERR_INPUT, "bad_request",
		        "a complaint needs {\"category\": ..., \"message\": ...}");
		goto fail;
	}
	if ((category = http_json_str(who->body, "category", 1, &e)) == NULL ||
	    (b64 = http_json_str(who->body, "message", 1, &e)) == NULL)
		goto fail;
	if (strcmp(category, "spam") != 0 && strcmp(category, "not-spam") != 0) {
		err_set(&e, ERR_INPUT, "bad_category", "category must be spam or not-spam");
		goto fail;
	}
	if ((msg = crypto_b64_decode(b64, &len)) == NULL || len == 0) {
		err_set(&e, ERR_INPUT, "bad_message",
		        "message must be the raw message in standard base64");
		goto fail;
	}
	if (c->rep == NULL || !relay_rep_enabled(c->rep)) {
		err_set(&e, ERR_TEMP, "reputation_disabled",
		        "no reputation service is configured: complaints cannot be reported");
		goto fail;
	}
	if (relay_rep_report(c->rep, c->sc, (const char *)msg, len, category, &rep, &e) < 0)
		goto fail;
	log_info(req->reqid, "control: %s complaint (%s, %zu bytes) reported for %s: %s%s",
	         category, who->admin ? "admin" : "user", len, who->admin ? "-" : who->rcpt,
	         rep.subjects[0], rep.nsubjects > 1 ? " ..." : "");
	http_reply_json(resp, 200, complaint_answer(category, &rep));
	free(msg);
	return;
fail:
	free(msg);
	http_reply_error(resp, &e);
}

static void method_not_allowed(struct http_response *resp, const char *allow)
{
	http_reply_errorf(resp, ERR_INPUT, "method_not_allowed", "This resource accepts %s.",
	                  allow);
	resp->status = 405;
	http_add_header(resp, "Allow", "%s", allow);
}

/* POST /v1/partial/{id}/fetch: a view's whole message (partial_fetch.c), for the admin or
 * one of the view's recipients. */
static void partial_route(struct relay_control *c, const struct http_request *req,
                          struct http_response *resp)
{
	struct caller who;
	struct err e = {0};
	struct relay_partial_result r;

	resp->route = "partial_fetch";
	if (!http_method_in(req->method, "POST")) {
		method_not_allowed(resp, "POST");
		return;
	}
	if (authorize(c, req, &who, &e) < 0) {
		http_reply_error(resp, &e);
		return;
	}
	relayd_partial_fetch(req->seg[2], who.admin ? NULL : who.rcpt, &r);
	json_decref(who.body);
	http_reply_json(resp, r.http,
	                r.http == 200
	                    ? json_pack("{s:s, s:s, s:s}", "status", r.code, "queue_id", r.queue_id,
	                                "message", r.text)
	                    : json_pack("{s:s, s:s}", "error", r.code, "message", r.text));
}

static void control_dispatch(const struct http_request *req, struct http_response *resp, void *app)
{
	struct relay_control *c = app;
	struct caller who = {0};
	struct err e = {0};
	char rcpt[RELAY_ADDR_MAX];
	int lists = req->nseg >= 3 && http_seg_is(req, 0, "v1") && http_seg_is(req, 1, "lists");
	int complaints =
	    req->nseg == 2 && http_seg_is(req, 0, "v1") && http_seg_is(req, 1, "complaints");
	const char *allow;

	if (req->nseg == 4 && http_seg_is(req, 0, "v1") && http_seg_is(req, 1, "partial") &&
	    http_seg_is(req, 3, "fetch")) {
		partial_route(c, req, resp);
		return;
	}
	if (req->nseg == 2 && http_seg_is(req, 0, "v1") && http_seg_is(req, 1, "sign")) {
		resp->route = "sign";
		if (!http_method_in(req->method, "POST"))
			method_not_allowed(resp, "POST");
		else
			relay_signback_route(c->s, c->sc, req, resp);
		return;
	}
	if (req->nseg >= 2 && req->nseg <= 3 && http_seg_is(req, 0, "v1") &&
	    http_seg_is(req, 1, "decisions")) {
		if (authorize(c, req, &who, &e) == 0 && !who.admin)
			err_set(&e, ERR_FORBIDDEN, "forbidden", "decisions are the admin's");
		relay_defer_route(c->defer, req, resp, e.kind == ERR_NONE ? NULL : &e);
		json_decref(who.body);
		return;
	}
	if ((req->nseg == 3 || (req->nseg == 4 && http_seg_is(req, 3, "withdraw"))) &&
	    http_seg_is(req, 0, "v1") && http_seg_is(req, 1, "queue")) {
		/* The admin sees every message; a user who signs, only what it sent (as
		 * sender, from any anchored domain: the signature names the address). */
		int ok = authorize_as(c, req, 0, &who, &e) == 0;
		struct relay_queue_caller qc = {.owner = ok && !who.admin ? who.rcpt : NULL,
		                                .body = ok ? who.body : NULL};
		(req->nseg == 3 ? relay_queue_status_route : relay_queue_withdraw_route)(
		    c->qin, c->qout, req, resp, &qc, ok ? NULL : &e);
		json_decref(who.body);
		return;
	}
	if ((!lists && !complaints) || (lists && req->nseg != 3 && req->nseg != 5)) {
		resp->route = "not_found";
		http_reply_errorf(resp, ERR_NOTFOUND, "not_found", "No such resource.");
		return;
	}
	resp->route = complaints ? "complaints" : req->nseg == 3 ? "lists" : "list_entry";
	allow = complaints ? "POST" : req->nseg == 3 ? "GET" : "PUT DELETE";
	if (!http_method_in(req->method, allow)) {
		method_not_allowed(resp, req->nseg == 5 ? "PUT, DELETE" : allow);
		return;
	}
	if (authorize(c, req, &who, &e) < 0) {
		http_reply_error(resp, &e);
		if (e.kind == ERR_TEMP) /* the key server or DNS is away: refused, for now */
			http_add_header(resp, "Retry-After", "%d", CERTAUTH_RETRY_AFTER);
		return;
	}
	if (complaints) {
		complaint_route(c, req, resp, &who);
	} else if (strlen(req->seg[2]) >= sizeof(rcpt)) {
		http_reply_errorf(resp, ERR_INPUT, "bad_name", "the recipient is too long");
	} else {
		snprintf(rcpt, sizeof(rcpt), "%s", req->seg[2]);
		lists_route(c, req, resp, &who, rcpt);
	}
	json_decref(who.body);
}

/* ---- start, stop ---- */

/* "ADDR:PORT" or "[ADDR]:PORT" into addr and port. */
static int split_listen(const char *spec, char *addr, size_t size, int *port, struct err *e)
{
	const char *colon, *start = spec, *end;
	char *stop;
	long p;

	if (spec == NULL || *spec == '\0')
		return err_set(e, ERR_INPUT, "bad_config", "control_listen is not set");
	if (*spec == '[') {
		start = spec + 1;
		end = strchr(start, ']');
		colon = end != NULL && end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = strrchr(spec, ':');
		end = colon;
	}
	if (colon == NULL || end == start || (size_t)(end - start) >= size)
		return err_set(e, ERR_INPUT, "bad_config",
		               "control_listen must be ADDR:PORT, not '%s'", spec);
	p = strtol(colon + 1, &stop, 10);
	if (colon[1] == '\0' || *stop != '\0' || p < 0 || p > 65535)
		return err_set(e, ERR_INPUT, "bad_config", "control_listen has a bad port: '%s'",
		               spec);
	memcpy(addr, start, (size_t)(end - start));
	addr[end - start] = '\0';
	*port = (int)p;
	return 0;
}

static struct discover_ctx *start_discovery(const struct relay_settings *s, struct err *e)
{
	struct discover_config dc = {
	    .resolver = s->dns_server,
	    .trust_anchor_file = s->dns_trust_anchor,
	    .cacert = s->keyserver_cacert,
	    .timeout_ms = s->lookup_timeout_ms > 0 ? (int)s->lookup_timeout_ms : 0,
	};

	discover_config_from_env(&dc);
	return discover_new(&dc, e);
}

/* The queues for /metrics: a queue paused by a spool it cannot write is what an
 * operator of a full disk must see first. */
static size_t control_metrics(char *buf, size_t len, void *app)
{
	const struct relay_control *c = app;
	struct queue *qs[2] = {c->qin, c->qout};
	const char *names[2] = {"in", "out"};
	struct queue_stats st[2] = {0};
	struct metrics_out o;
	size_t i;

	metrics_out_init(&o, buf, len);
	for (i = 0; i < 2; i++)
		if (qs[i] != NULL)
			queue_stats_get(qs[i], &st[i]);
	metrics_put(&o, "# HELP anchor_relay_queue_paused 1 while the queue cannot write its spool "
	                "(no delivery starts)\n# TYPE anchor_relay_queue_paused gauge\n");
	for (i = 0; i < 2; i++)
		metrics_put(&o, "anchor_relay_queue_paused{queue=\"%s\"} %llu\n", names[i],
		            (unsigned long long)st[i].paused);
	metrics_put(&o,
	            "# HELP anchor_relay_queue_held_messages Messages whose recipients' state is "
	            "held in memory, not yet written\n"
	            "# TYPE anchor_relay_queue_held_messages gauge\n");
	for (i = 0; i < 2; i++)
		metrics_put(&o, "anchor_relay_queue_held_messages{queue=\"%s\"} %llu\n", names[i],
		            (unsigned long long)st[i].held);
	metrics_put(&o, "# HELP anchor_relay_queue_write_failures_total Recipient states the spool "
	                "could not take\n# TYPE anchor_relay_queue_write_failures_total counter\n");
	for (i = 0; i < 2; i++)
		metrics_put(&o, "anchor_relay_queue_write_failures_total{queue=\"%s\"} %llu\n",
		            names[i], (unsigned long long)st[i].write_failures);
	/* The messages in each spool now (a directory listing per scrape): what the
	 * "queue growth" alert watches (docs/monitoring.md). */
	metrics_put(&o, "# HELP anchor_relay_queue_messages Messages in the relay's spool.\n"
	                "# TYPE anchor_relay_queue_messages gauge\n");
	for (i = 0; i < 2; i++) {
		struct err e = {0};
		char **ids = NULL;
		size_t count = 0;

		if (qs[i] == NULL || queue_ids(qs[i], &ids, &count, &e) < 0)
			continue;
		queue_ids_free(ids, count);
		metrics_put(&o, "anchor_relay_queue_messages{queue=\"%s\"} %zu\n", names[i], count);
	}
	metrics_put(&o,
	            "# HELP anchor_relay_outbound_tls_resumed_total Outbound TLS handshakes that "
	            "resumed a cached session\n"
	            "# TYPE anchor_relay_outbound_tls_resumed_total counter\n"
	            "anchor_relay_outbound_tls_resumed_total %llu\n",
	            relay_resume_count());
	metrics_put(&o,
	            "# HELP anchor_relay_outbound_reused_total Outbound messages sent on a kept "
	            "session of an earlier delivery\n"
	            "# TYPE anchor_relay_outbound_reused_total counter\n"
	            "anchor_relay_outbound_reused_total %llu\n",
	            relay_dcache_reused());
	relay_enc_metrics(&o);
	relay_held_sweep_metrics(&o);
	/* STARTTLS (inbound and submission); the control API's own are the layer's
	 * anchor_tls_handshakes_total. */
	metrics_tls_render(c->smtp_tls, "anchor_relay_smtp_tls_handshakes_total", "smtp", &o);
	return o.off;
}

struct relay_control *relay_control_start(const struct relay_settings *s, struct relay_lists *l,
                                          struct relay_rep *rep, struct relay_signer_client *sc,
                                          struct queue *qin, struct queue *qout,
                                          struct metrics_tls *smtp_tls, struct err *e)
{
	struct certauth_config ac = {.ttl = s->key_status_ttl,
	                             .max_entries = (size_t)s->key_status_cache_size};
	struct relay_control *c;
	struct http_config hc = {0};
	char addr[128];
	long long msgmax =
	    s->max_message_size > 0 ? s->max_message_size : CONTROL_DEFAULT_MESSAGE_MAX;

	if (l == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "the control API needs the lists");
		return NULL;
	}
	if (s->tls_cert_file == NULL || s->tls_key_file == NULL) {
		err_set(e, ERR_INPUT, "bad_config",
		        "the control API needs tls_cert_file and tls_key_file");
		return NULL;
	}
	if (split_listen(s->control_listen, addr, sizeof(addr), &hc.port, e) < 0)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	c->s = s;
	c->lists = l;
	c->rep = rep;
	c->sc = sc;
	c->qin = qin;
	c->qout = qout;
	c->smtp_tls = smtp_tls;
	c->started = (long long)time(NULL);
	pthread_mutex_init(&c->replay_mu, NULL);
	if ((c->disc = start_discovery(s, e)) == NULL)
		goto fail;
	if ((c->auth = certauth_new(&ac, c->disc, e)) == NULL)
		goto fail;
	hc.listen_addr = addr;
	hc.tls_cert_file = s->tls_cert_file;
	hc.tls_key_file = s->tls_key_file;
	hc.tls_policy = &s->tls;
	/* A complaint carries a whole message in base64, maybe inside a JWS: ~1.8 times. */
	hc.max_body = (size_t)(msgmax / 5 * 9 + 65536);
	hc.threads = CONTROL_THREADS;
	hc.max_connections = CONTROL_MAX_CONNECTIONS;
	hc.max_connections_per_ip = (int)s->control_max_connections_per_ip;
	hc.conn_timeout = CONTROL_CONN_TIMEOUT;
	hc.request_timeout = (int)s->control_request_timeout;
	hc.rate_per_sec = CONTROL_RATE;
	hc.rate_burst = CONTROL_BURST;
	hc.dispatch = control_dispatch;
	hc.metrics = control_metrics;
	hc.app = c;
	if ((c->http = http_server_start(&hc, e)) == NULL)
		goto fail;
	return c;
fail:
	relay_control_stop(c);
	return NULL;
}

int relay_control_port(const struct relay_control *c)
{
	return c != NULL ? http_server_port(c->http) : 0;
}

void relay_control_stop(struct relay_control *c)
{
	if (c == NULL)
		return;
	http_server_stop(c->http);
	certauth_free(c->auth);
	discover_free(c->disc);
	for (size_t b = 0; b < REPLAY_BUCKETS; b++) {
		struct replay *x = c->replay[b], *next;
		for (; x != NULL; x = next) {
			next = x->next;
			free(x);
		}
	}
	pthread_mutex_destroy(&c->replay_mu);
	free(c);
}

void relay_control_set_defer(struct relay_control *c, struct relay_defer *df)
{
	c->defer = df;
}
