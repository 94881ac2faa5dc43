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
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "pki/cert.h"
#include "pki/name.h"
#include "pki/crypto.h"
#include "pki/jws.h"
#include "core/log.h"
#include "ks.h"
#include "route.h"

#define ROUTE_MAX_SERVERS 32
#define ROUTE_TTL_DEFAULT 3600
#define ROUTE_TTL_MIN 60
#define ROUTE_TTL_MAX 86400
/* A signed answer stays valid for an hour past its TTL: long enough to ride out a
 * key-server outage, short enough that a replayed old answer soon dies. */
#define ROUTE_GRACE 3600
#define ROUTE_LOOP_STEPS 16

void ks_route_free(struct ks_route *rt)
{
	if (rt == NULL)
		return;
	json_decref(rt->servers);
	free(rt->alias);
	memset(rt, 0, sizeof(*rt));
}

static int pin_ok(const char *pin)
{
	size_t len = 0;
	uint8_t *raw;

	if (pin == NULL || strncmp(pin, "sha256:", 7) != 0)
		return 0;
	raw = crypto_b64_decode(pin + 7, &len);
	free(raw);
	return raw != NULL && len == 32;
}

static int int_member(json_t *o, const char *key, long long def, long long min, long long max,
		      long long *out, size_t idx, struct err *e)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return err_set(e, ERR_INPUT, "bad_route", "servers[%zu].%s must be a whole number "
			       "from %lld to %lld", idx, key, min, max);
	*out = json_integer_value(v);
	return 0;
}

/* One server entry, checked and rebuilt with every member explicit. */
static json_t *server_parse(json_t *s, size_t i, struct err *e)
{
	static const char *const known[] = {"host", "port", "priority", "weight", "pin"};
	const char *host, *pin, *key;
	long long port, prio, weight;
	char lc[256];
	json_t *v;

	if (!json_is_object(s)) {
		err_set(e, ERR_INPUT, "bad_route", "servers[%zu] must be an object", i);
		return NULL;
	}
	json_object_foreach(s, key, v)
	{
		size_t k = 0;
		while (k < sizeof(known) / sizeof(known[0]) && strcmp(known[k], key) != 0)
			k++;
		if (k == sizeof(known) / sizeof(known[0])) {
			err_set(e, ERR_INPUT, "bad_route", "servers[%zu] has an unknown member \"%.40s\"",
				i, key);
			return NULL;
		}
	}
	host = json_string_value(json_object_get(s, "host"));
	pin = json_string_value(json_object_get(s, "pin"));
	if (host == NULL || strlen(host) >= sizeof(lc)) {
		err_set(e, ERR_INPUT, "bad_route", "servers[%zu] needs a \"host\" name", i);
		return NULL;
	}
	for (size_t k = 0; k <= strlen(host); k++)
		lc[k] = (char)tolower((unsigned char)host[k]);
	if (name_check_domain(lc, e) < 0) {
		err_set(e, ERR_INPUT, "bad_route", "servers[%zu].host: %s", i, e->msg);
		return NULL;
	}
	if (!pin_ok(pin)) {
		err_set(e, ERR_INPUT, "bad_route",
			"servers[%zu].pin must be sha256: and the base64 SHA-256 of the "
			"certificate key the host presents", i);
		return NULL;
	}
	if (int_member(s, "port", 25, 1, 65535, &port, i, e) < 0 ||
	    int_member(s, "priority", 10, 0, 65535, &prio, i, e) < 0 ||
	    int_member(s, "weight", 1, 0, 65535, &weight, i, e) < 0)
		return NULL;
	return json_pack("{s:s, s:I, s:I, s:I, s:s}", "host", lc, "port", port, "priority", prio,
			 "weight", weight, "pin", pin);
}

static int servers_parse(json_t *arr, struct ks_route *rt, struct err *e)
{
	size_t i;
	json_t *s;

	if (!json_is_array(arr) || json_array_size(arr) < 1 ||
	    json_array_size(arr) > ROUTE_MAX_SERVERS)
		return err_set(e, ERR_INPUT, "bad_route", "\"servers\" must list 1 to %d servers",
			       ROUTE_MAX_SERVERS);
	rt->servers = json_array();
	json_array_foreach(arr, i, s)
	{
		json_t *norm = server_parse(s, i, e);
		if (norm == NULL)
			return -1;
		json_array_append_new(rt->servers, norm);
	}
	return 0;
}

/* An alias target: an address, or for a domain's default route a domain. */
static int alias_parse(const char *alias, const char *self, int domain_scope,
		       struct ks_route *rt, struct err *e)
{
	char *lc = strdup(alias);

	if (lc == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	for (char *p = lc; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	rt->alias = lc;
	if (domain_scope ? name_check_domain(lc, e) < 0 : name_check_address(lc, e) < 0) {
		err_set(e, ERR_INPUT, "bad_route", "alias %.80s: %s", alias, e->msg);
		return -1;
	}
	if (strcmp(lc, self) == 0)
		return err_set(e, ERR_INPUT, "route_loop", "%s cannot be an alias of itself", self);
	return 0;
}

/* PROTOCOL.md §6.1: unknown members are refused (a user's signed request also carries
 * its own type, address and issued, checked by user_request.c). */
static int members_known(json_t *body, struct err *e)
{
	static const char *const known[] = {"servers", "alias", "ttl", "type", "address",
					    "issued"};
	const char *type = json_string_value(json_object_get(body, "type"));
	int user = type != NULL && strcmp(type, "anchor-route-request") == 0;
	const char *key;
	json_t *v;

	json_object_foreach(body, key, v)
	{
		size_t k = 0, n = user ? sizeof(known) / sizeof(known[0]) : 3;
		while (k < n && strcmp(known[k], key) != 0)
			k++;
		if (k == n)
			return err_set(e, ERR_INPUT, "bad_route",
				       "a route has no member \"%.40s\" (servers, alias, ttl)", key);
	}
	return 0;
}

int ks_route_parse(json_t *body, const char *self, int domain_scope, struct ks_route *rt,
		   struct err *e)
{
	json_t *servers = json_object_get(body, "servers"), *ttl = json_object_get(body, "ttl");
	const char *alias = http_json_str(body, "alias", 0, e);

	memset(rt, 0, sizeof(*rt));
	if (e->kind != ERR_NONE)
		return -1;
	if (!json_is_object(body))
		return err_set(e, ERR_INPUT, "bad_request", "a route is a JSON object");
	if (members_known(body, e) < 0)
		return -1;
	if ((servers == NULL) == (alias == NULL))
		return err_set(e, ERR_INPUT, "bad_route",
			       "a route has either \"servers\" or \"alias\", not both or neither");
	rt->ttl = ROUTE_TTL_DEFAULT;
	if (ttl != NULL) {
		if (!json_is_integer(ttl) || json_integer_value(ttl) < ROUTE_TTL_MIN ||
		    json_integer_value(ttl) > ROUTE_TTL_MAX)
			return err_set(e, ERR_INPUT, "bad_route",
				       "\"ttl\" must be a whole number of seconds from %d to %d",
				       ROUTE_TTL_MIN, ROUTE_TTL_MAX);
		rt->ttl = (int)json_integer_value(ttl);
	}
	if (servers != NULL)
		return servers_parse(servers, rt, e);
	return alias_parse(alias, self, domain_scope, rt, e);
}

/* ---- storage ---- */

static int route_row(PGresult *res, int row, struct ks_route *rt)
{
	memset(rt, 0, sizeof(*rt));
	rt->ttl = (int)strtol(PQgetvalue(res, row, 2), NULL, 10);
	snprintf(rt->scope_name, sizeof(rt->scope_name), "%s", PQgetvalue(res, row, 3));
	snprintf(rt->updated, sizeof(rt->updated), "%s", PQgetvalue(res, row, 4));
	rt->log_seq = PQgetisnull(res, row, 5) ? -1 : strtoll(PQgetvalue(res, row, 5), NULL, 10);
	if (strcmp(PQgetvalue(res, row, 0), "servers") == 0)
		rt->servers = json_loads(PQgetvalue(res, row, 1), 0, NULL);
	else
		rt->alias = strdup(PQgetvalue(res, row, 1));
	return rt->servers != NULL || rt->alias != NULL ? 0 : -1;
}

/* The route in force for name: its own, else (for an address) the domain's default. */
int ks_route_effective(struct db *db, const struct ks_domain *d, const char *name,
		       struct ks_route *rt, struct err *e)
{
	char idbuf[24];
	const char *params[3] = {idbuf, name, d->name};
	PGresult *res;
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", d->id);
	res = db_exec(db,
		      "SELECT kind, COALESCE(servers::text, alias), ttl, name,"
		      " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		      " log_seq FROM routes WHERE domain_id = $1 AND name IN ($2, $3)"
		      " ORDER BY name = $3 LIMIT 1",
		      3, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return err_set(e, ERR_NOTFOUND, "no_route", "no route is set for %s", name);
	}
	rc = route_row(res, 0, rt);
	PQclear(res);
	return rc < 0 ? err_set(e, ERR_INTERNAL, "internal", "a stored route is unreadable") : 0;
}

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
		if (ks_route_effective(db, d, cur, &next, &ignore) < 0)
			return ignore.kind == ERR_NOTFOUND ? 0 : err_set(e, ignore.kind, ignore.code,
									 "%s", ignore.msg);
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
	char digest[CRYPTO_HEX256_LEN], seqbuf[24], idbuf[24];
	char *text = NULL;
	int rc;

	if (rt != NULL) {
		content = rt->servers ? json_pack("{s:O, s:i}", "servers", rt->servers, "ttl", rt->ttl)
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
	snprintf(seqbuf, sizeof(seqbuf), "%lld", seq);
	snprintf(idbuf, sizeof(idbuf), "%lld", d->id);
	const char *params[3] = {seqbuf, idbuf, name};
	return db_run(r->db, "UPDATE routes SET log_seq = $1 WHERE domain_id = $2 AND name = $3",
		      3, params, e);
}

int ks_route_store(struct ks_req *r, const struct ks_domain *d, const char *name,
		   const struct ks_route *rt, const char *set_by, struct err *e)
{
	char idbuf[24], ttlbuf[16];
	char *servers = rt->servers ? json_dumps(rt->servers, JSON_COMPACT) : NULL;
	const char *params[7] = {idbuf, name, rt->servers ? "servers" : "alias", servers,
				 rt->alias, ttlbuf, set_by};
	int rc = -1;

	snprintf(idbuf, sizeof(idbuf), "%lld", d->id);
	snprintf(ttlbuf, sizeof(ttlbuf), "%d", rt->ttl);
	if (db_begin(r->db, e) < 0)
		goto out;
	/* Serialise route changes of a domain so that two concurrent aliases cannot
	 * close a loop that neither saw. */
	if (db_run(r->db, "SELECT id FROM domains WHERE id = $1 FOR UPDATE", 1, params, e) < 0 ||
	    check_local_loop(r->db, d, name, rt, e) < 0 ||
	    db_run(r->db,
		   "INSERT INTO routes (domain_id, name, kind, servers, alias, ttl, set_by)"
		   " VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)"
		   " ON CONFLICT (domain_id, name) DO UPDATE SET kind = EXCLUDED.kind,"
		   " servers = EXCLUDED.servers, alias = EXCLUDED.alias, ttl = EXCLUDED.ttl,"
		   " set_by = EXCLUDED.set_by, updated_at = now()",
		   7, params, e) < 0 ||
	    log_route(r, d, name, "route_set", rt, e) < 0 ||
	    ks_store_notify_change(r->db, d->name, e) < 0 || db_commit(r->db, e) < 0) {
		db_rollback(r->db);
		goto out;
	}
	ks_cache_invalidate(r->ks->cache);
	ks_log_publish(r, d);
	rc = 0;
out:
	free(servers);
	return rc;
}

static int route_remove(struct ks_req *r, const struct ks_domain *d, const char *name,
			struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, name};
	PGresult *res;
	int gone;

	snprintf(idbuf, sizeof(idbuf), "%lld", d->id);
	if (db_begin(r->db, e) < 0)
		return -1;
	res = db_exec(r->db, "DELETE FROM routes WHERE domain_id = $1 AND name = $2", 2, params,
		      e);
	if (res == NULL)
		goto fail;
	gone = strtol(PQcmdTuples(res), NULL, 10) > 0;
	PQclear(res);
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

static void rfc3339(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *ks_route_payload(const struct ks_domain *d, const char *asked,
			 const struct ks_route *rt)
{
	char issued[32], expires[32];
	time_t now = time(NULL);
	int domain_scope = strcmp(rt->scope_name, d->name) == 0;
	json_t *o;

	rfc3339(now, issued);
	rfc3339(now + rt->ttl + ROUTE_GRACE, expires);
	o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "type", "anchor-route", "name",
		      asked, "domain", d->name, "scope", domain_scope ? "domain" : "address", "ttl",
		      rt->ttl, "issued", issued, "expires", expires, "updated", rt->updated);
	if (o == NULL)
		return NULL;
	if (rt->servers != NULL)
		json_object_set(o, "servers", rt->servers);
	else
		json_object_set_new(o, "alias", json_string(rt->alias));
	return o;
}

/*
 * The log entry of the route and its inclusion proof ride in the JWS's unprotected
 * header: they need no signature of their own (the proof leads to a signed tree head),
 * and a verifier that does not know them ignores them.  On any failure the answer
 * goes out without them rather than not at all.
 */
static char *with_log_proof(struct ks_req *r, const struct ks_domain *d,
			    const struct ks_route *rt, char *jws)
{
	json_t *obj = NULL, *proof = NULL, *head = NULL, *probe;
	struct err e = {0};
	char *out = NULL;

	if (rt->log_seq < 0)
		return jws;
	probe = json_pack("{s:I, s:I}", "log_seq", (json_int_t)rt->log_seq, "_domain_id",
			  (json_int_t)d->id);
	if (probe == NULL || ks_log_attach_proofs(r, probe, &head, &e) < 0 ||
	    (proof = json_object_get(probe, "log")) == NULL ||
	    (obj = json_loads(jws, 0, NULL)) == NULL)
		goto out;
	json_object_set_new(obj, "header",
			    json_pack("{s:O, s:O}", "log", proof, "tree_head", head));
	out = json_dumps(obj, JSON_COMPACT);
out:
	json_decref(obj);
	json_decref(head);
	json_decref(probe);
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
	if (ks_route_effective(r->db, d, addr, &rt, &e) < 0)
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
	if (ks_route_effective(r->db, d, d->name, &rt, &e) < 0)
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
	if (ks_route_store(r, d, name, &rt, set_by, &e) < 0)
		goto fail;
	log_info(r->http->reqid, "route of %s set by %s: %s", name, set_by,
		 rt.alias ? "alias" : "servers");
	/* Answer with the route as stored, log entry included. */
	ks_route_free(&rt);
	if (ks_route_effective(r->db, d, name, &rt, &e) < 0)
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
