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

#include "cache.h"
#include "pki/crypto.h"
#include "core/log.h"
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

/* Log a route change; the entry commits to the route by the digest of its canonical form. */
static int log_route(struct ks_req *r, const struct ks_domain *d, const char *name,
                     const char *type, const struct ks_route *rt, struct err *e)
{
	json_t *details = json_object(), *content;
	struct ks_event ev = {.type = type, .name = name, .details = details};
	long long seq = -1;
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
	rc = ks_log_append(r, d, &ev, &seq, e);
	json_decref(details);
	if (rc < 0 || rt == NULL)
		return rc;
	return ks_store_route_set_log_seq(r->db, d->id, name, seq, e);
}

static int route_store(struct ks_req *r, const struct ks_domain *d, const char *name,
                       const struct ks_route *rt, const char *set_by, struct err *e)
{
	if (db_begin(r->db, e) < 0)
		return -1;
	/* Serialise route changes of a domain so that two concurrent aliases cannot
	 * close a loop that neither saw. */
	if (ks_store_domain_lock(r->db, d->id, e) < 0 ||
	    check_local_loop(r->db, d, name, rt, e) < 0 ||
	    ks_store_route_put(r->db, d->id, name, rt, set_by, e) < 0 ||
	    log_route(r, d, name, "route_set", rt, e) < 0 ||
	    ks_store_notify_change(r->db, d->name, e) < 0 || db_commit(r->db, e) < 0) {
		db_rollback(r->db);
		return -1;
	}
	ks_cache_invalidate(r->ks->cache);
	ks_log_publish(r, d);
	return 0;
}

static int route_remove(struct ks_req *r, const struct ks_domain *d, const char *name,
                        struct err *e)
{
	int gone;

	if (db_begin(r->db, e) < 0)
		return -1;
	/* The domain before the route's row, as route_set takes them. */
	if (ks_store_domain_lock(r->db, d->id, e) < 0 ||
	    (gone = ks_store_route_delete(r->db, d->id, name, e)) < 0)
		goto fail;
	if (gone == 0) {
		err_set(e, ERR_NOTFOUND, "no_route", "no route is set for %s", name);
		goto fail;
	}
	if (log_route(r, d, name, "route_removed", NULL, e) < 0 ||
	    ks_store_notify_change(r->db, d->name, e) < 0 || db_commit(r->db, e) < 0)
		goto fail;
	ks_cache_invalidate(r->ks->cache);
	ks_log_publish(r, d);
	return 0;
fail:
	db_rollback(r->db);
	return -1;
}

/* ---- signed answers ---- */

/*
 * The log entry of the route and its inclusion proof ride in the JWS's unprotected
 * header: they need no signature of their own (the proof leads to a signed tree head),
 * and a verifier that does not know them ignores them.  On any failure the answer
 * goes out without them rather than not at all.
 */
static char *with_log_proof(struct ks_req *r, const struct ks_domain *d, const struct ks_route *rt,
                            char *jws)
{
	json_t *obj = NULL, *proof = NULL, *head = NULL;
	struct err e = {0};
	char *out = NULL;

	if (rt->log_seq < 0)
		return jws;
	if (ks_log_proof_newest(r, d->id, rt->log_seq, &proof, &head, &e) < 0 || proof == NULL ||
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
			log_warn(r->http->reqid, "route answer without log proof: %s", e.msg);
		return jws;
	}
	free(jws);
	return out;
}

static void reply_signed_route(struct ks_req *r, const struct ks_domain *d, const char *asked,
                               const struct ks_route *rt)
{
	struct err e = {0};
	/* The signer builds the answer from the route rows itself; rt serves for the proof
	 * and the cache lifetime. */
	char *jws = ks_signer_route(r->ks, d->name, asked, &e);

	if (jws == NULL) {
		if (e.kind == ERR_NONE)
			err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		ks_fail(r, &e);
		return;
	}
	jws = with_log_proof(r, d, rt, jws);
	http_reply_text(r->resp, 200, "application/jose+json", jws, strlen(jws));
	/* Keep cached copies well inside the answer's validity. */
	r->cache_max_age = rt->ttl < r->cache_max_age ? rt->ttl : r->cache_max_age;
}

/* ---- handlers ---- */

void ks_route_get(struct ks_req *r, const char *raw)
{
	struct ks_domain *d = NULL;
	char *addr = ks_address_arg(r, raw, &d);
	struct ks_route rt = {0};
	struct err e = {0};

	if (addr == NULL)
		return;
	if (ks_store_route_effective(r->db, d, addr, &rt, &e) < 0)
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

static void put_route(struct ks_req *r, struct ks_domain *d, const char *name, int domain_scope)
{
	struct ks_route rt = {0};
	struct err e = {0};
	const char *set_by = "admin";
	char keyref[64];

	if (!domain_scope && json_object_get(r->http->json, "protected") != NULL) {
		/* A request signed by the address's own key: alias only. */
		if (ks_user_request_route(r, d, name, &rt, keyref, sizeof(keyref), &e) < 0)
			goto fail;
		set_by = keyref;
	} else if (ks_auth_domain_admin(r, d, &e) < 0 ||
	           ks_route_parse(r->http->json, name, domain_scope, &rt, &e) < 0) {
		goto fail;
	}
	if (route_store(r, d, name, &rt, set_by, &e) < 0)
		goto fail;
	log_info(r->http->reqid, "route of %s set by %s: %s", name, set_by,
	         rt.alias ? "alias" : "servers");
	/* Answer with the route as stored, log entry included. */
	ks_route_free(&rt);
	if (ks_store_route_effective(r->db, d, name, &rt, &e) < 0)
		goto fail;
	reply_signed_route(r, d, name, &rt);
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
