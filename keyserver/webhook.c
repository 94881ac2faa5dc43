/*
 * webhook.c - subscribers' webhooks: registration, and a delivery thread that
 * POSTs each log entry about a watched key, with its inclusion proof and the
 * signed tree head, retrying with exponential backoff.  Deliveries are rows
 * queued in the same transaction as the entry; nodes share the queue through
 * FOR UPDATE SKIP LOCKED, so no entry goes out twice at once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/https_client.h"
#include "pki/crypto.h"
#include "core/log.h"
#include "store.h"

#define WEBHOOK_BATCH 20
#define WEBHOOK_TIMEOUT_MS 5000
#define WEBHOOK_MAX_KEYS 1000
#define WEBHOOK_BACKOFF_MAX 3600

struct ks_webhooks {
	struct ks *ks;
	pthread_t thread;
	atomic_int stop;
};

/* ---- registration ---- */

static int url_ok(const struct ks *ks, const char *url, struct err *e)
{
	if (strncmp(url, "https://", 8) == 0 && strlen(url) > 8 && strlen(url) < 2048)
		return 0;
	if (ks->cfg.webhook_allow_http && strncmp(url, "http://", 7) == 0 && strlen(url) < 2048)
		return 0;
	return err_set(e, ERR_INPUT, "bad_request", "the webhook url must be https://");
}

/* The key ids as a PostgreSQL array literal, each checked to be a UUID of this domain. */
static char *key_ids_literal(struct ks_req *r, const struct ks_domain *d, json_t *ids,
                             struct err *e)
{
	size_t i, len = 2 + json_array_size(ids) * (CRYPTO_UUID_LEN + 1);
	char *lit, *p;
	json_t *v;

	if (!json_is_array(ids) || json_array_size(ids) < 1 ||
	    json_array_size(ids) > WEBHOOK_MAX_KEYS) {
		err_set(e, ERR_INPUT, "bad_request", "\"key_ids\" must list 1 to %d key ids",
		        WEBHOOK_MAX_KEYS);
		return NULL;
	}
	if ((lit = malloc(len + 1)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	p = lit;
	*p++ = '{';
	json_array_foreach(ids, i, v)
	{
		const char *id = json_string_value(v);
		if (id == NULL || !ks_is_uuid(id)) {
			free(lit);
			err_set(e, ERR_INPUT, "bad_request", "key_ids[%zu] is not a key id", i);
			return NULL;
		}
		p += sprintf(p, "%s%s", i ? "," : "", id);
	}
	*p++ = '}';
	*p = '\0';
	(void)r;
	(void)d;
	return lit;
}

void ks_webhook_add(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	char token[CRYPTO_TOKEN_LEN], hash[CRYPTO_HEX256_LEN];
	struct err e = {0};
	const char *url;
	char *ids = NULL;
	long long id = 0;
	int added;

	if (d == NULL)
		return;
	if ((url = http_json_str(r->http->json, "url", 1, &e)) == NULL ||
	    url_ok(r->ks, url, &e) < 0 ||
	    (ids = key_ids_literal(r, d, json_object_get(r->http->json, "key_ids"), &e)) == NULL ||
	    crypto_random_token(token, &e) < 0)
		goto fail;
	crypto_token_hash(token, hash);
	if ((added = ks_store_webhook_add(r->db, d->id, url, ids, hash, &id, &e)) < 0)
		goto fail;
	if (added == 0) {
		err_set(&e, ERR_NOTFOUND, "not_found", "some key_ids are not keys of %s", d->name);
		goto fail;
	}
	log_info(r->http->reqid, "webhook %lld registered for %s", id, d->name);
	http_reply_json(r->resp, 201,
	                json_pack("{s:I, s:s}", "id", (json_int_t)id, "secret", token));
	free(ids);
	ks_domain_free(d);
	return;
fail:
	free(ids);
	ks_domain_free(d);
	ks_fail(r, &e);
}

void ks_webhook_delete(struct ks_req *r, const char *domain, const char *id)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	const char *token = http_bearer_token(r->http);
	char hash[CRYPTO_HEX256_LEN];
	struct err e = {0};
	int gone;

	if (d == NULL)
		return;
	if (token == NULL || strspn(id, "0123456789") != strlen(id) || strlen(id) > 18) {
		err_set(&e, token == NULL ? ERR_AUTH : ERR_INPUT,
		        token == NULL ? "unauthorized" : "bad_request",
		        token == NULL ? "delete a webhook with its secret as the bearer token"
		                      : "a webhook id is a number");
		goto fail;
	}
	crypto_token_hash(token, hash);
	if ((gone = ks_store_webhook_delete(r->db, id, d->id, hash, &e)) < 0)
		goto fail;
	if (gone == 0) {
		err_set(&e, ERR_NOTFOUND, "not_found", "no webhook %s with that secret", id);
		goto fail;
	}
	http_reply_json(r->resp, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
	ks_domain_free(d);
	return;
fail:
	ks_domain_free(d);
	ks_fail(r, &e);
}

/* ---- delivery ---- */

/* The body: the entry, its proof to the newest head, and the head. */
static char *delivery_body(struct ks_req *r, const struct ks_delivery *dl, struct err *e)
{
	json_t *head = NULL, *entry = NULL, *body = NULL;
	char *text = NULL;

	/* Not covered by the newest head yet (entry NULL): no body; the attempt counts as
	 * failed and is retried. */
	if (ks_log_proof_newest(r, strtoll(dl->domain_id, NULL, 10), strtoll(dl->seq, NULL, 10),
	                        &entry, &head, e) < 0 ||
	    entry == NULL)
		goto out;
	json_object_del(entry, "salt"); /* the subscriber watches keys, not names */
	body = json_pack("{s:s, s:O, s:O}", "domain", dl->domain, "entry", entry, "tree_head",
	                 head ? head : json_null());
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
out:
	json_decref(body);
	json_decref(head);
	json_decref(entry);
	return text;
}

/* POST body to url: 0 on a 2xx answer, else -1 with why (for the delivery record and
 * the log: without the URL, which may carry the subscriber's secret). */
static int post_json(const char *url, const char *body, char *why, size_t whylen)
{
	/* The TLS policy of every client in the tree; a subscriber may be plain http. */
	const struct https_opts o = {.connect_timeout_ms = WEBHOOK_TIMEOUT_MS,
	                             .timeout_ms = WEBHOOK_TIMEOUT_MS,
	                             .user_agent = "anchormail-webhook/1",
	                             .allow_http = 1,
	                             .any_status = 1,
	                             .hide_url = 1};
	struct https_reply rep = {0};
	struct err e = {0};
	long status;

	if (https_request("POST", url, &o, "application/json", body, strlen(body), &rep, &e) < 0) {
		snprintf(why, whylen, "%s", e.msg);
		return -1;
	}
	status = rep.status;
	https_reply_clear(&rep);
	if (status < 200 || status > 299) {
		snprintf(why, whylen, "HTTP %ld", status);
		return -1;
	}
	return 0;
}

static void record_outcome(struct db *db, const struct ks *ks, const struct ks_delivery *dl, int ok,
                           const char *why)
{
	struct err e = {0};
	long long delay = ks->cfg.webhook_retry_base << (dl->attempts < 20 ? dl->attempts : 20);

	if (delay > WEBHOOK_BACKOFF_MAX)
		delay = WEBHOOK_BACKOFF_MAX;
	if (ks_store_delivery_record(db, dl, delay, ok ? NULL : why, &e) < 0)
		log_err(NULL, "webhook %s: cannot record the delivery of entry %s: %s",
		        dl->webhook_id, dl->seq, e.msg);
	else if (ok)
		log_info(NULL, "webhook %s: delivered entry %s of %s", dl->webhook_id, dl->seq,
		         dl->domain);
	else
		log_warn(NULL, "webhook %s: entry %s of %s, attempt %d failed: %s", dl->webhook_id,
		         dl->seq, dl->domain, dl->attempts + 1, why);
}

/* One round: lock a batch of due deliveries, send them, record the outcomes. */
static int deliver_batch(struct ks_webhooks *w, struct db *db)
{
	struct ks_req r = {.ks = w->ks, .db = db};
	struct ks_delivery *due = NULL;
	struct err e = {0};
	int n;

	if (db_begin(db, &e) < 0)
		return -1;
	n = ks_store_deliveries_due(db, w->ks->cfg.webhook_max_attempts, WEBHOOK_BATCH, &due, &e);
	if (n < 0) {
		db_rollback(db);
		return -1;
	}
	for (int i = 0; i < n && !atomic_load(&w->stop); i++) {
		const struct ks_delivery *dl = &due[i];
		char why[ERR_MSG_MAX + 32] = "";
		char *body = delivery_body(&r, dl, &e);

		if (body == NULL)
			snprintf(why, sizeof(why), "cannot build the body: %s", e.msg);
		record_outcome(db, w->ks, dl,
		               body != NULL && post_json(dl->url, body, why, sizeof(why)) == 0,
		               why);
		free(body);
	}
	free(due);
	if (db_commit(db, &e) < 0)
		return -1;
	return n;
}

static void *webhook_main(void *arg)
{
	struct ks_webhooks *w = arg;
	struct db *db = NULL;
	struct err e = {0};

	while (!atomic_load(&w->stop)) {
		int n = 0;

		if (db == NULL && (db = db_connect(w->ks->cfg.db_conninfo, &e)) == NULL) {
			sleep(1);
			continue;
		}
		n = deliver_batch(w, db);
		/* A full batch means more are waiting: go on at once; otherwise rest a second. */
		if (n < WEBHOOK_BATCH) {
			for (int t = 0; t < 10 && !atomic_load(&w->stop); t++)
				usleep(100 * 1000);
		}
	}
	db_close(db);
	return NULL;
}

struct ks_webhooks *ks_webhooks_start(struct ks *ks, struct err *e)
{
	struct ks_webhooks *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	w->ks = ks;
	if (pthread_create(&w->thread, NULL, webhook_main, w) != 0) {
		free(w);
		err_set(e, ERR_INTERNAL, "internal", "cannot start the webhook thread");
		return NULL;
	}
	return w;
}

void ks_webhooks_stop(struct ks_webhooks *w)
{
	if (w == NULL)
		return;
	atomic_store(&w->stop, 1);
	pthread_join(w->thread, NULL);
	free(w);
}
