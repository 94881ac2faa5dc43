/*
 * route.c - routes: where mail for an address or a whole domain must go.
 *
 * A route is a weighted set of receiving servers (each with the pin of the
 * certificate it must present) or an alias.  Answers are JWS objects signed
 * by the domain's issuer (in the signer process, publish.c, from the rows it
 * reads itself) with x5c [issuer, root], so they verify offline
 * against the domain's pin and any HTTP cache may keep them.  The domain
 * admin sets any route; a user may set the alias of their own address with a
 * request signed by their current key (user_request.c checks that part).
 * Parse, authorise, store (store_route.c), log, reply; the body check and the
 * signed payload are in route_json.c.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "pki/crypto.h"
#include "core/log.h"
#include "log_batch.h"
#include "store.h"
#include "user_request.h"

#define ROUTE_LOOP_STEPS 16

/* Follow aliases inside this domain from rt's target: coming back to self is a loop. */
static int check_local_loop(struct db *db, const struct ks_domain *d, const char *self,
                            const struct ks_route *rt, struct err *e)
{
	char cur[320];
	const char *at;

	if (rt->alias == NULL)
		return 0;
	snprintf(cur, sizeof(cur), "%s", rt->alias);
	for (int step = 0; step < ROUTE_LOOP_STEPS; step++) {
		struct ks_route next = {0};
		struct err ignore = {0};

		at = strrchr(cur, '@');
		if (at == NULL || strcmp(at + 1, d->name) != 0)
			return 0; /* leaves the domain: other domains check their own side */
		if (strcmp(cur, self) == 0)
			return err_set(e, ERR_INPUT, "route_loop",
			               "the alias would make a loop back to %s", self);
		if (ks_store_route_effective(db, d, cur, &next, &ignore) < 0)
			return ignore.kind == ERR_NOTFOUND
			           ? 0
			           : err_set(e, ignore.kind, ignore.code, "%s", ignore.msg);
		if (next.alias == NULL || strchr(next.alias, '@') == NULL) {
			ks_route_free(&next);
			return 0;
		}
		snprintf(cur, sizeof(cur), "%s", next.alias);
		ks_route_free(&next);
	}
	return err_set(e, ERR_INPUT, "route_loop", "the alias chain from %s is too long", self);
}

/* The HTTPS process's batches: their head is signed by the signer once committed. */
static void batch_publish(void *ctx, struct ks_req *r, const struct ks_domain *d)
{
	(void)ctx;
	ks_log_publish(r, d);
}

static const struct ks_batch_ops route_batch = {.after_commit = batch_publish};

struct route_change {
	const struct ks_domain *d;
	const char *name, *set_by;
	struct ks_route *rt;         /* NULL: remove; a set's updated and log_seq then the row's */
	struct ks_route_logged *out; /* its entry's index, and a set's leaf and salt */
};

/* The entry of a route set, and the route row with its index, in one statement. */
static int store_logged(struct ks_req *r, struct route_change *c, const struct ks_event *ev,
                        struct err *e)
{
	struct ks_log_pending p;

	if (ks_log_prepare(r, c->d, ev, &p, e) < 0)
		return -1;
	c->out->seq = p.seq;
	/* For the answer's proof (a change undone later in its batch leaves them unused). */
	free(c->out->leaf);
	free(c->out->salt);
	c->out->leaf = strdup(p.leaf);
	c->out->salt = strdup(p.salt);
	return ks_log_finish(r, &p,
	                     ks_store_route_put(r->db, c->name, c->rt, c->set_by, &p.row, e));
}

/* Log a route change (for a set, with the route stored); the entry commits to the route by
 * the digest of its canonical form.  c->out->seq receives the entry's index. */
static int log_route(struct ks_req *r, struct route_change *c, const char *type, struct err *e)
{
	json_t *details = json_object(), *content;
	struct ks_event ev = {.type = type, .name = c->name, .details = details};
	const struct ks_route *rt = c->rt;
	char digest[CRYPTO_HEX256_LEN];
	char *text = NULL;
	int rc;

	if (rt != NULL) {
		content = rt->servers
		              ? json_pack("{s:O, s:i}", "servers", rt->servers, "ttl", rt->ttl)
		              : json_pack("{s:s, s:i}", "alias", rt->alias, "ttl", rt->ttl);
		text = content ? json_dumps(content, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(content);
		if (text == NULL) {
			json_decref(details);
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		}
		crypto_sha256_hex(text, strlen(text), digest);
		json_object_set_new(details, "route_sha256", json_string(digest));
		free(text);
	}
	rc = rt != NULL ? store_logged(r, c, &ev, e) : ks_log_append(r, c->d, &ev, &c->out->seq, e);
	json_decref(details);
	return rc;
}

/* One change inside its batch's transaction, the domain's row locked by the batch:
 * route changes of a domain are serialised, so two concurrent aliases cannot close a
 * loop that neither saw.  The batch sends the change notice (ks_log_batch_open). */
static int route_change(struct ks_req *r, void *arg, struct err *e)
{
	struct route_change *c = arg;
	int gone;

	if (c->rt != NULL)
		return check_local_loop(r->db, c->d, c->name, c->rt, e) < 0 ||
		               log_route(r, c, "route_set", e) < 0
		           ? -1
		           : 0;
	if ((gone = ks_store_route_delete(r->db, c->d->id, c->name, e)) < 0)
		return -1;
	if (gone == 0)
		return err_set(e, ERR_NOTFOUND, "no_route", "no route is set for %s", c->name);
	return log_route(r, c, "route_removed", e);
}

void ks_route_logged_free(struct ks_route_logged *l)
{
	if (l == NULL)
		return;
	free(l->leaf);
	free(l->salt);
	free(l->head_jws);
	l->leaf = l->salt = l->head_jws = NULL;
}

int ks_route_commit(struct ks_req *r, struct ks_group *g, const struct ks_domain *d,
                    const char *name, struct ks_route *rt, const char *set_by,
                    const struct ks_batch_ops *ops, struct ks_route_logged *out, struct err *e)
{
	struct route_change rc = {.d = d, .name = name, .set_by = set_by, .rt = rt, .out = out};
	struct ks_change c = {.fn = route_change, .arg = &rc, .r = r};

	*out = (struct ks_route_logged){.seq = -1};
	if (ks_group_change(g, d, &c, ops, e) < 0) {
		ks_route_logged_free(out);
		return -1;
	}
	out->head_jws = c.head_jws;
	out->head_size = c.head_size;
	return 0;
}

/* A removal runs in the HTTPS process's next batch; answered once it is committed and a
 * signed head covers it. */
static int route_remove(struct ks_req *r, const struct ks_domain *d, const char *name,
                        struct err *e)
{
	struct ks_route_logged logged;

	if (ks_route_commit(r, r->ks->changes, d, name, NULL, NULL, &route_batch, &logged, e) < 0)
		return -1;
	ks_route_logged_free(&logged);
	ks_cache_invalidate(r->ks->cache);
	return 0;
}

/* ---- signed answers ---- */

/*
 * The log entry of the route and its inclusion proof ride in the JWS's unprotected
 * header: they need no signature of their own (the proof leads to a signed tree head),
 * and a verifier that does not know them ignores them.  On any failure the answer
 * goes out without them rather than not at all.
 */
static int proof_of(struct ks_req *r, const struct ks_domain *d, const struct ks_route_logged *l,
                    json_t **proof, json_t **head, struct err *e)
{
	char *leaf, *salt;

	if (l->head_jws == NULL || l->seq >= l->head_size || l->leaf == NULL || l->salt == NULL)
		return ks_log_proof_newest(r, d->id, l->seq, proof, head, e);
	/* The head signed with the entry's batch, its nodes in the edge: nothing to read. */
	leaf = strdup(l->leaf);
	salt = strdup(l->salt);
	if (leaf == NULL || salt == NULL) {
		free(leaf);
		free(salt);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	if (ks_log_proof_leaf(r, d->id, l->seq, l->head_size, leaf, salt, proof, e) < 0)
		return -1;
	*head = json_string(l->head_jws);
	return 0;
}

char *ks_route_with_proof(struct ks_req *r, const struct ks_domain *d,
                          const struct ks_route_logged *l, char *jws)
{
	json_t *obj = NULL, *proof = NULL, *head = NULL;
	struct err e = {0};
	char *out = NULL;

	if (l->seq < 0)
		return jws;
	if (proof_of(r, d, l, &proof, &head, &e) < 0 || proof == NULL || head == NULL ||
	    (obj = json_loads(jws, 0, NULL)) == NULL)
		goto out;
	json_object_set_new(obj, "header",
	                    json_pack("{s:O, s:O}", "log", proof, "tree_head", head));
	out = json_dumps(obj, JSON_COMPACT);
out:
	json_decref(obj);
	json_decref(head);
	json_decref(proof);
	if (out == NULL) {
		if (e.kind != ERR_NONE)
			log_warn(r->http != NULL ? r->http->reqid : NULL,
			         "route answer without log proof: %s", e.msg);
		return jws;
	}
	free(jws);
	return out;
}

static void reply_route(struct ks_req *r, const struct ks_route *rt, char *jws, struct err *e)
{
	if (jws == NULL) {
		if (e->kind == ERR_NONE)
			err_set(e, ERR_INTERNAL, "internal", "out of memory");
		ks_fail(r, e);
		return;
	}
	http_reply_text(r->resp, 200, "application/jose+json", jws, strlen(jws)); /* takes jws */
	/* Keep cached copies well inside the answer's validity. */
	r->cache_max_age = rt->ttl < r->cache_max_age ? rt->ttl : r->cache_max_age;
}

static void reply_signed_route(struct ks_req *r, const struct ks_domain *d, const char *asked,
                               const struct ks_route *rt)
{
	struct err e = {0};
	/* The signer builds the answer from the route rows itself; rt serves for the proof
	 * and the cache lifetime. */
	char *jws = ks_signer_route(r->ks, d->name, asked, &e);
	struct ks_route_logged l = {.seq = rt->log_seq};

	reply_route(r, rt, jws != NULL ? ks_route_with_proof(r, d, &l, jws) : NULL, &e);
}

/* ---- handlers ---- */

/*
 * The route of an address as its answer will carry it: with a direct endpoint in force
 * (direct.c) the answer exists even without a route, and no cache may keep it past the
 * endpoint's expiry (the signer cuts the answer's ttl the same way, publish.c).
 */
static int route_or_direct(struct ks_req *r, const struct ks_domain *d, const char *addr,
                           struct ks_route *rt, struct err *e)
{
	struct ks_direct dr = {0};
	struct err re = {0};
	int has = ks_store_direct_valid(r->db, d->id, addr, &dr, e);

	if (has < 0)
		return -1;
	if (ks_store_route_effective(r->db, d, addr, rt, &re) < 0) {
		if (re.kind != ERR_NOTFOUND || !has) {
			*e = re;
			return -1;
		}
		rt->ttl = KS_ROUTE_TTL_DEFAULT;
		rt->log_seq = -1;
	}
	if (has && dr.expires - (long long)time(NULL) < rt->ttl) {
		long long left = dr.expires - (long long)time(NULL);
		rt->ttl = left > 1 ? (int)left : 1;
	}
	return 0;
}

void ks_route_get(struct ks_req *r, const char *raw)
{
	struct ks_domain *d = NULL;
	char *addr = ks_address_arg(r, raw, &d);
	struct ks_route rt = {0};
	struct err e = {0};

	if (addr == NULL)
		return;
	if (route_or_direct(r, d, addr, &rt, &e) < 0)
		ks_fail(r, &e);
	else
		reply_signed_route(r, d, addr, &rt);
	ks_route_free(&rt);
	free(addr);
	ks_domain_free(d);
}

void ks_route_get_domain(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct ks_route rt = {0};
	struct err e = {0};

	if (d == NULL)
		return;
	if (ks_store_route_effective(r->db, d, d->name, &rt, &e) < 0)
		ks_fail(r, &e);
	else
		reply_signed_route(r, d, d->name, &rt);
	ks_route_free(&rt);
	ks_domain_free(d);
}

/*
 * The signer stores the route in its next batch, whose head it signs in the same
 * transaction, and answers with the route signed from the row it wrote, proof included
 * (route_set.c): the writer is answered once entry and head are durable together.
 */
static char *route_set(struct ks_req *r, const struct ks_domain *d, const char *name,
                       const struct ks_route *rt, const char *set_by, struct err *e)
{
	json_t *body = rt->servers != NULL
	                   ? json_pack("{s:O, s:i}", "servers", rt->servers, "ttl", rt->ttl)
	                   : json_pack("{s:s, s:i}", "alias", rt->alias, "ttl", rt->ttl);
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	char *jws = NULL;

	json_decref(body);
	if (text == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	jws = ks_signer_route_set(r->ks, d->name, name, set_by, text, e);
	free(text);
	if (jws != NULL)
		ks_cache_invalidate(r->ks->cache);
	return jws;
}

static void put_route(struct ks_req *r, struct ks_domain *d, const char *name, int domain_scope)
{
	struct ks_route rt = {0};
	struct err e = {0};
	const char *set_by = "admin";
	char keyref[64];
	char *jws;

	if (!domain_scope && json_object_get(r->http->json, "protected") != NULL) {
		/* A request signed by the address's own key: alias only. */
		if (ks_user_request_route(r, d, name, &rt, keyref, sizeof(keyref), &e) < 0)
			goto fail;
		set_by = keyref;
	} else if (ks_auth_domain_admin(r, d, &e) < 0 ||
	           ks_route_parse(r->http->json, name, domain_scope, &rt, &e) < 0) {
		goto fail;
	}
	if ((jws = route_set(r, d, name, &rt, set_by, &e)) == NULL)
		goto fail;
	log_info(r->http->reqid, "route of %s set by %s: %s", name, set_by,
	         rt.alias ? "alias" : "servers");
	reply_route(r, &rt, jws, &e);
	ks_route_free(&rt);
	return;
fail:
	ks_route_free(&rt);
	ks_fail(r, &e);
}

void ks_route_put(struct ks_req *r, const char *raw)
{
	struct ks_domain *d = NULL;
	char *addr = ks_address_arg(r, raw, &d);

	if (addr == NULL)
		return;
	put_route(r, d, addr, 0);
	free(addr);
	ks_domain_free(d);
}

void ks_route_put_domain(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);

	if (d == NULL)
		return;
	put_route(r, d, d->name, 1);
	ks_domain_free(d);
}

static void delete_route(struct ks_req *r, struct ks_domain *d, const char *name)
{
	struct err e = {0};

	if (ks_auth_domain_admin(r, d, &e) < 0 || route_remove(r, d, name, &e) < 0) {
		ks_fail(r, &e);
		return;
	}
	log_info(r->http->reqid, "route of %s removed", name);
	http_reply_json(r->resp, 200, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

void ks_route_delete(struct ks_req *r, const char *raw)
{
	struct ks_domain *d = NULL;
	char *addr = ks_address_arg(r, raw, &d);

	if (addr == NULL)
		return;
	delete_route(r, d, addr);
	free(addr);
	ks_domain_free(d);
}

void ks_route_delete_domain(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);

	if (d == NULL)
		return;
	delete_route(r, d, d->name);
	ks_domain_free(d);
}
