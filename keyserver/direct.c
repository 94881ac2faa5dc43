/*
 * direct.c - /v1/direct/{address}: a user's own daemon as the address's first hop for
 * a short while (PROTOCOL.md §6.5).
 *
 * Only the address's user registers one, with a request signed by the address's
 * current key (user_request.c); the user or the domain admin removes it.  Each change
 * is a log entry (direct_set, direct_removed) and a change notice, in the domain's
 * batch like a route's, so that every node's answer cache drops the route answers
 * that carried the old endpoint.  What is in force is decided by the store's one query
 * (store_direct.c): a registration whose key was revoked or superseded, or whose time
 * is up, is not read, whatever row is left.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "core/log.h"
#include "store.h"
#include "user_request.h"

struct direct_change {
	const struct ks_domain *d;
	const char *address;
	const struct ks_direct *dr; /* NULL: remove */
	long long seq;
};

/* The entry commits to the endpoint by the digest of its canonical JSON. */
static int log_direct(struct ks_req *r, struct direct_change *c, struct err *e)
{
	json_t *details = json_object(), *content = NULL;
	struct ks_event ev = {.type = c->dr ? "direct_set" : "direct_removed",
	                      .name = c->address,
	                      .key_id = c->dr ? c->dr->key_id : NULL,
	                      .details = details};
	char digest[CRYPTO_HEX256_LEN], *text = NULL;
	int rc = -1;

	if (c->dr != NULL) {
		content = ks_direct_json(c->dr);
		text = content ? json_dumps(content, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		if (text == NULL) {
			err_set(e, ERR_INTERNAL, "internal", "out of memory");
			goto out;
		}
		crypto_sha256_hex(text, strlen(text), digest);
		json_object_set_new(details, "direct_sha256", json_string(digest));
	}
	rc = ks_log_append(r, c->d, &ev, &c->seq, e);
out:
	free(text);
	json_decref(content);
	json_decref(details);
	return rc;
}

static int direct_change(struct ks_req *r, void *arg, struct err *e)
{
	struct direct_change *c = arg;
	int gone;

	if (c->dr != NULL) {
		if (log_direct(r, c, e) < 0 ||
		    ks_store_direct_put(r->db, c->d->id, c->dr, c->seq, e) < 0)
			return -1;
		return ks_store_notify_change(r->db, c->d->name, e);
	}
	if ((gone = ks_store_direct_delete(r->db, c->d->id, c->address, e)) < 0)
		return -1;
	if (gone == 0)
		return err_set(e, ERR_NOTFOUND, "no_direct", "%s has no direct endpoint",
		               c->address);
	if (log_direct(r, c, e) < 0)
		return -1;
	return ks_store_notify_change(r->db, c->d->name, e);
}

static void batch_publish(void *ctx, struct ks_req *r, const struct ks_domain *d)
{
	(void)ctx;
	ks_log_publish(r, d);
}

static const struct ks_batch_ops direct_batch = {.after_commit = batch_publish};

static int direct_commit(struct ks_req *r, struct direct_change *dc, struct err *e)
{
	struct ks_change c = {.fn = direct_change, .arg = dc, .r = r};

	if (ks_group_change(r->ks->changes, dc->d, &c, &direct_batch, e) < 0)
		return -1;
	ks_cache_invalidate(r->ks->cache);
	return 0;
}

static json_t *direct_answer(const struct ks_direct *dr)
{
	json_t *o = json_pack("{s:s, s:o, s:s}", "address", dr->address, "direct",
	                      ks_direct_json(dr), "key_id", dr->key_id);

	if (o != NULL && dr->log_seq >= 0)
		json_object_set_new(o, "log_index", json_integer(dr->log_seq));
	return o;
}

void ks_direct_get(struct ks_req *r, const char *raw)
{
	struct ks_domain *d = NULL;
	char *addr = ks_address_arg(r, raw, &d);
	struct ks_direct dr = {0};
	struct err e = {0};
	int found;

	if (addr == NULL)
		return;
	found = ks_store_direct_valid(r->db, d->id, addr, &dr, &e);
	if (found < 0)
		ks_fail(r, &e);
	else if (found == 0)
		http_reply_errorf(r->resp, ERR_NOTFOUND, "no_direct",
		                  "%s has no direct endpoint in force", addr);
	else
		http_reply_json(r->resp, 200, direct_answer(&dr));
	free(addr);
	ks_domain_free(d);
}

static int direct_register(struct ks_req *r, const struct ks_domain *d, const char *addr,
                           struct ks_direct *dr, struct err *e)
{
	const struct ks_direct_limits lim = {.max_lifetime = r->ks->cfg.direct_max_lifetime,
	                                     .allow_private = r->ks->cfg.direct_allow_private};
	char key_id[CRYPTO_UUID_LEN];
	json_t *payload = NULL;
	int rc = -1;

	if (ks_user_request_open(r, d, addr, "anchor-direct-request", &payload, key_id, e) < 0 ||
	    ks_direct_parse(payload, (long long)time(NULL), &lim, dr, e) < 0)
		goto out;
	snprintf(dr->address, sizeof(dr->address), "%s", addr);
	snprintf(dr->key_id, sizeof(dr->key_id), "%s", key_id);
	struct direct_change c = {.d = d, .address = addr, .dr = dr, .seq = -1};
	if (direct_commit(r, &c, e) < 0)
		goto out;
	dr->log_seq = c.seq;
	rc = 0;
out:
	json_decref(payload);
	return rc;
}

void ks_direct_put(struct ks_req *r, const char *raw)
{
	struct ks_domain *d = NULL;
	char *addr = ks_address_arg(r, raw, &d);
	struct ks_direct dr = {0};
	struct err e = {0};

	if (addr == NULL)
		return;
	if (direct_register(r, d, addr, &dr, &e) < 0) {
		ks_fail(r, &e);
	} else {
		log_info(r->http->reqid, "direct endpoint of %s set by key:%s until %lld", addr,
		         dr.key_id, dr.expires);
		http_reply_json(r->resp, 200, direct_answer(&dr));
	}
	free(addr);
	ks_domain_free(d);
}

/* The user (a signed "anchor-direct-remove" request) or the domain admin. */
static int remove_allowed(struct ks_req *r, const struct ks_domain *d, const char *addr,
                          struct err *e)
{
	char key_id[CRYPTO_UUID_LEN];
	json_t *payload = NULL;

	if (r->http->json == NULL || json_object_get(r->http->json, "protected") == NULL)
		return ks_auth_domain_admin(r, d, e);
	if (ks_user_request_open(r, d, addr, "anchor-direct-remove", &payload, key_id, e) < 0)
		return -1;
	json_decref(payload);
	return 0;
}

void ks_direct_delete(struct ks_req *r, const char *raw)
{
	struct ks_domain *d = NULL;
	char *addr = ks_address_arg(r, raw, &d);
	struct err e = {0};

	if (addr == NULL)
		return;
	struct direct_change c = {.d = d, .address = addr, .seq = -1};
	if (remove_allowed(r, d, addr, &e) < 0 || direct_commit(r, &c, &e) < 0) {
		ks_fail(r, &e);
	} else {
		log_info(r->http->reqid, "direct endpoint of %s removed", addr);
		http_reply_json(r->resp, 200,
		                json_pack("{s:s, s:b}", "address", addr, "deleted", 1));
	}
	free(addr);
	ks_domain_free(d);
}
