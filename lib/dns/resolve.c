/* resolve.c - address -> delivery targets, alias by alias; see resolve.h. */
#include "dns/resolve.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>

#include "pki/cert.h"
#include "pki/name.h"
#include "pki/jws.h"

#define CACHE_BUCKETS 1024

struct cached_route {
	struct cached_route *next;
	char name[RESOLVE_ADDR_MAX];
	json_t *payload;
	enum dns_sec dnssec;
	time_t valid_until; /* monotonic */
};

struct resolve_ctx {
	struct discover_ctx *dctx;
	pthread_mutex_t lock;
	struct cached_route *buckets[CACHE_BUCKETS];
};

static time_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static unsigned bucket_of(const char *name)
{
	unsigned h = 5381; /* djb2: short trusted keys */

	while (*name)
		h = h * 33 + (unsigned char)*name++;
	return h % CACHE_BUCKETS;
}

struct resolve_ctx *resolve_new(struct discover_ctx *dctx, struct err *e)
{
	struct resolve_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	ctx->dctx = dctx;
	pthread_mutex_init(&ctx->lock, NULL);
	return ctx;
}

void resolve_cache_flush(struct resolve_ctx *ctx)
{
	pthread_mutex_lock(&ctx->lock);
	for (int i = 0; i < CACHE_BUCKETS; i++) {
		struct cached_route *c = ctx->buckets[i], *next;
		for (; c != NULL; c = next) {
			next = c->next;
			json_decref(c->payload);
			free(c);
		}
		ctx->buckets[i] = NULL;
	}
	pthread_mutex_unlock(&ctx->lock);
}

struct discover_ctx *resolve_discover(struct resolve_ctx *ctx)
{
	return ctx->dctx;
}

void resolve_free(struct resolve_ctx *ctx)
{
	if (ctx == NULL)
		return;
	resolve_cache_flush(ctx);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
}

static json_t *cache_get(struct resolve_ctx *ctx, const char *name, enum dns_sec *sec)
{
	json_t *p = NULL;

	pthread_mutex_lock(&ctx->lock);
	for (struct cached_route *c = ctx->buckets[bucket_of(name)]; c != NULL; c = c->next) {
		if (strcmp(c->name, name) == 0 && mono_now() < c->valid_until) {
			p = json_incref(c->payload);
			*sec = c->dnssec;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	return p;
}

static void cache_put(struct resolve_ctx *ctx, const char *name, json_t *payload, enum dns_sec sec,
                      int ttl)
{
	struct cached_route *c = calloc(1, sizeof(*c)), **pp;

	if (c == NULL)
		return;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->payload = json_incref(payload);
	c->dnssec = sec;
	c->valid_until = mono_now() + ttl;
	pthread_mutex_lock(&ctx->lock);
	pp = &ctx->buckets[bucket_of(name)];
	/* Replace an older entry for the same name. */
	for (; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			struct cached_route *old = *pp;
			c->next = old->next;
			*pp = c;
			json_decref(old->payload);
			free(old);
			pthread_mutex_unlock(&ctx->lock);
			return;
		}
	}
	c->next = ctx->buckets[bucket_of(name)];
	ctx->buckets[bucket_of(name)] = c;
	pthread_mutex_unlock(&ctx->lock);
}

/* ---- checking an answer ---- */

static int parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;

	if (end == NULL || *end != '\0')
		return -1;
	*out = timegm(&tm);
	return 0;
}

int resolve_check_answer(const char *jws, size_t len, const char *name,
                         const char pins[][CRYPTO_PIN_MAX], int npins, time_t now, json_t **payload,
                         struct err *e)
{
	const char *pinv[DNS_MAX_PINS];
	struct jws_verified v = {0};
	json_t *p = NULL;
	const char *type, *pname;
	time_t expires;

	for (int i = 0; i < npins && i < DNS_MAX_PINS; i++)
		pinv[i] = pins[i];
	if (jws_verify(jws, len, pinv, npins < DNS_MAX_PINS ? npins : DNS_MAX_PINS, &v, e) < 0) {
		char why[ERR_MSG_MAX];
		snprintf(why, sizeof(why), "%s", e->msg);
		return err_set(e, ERR_UNPROC, "route_unverified",
		               "the route answer for %s does not verify: %s", name, why);
	}
	/* Every certificate of the domain chains to its root, users' too: only the domain
	 * itself (its issuer, a CA; x5c [issuer, root]) speaks for its routes. */
	if (X509_check_ca(v.leaf) < 1) {
		jws_verified_free(&v);
		return err_set(e, ERR_UNPROC, "route_unverified",
		               "the route answer for %s is signed by an end-entity certificate, "
		               "not by its domain",
		               name);
	}
	p = json_loadb(v.payload, v.payload_len, JSON_REJECT_DUPLICATES, NULL);
	jws_verified_free(&v);
	type = json_string_value(json_object_get(p, "type"));
	pname = json_string_value(json_object_get(p, "name"));
	if (!json_is_object(p) || type == NULL || strcmp(type, "anchor-route") != 0) {
		json_decref(p);
		return err_set(e, ERR_UNPROC, "route_unverified",
		               "the answer for %s is not a route object", name);
	}
	if (pname == NULL || strcmp(pname, name) != 0) {
		err_set(e, ERR_UNPROC, "route_mismatch",
		        "asked for the route of %s, got one for %.100s", name,
		        pname ? pname : "(nothing)");
		json_decref(p);
		return -1;
	}
	if (parse_time(json_string_value(json_object_get(p, "expires")), &expires) < 0 ||
	    expires <= now) {
		json_decref(p);
		return err_set(e, ERR_UNPROC, "route_expired",
		               "the route answer for %s has expired", name);
	}
	*payload = p;
	return 0;
}

/* ---- fetching ---- */

static int fetch_from(struct resolve_ctx *ctx, const struct dns_srv *t, const char *path,
                      struct https_reply *rep, struct err *e)
{
	const struct discover_config *cfg = discover_config(ctx->dctx);
	struct https_opts o = {.cacert = cfg->cacert,
	                       .connect_timeout_ms = cfg->timeout_ms,
	                       .timeout_ms = cfg->https_timeout_ms};
	char ip[64];

	discover_target_ip(ctx->dctx, t->target, ip, sizeof(ip));
	if (ip[0])
		o.resolve_ip = ip;
	return https_get(t->target, t->port, path, &o, rep, e);
}

/* GET the route of name from the domain's key servers, the one that answered discovery
 * first, then the others in order. */
int resolve_fetch_answer(struct resolve_ctx *ctx, const struct discover_result *d, const char *name,
                         struct https_reply *rep, struct err *e)
{
	char path[RESOLVE_ADDR_MAX * 3 + 32];
	char *esc = curl_easy_escape(NULL, name, 0);
	int first = d->used_target >= 0 ? d->used_target : 0;

	memset(rep, 0, sizeof(*rep));
	if (esc == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (strchr(name, '@') != NULL)
		snprintf(path, sizeof(path), "/v1/routes/%s", esc);
	else
		snprintf(path, sizeof(path), "/v1/domains/%s/route", esc);
	curl_free(esc);
	for (int k = 0; k < d->ntargets; k++) {
		const struct dns_srv *t = &d->targets[(first + k) % d->ntargets];
		err_clear(e);
		if (fetch_from(ctx, t, path, rep, e) == 0)
			return 0;
		if (rep->status == 404)
			return err_set(e, ERR_NOTFOUND, "no_route", "%s has no route", name);
		https_reply_clear(rep);
	}
	if (d->ntargets == 0)
		err_set(e, ERR_TEMP, "no_keyserver", "%s lists no key server", d->domain);
	return -1;
}

/* The verified route payload of name, from the cache or the network. */
static json_t *route_of(struct resolve_ctx *ctx, const struct discover_result *d, const char *name,
                        struct resolve_hop *hop, struct resolve_result *out, struct err *e)
{
	struct https_reply rep = {0};
	json_t *p = cache_get(ctx, name, &hop->dnssec);

	if (p != NULL) {
		hop->from_cache = 1;
		return p;
	}
	if (resolve_fetch_answer(ctx, d, name, &rep, e) < 0)
		return NULL;
	out->network_fetches++;
	if (resolve_check_answer(rep.body, rep.len, name, d->pins, d->npins, time(NULL), &p, e) ==
	        0 &&
	    json_object_get(p, "direct") == NULL) {
		json_t *ttl = json_object_get(p, "ttl");
		hop->dnssec = d->dnssec;
		cache_put(ctx, name, p, d->dnssec,
		          json_is_integer(ttl) ? (int)json_integer_value(ttl) : 60);
	}
	https_reply_clear(&rep);
	return p;
}

/* ---- the walk ---- */

static void lowercase(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static int add_servers(json_t *servers, struct resolve_result *out, struct err *e)
{
	struct dns_srv srv[RESOLVE_MAX_TARGETS];
	char pins[RESOLVE_MAX_TARGETS][CRYPTO_PIN_MAX];
	size_t i, n = 0;
	json_t *s;

	memset(srv, 0, sizeof(srv));
	json_array_foreach(servers, i, s)
	{
		const char *host = json_string_value(json_object_get(s, "host"));
		const char *pin = json_string_value(json_object_get(s, "pin"));
		if (n == RESOLVE_MAX_TARGETS || host == NULL || pin == NULL)
			return err_set(e, ERR_UNPROC, "route_unverified",
			               "the route lists a malformed server");
		snprintf(srv[n].target, sizeof(srv[n].target), "%s", host);
		srv[n].port = (uint16_t)json_integer_value(json_object_get(s, "port"));
		srv[n].priority = (uint16_t)json_integer_value(json_object_get(s, "priority"));
		srv[n].weight = (uint16_t)json_integer_value(json_object_get(s, "weight"));
		/* dns_srv carries no pin: remember it by position and match after ordering. */
		srv[n].ttl = (uint32_t)n;
		snprintf(pins[n], CRYPTO_PIN_MAX, "%s", pin);
		n++;
	}
	if (n == 0)
		return err_set(e, ERR_UNPROC, "route_unverified", "the route lists no server");
	if (dns_srv_order(srv, n, NULL, NULL, e) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct resolve_target *t = &out->targets[out->ntargets++];
		snprintf(t->host, sizeof(t->host), "%s", srv[i].target);
		t->port = srv[i].port;
		t->priority = srv[i].priority;
		t->weight = srv[i].weight;
		snprintf(t->pin, sizeof(t->pin), "%s", pins[srv[i].ttl]);
	}
	return 0;
}

/*
 * The direct endpoint of the final answer, when it is well formed and has not expired;
 * anything else in it leaves the answer as it is without one (the domain's servers).
 */
static void take_direct(json_t *p, struct resolve_result *out)
{
	json_t *dj = json_object_get(p, "direct");
	const char *host = json_string_value(json_object_get(dj, "host"));
	const char *pin = json_string_value(json_object_get(dj, "pin"));
	json_int_t port = json_integer_value(json_object_get(dj, "port"));
	struct resolve_direct *x = &out->direct;
	struct err ignore = {0};
	unsigned char buf[16];

	out->has_direct = 0;
	if (!json_is_object(dj) || host == NULL || pin == NULL || strncmp(pin, "sha256:", 7) != 0 ||
	    strlen(pin) >= sizeof(x->pin) || strlen(host) >= sizeof(x->host) || port < 1 ||
	    port > 65535 ||
	    parse_time(json_string_value(json_object_get(dj, "expires")), &x->expires) < 0 ||
	    x->expires <= time(NULL))
		return;
	if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1 &&
	    name_check_domain(host, &ignore) < 0)
		return;
	snprintf(x->host, sizeof(x->host), "%s", host);
	snprintf(x->pin, sizeof(x->pin), "%s", pin);
	x->port = (uint16_t)port;
	out->has_direct = 1;
}

/* True when name has an address record: the implicit MX of RFC 5321 §5.1. */
static int has_address(struct resolve_ctx *ctx, const char *name)
{
	static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA};
	int found = 0;

	for (size_t i = 0; i < 2 && !found; i++) {
		struct dns_answer a;
		struct err ignore = {0};
		if (dns_query(discover_resolver(ctx->dctx), name, types[i], &a, &ignore) < 0)
			continue;
		found = a.sec != DNS_SEC_BOGUS && ldns_rr_list_rr_count(a.rrs) > 0;
		dns_answer_clear(&a);
	}
	return found;
}

/* A legacy domain's MX hosts; with no MX, the domain itself when it has an address;
 * a null MX (RFC 7505) or nothing at all: the domain takes no mail. */
static int add_mx(struct resolve_ctx *ctx, const struct discover_result *d,
                  struct resolve_result *out, struct err *e)
{
	out->legacy = 1;
	for (int i = 0; i < d->nmx && out->ntargets < RESOLVE_MAX_TARGETS; i++) {
		struct resolve_target *t;
		if (strcmp(d->mx[i].host, ".") == 0)
			continue;
		t = &out->targets[out->ntargets++];
		snprintf(t->host, sizeof(t->host), "%s", d->mx[i].host);
		t->port = 25;
		t->priority = d->mx[i].preference;
	}
	if (d->nmx == 0 && has_address(ctx, d->domain)) {
		struct resolve_target *t = &out->targets[out->ntargets++];
		snprintf(t->host, sizeof(t->host), "%s", d->domain);
		t->port = 25;
	}
	if (out->ntargets == 0)
		return err_set(e, ERR_NOTFOUND, "no_route",
		               "%s has no anchor and takes no mail (no MX records%s)", d->domain,
		               d->nmx > 0 ? ", a null MX" : " and no address");
	return 0;
}

/* Where an alias leads: an address, or for a domain's default the same local part at
 * the alias domain. */
static int next_address(const char *cur, json_t *p, char *next, size_t len, struct err *e)
{
	const char *alias = json_string_value(json_object_get(p, "alias"));
	const char *scope = json_string_value(json_object_get(p, "scope"));
	const char *at = strrchr(cur, '@');

	if (alias == NULL || at == NULL)
		return err_set(e, ERR_UNPROC, "route_unverified", "the alias is malformed");
	if (scope != NULL && strcmp(scope, "domain") == 0 && strchr(alias, '@') == NULL)
		snprintf(next, len, "%.*s@%s", (int)(at - cur), cur, alias);
	else
		snprintf(next, len, "%s", alias);
	lowercase(next);
	return name_check_address(next, e) < 0
	           ? err_set(e, ERR_UNPROC, "route_unverified",
	                     "the alias target %.100s is not a valid address", next)
	           : 0;
}

static int seen_before(const struct resolve_result *out, const char *addr)
{
	for (int i = 0; i < out->nhops; i++)
		if (strcmp(out->hops[i].address, addr) == 0)
			return 1;
	return 0;
}

/* One hop: discover the domain, take its route; returns 1 when the walk goes on. */
static int resolve_hop(struct resolve_ctx *ctx, char *cur, struct resolve_result *out,
                       struct err *e)
{
	struct resolve_hop *hop = &out->hops[out->nhops++];
	struct discover_result *d = NULL;
	json_t *p = NULL;
	int rc = -1;

	snprintf(hop->address, sizeof(hop->address), "%s", cur);
	snprintf(hop->domain, sizeof(hop->domain), "%s", strrchr(cur, '@') + 1);
	if (discover_domain(ctx->dctx, cur, &d, e) < 0)
		goto out;
	hop->dnssec = d->dnssec;
	if (d->status == DISCOVER_LEGACY) {
		hop->kind = RESOLVE_HOP_LEGACY;
		rc = add_mx(ctx, d, out, e);
		goto out;
	}
	if ((p = route_of(ctx, d, cur, hop, out, e)) == NULL)
		goto out;
	snprintf(hop->scope, sizeof(hop->scope), "%s",
	         json_string_value(json_object_get(p, "scope")) ?: "");
	snprintf(hop->expires, sizeof(hop->expires), "%s",
	         json_string_value(json_object_get(p, "expires")) ?: "");
	hop->ttl = (int)json_integer_value(json_object_get(p, "ttl"));
	if (json_object_get(p, "servers") != NULL) {
		hop->kind = RESOLVE_HOP_SERVERS;
		take_direct(p, out);
		rc = add_servers(json_object_get(p, "servers"), out, e);
		goto out;
	}
	if (json_object_get(p, "alias") == NULL && json_object_get(p, "direct") != NULL) {
		/* a direct endpoint and no route: the caller falls back to MX (relay/route.c) */
		hop->kind = RESOLVE_HOP_SERVERS;
		take_direct(p, out);
		rc = out->has_direct ? 0
		                     : err_set(e, ERR_NOTFOUND, "no_route", "%s has no route", cur);
		goto out;
	}
	hop->kind = RESOLVE_HOP_ALIAS;
	if (next_address(cur, p, hop->alias, sizeof(hop->alias), e) < 0)
		goto out;
	snprintf(cur, RESOLVE_ADDR_MAX, "%s", hop->alias);
	rc = 1;
out:
	json_decref(p);
	discover_result_free(d);
	return rc;
}

int resolve_address(struct resolve_ctx *ctx, const char *address, struct resolve_result *out,
                    struct err *e)
{
	char cur[RESOLVE_ADDR_MAX];
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(cur, sizeof(cur), "%s", address);
	lowercase(cur);
	if (name_check_address(cur, e) < 0)
		return -1;
	for (;;) {
		if (seen_before(out, cur))
			return err_set(e, ERR_UNPROC, "route_loop",
			               "the aliases of %s loop back to %s", address, cur);
		if (out->nhops > RESOLVE_MAX_HOPS)
			return err_set(e, ERR_UNPROC, "too_many_hops",
			               "%s takes more than %d aliases to resolve", address,
			               RESOLVE_MAX_HOPS);
		rc = resolve_hop(ctx, cur, out, e);
		if (rc <= 0)
			break;
	}
	if (rc == 0)
		snprintf(out->final_address, sizeof(out->final_address), "%s", cur);
	return rc;
}

static const char *hop_kind_name(enum resolve_hop_kind k)
{
	return k == RESOLVE_HOP_ALIAS ? "alias" : k == RESOLVE_HOP_SERVERS ? "servers" : "legacy";
}

json_t *resolve_result_json(const struct resolve_result *r)
{
	json_t *hops = json_array(), *targets = json_array();

	for (int i = 0; i < r->nhops; i++) {
		const struct resolve_hop *h = &r->hops[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b}", "address", h->address, "domain",
		                      h->domain, "kind", hop_kind_name(h->kind), "dnssec",
		                      dns_sec_name(h->dnssec), "cached", h->from_cache);
		if (h->kind == RESOLVE_HOP_ALIAS)
			json_object_set_new(o, "alias", json_string(h->alias));
		if (h->kind != RESOLVE_HOP_LEGACY) {
			json_object_set_new(o, "scope", json_string(h->scope));
			json_object_set_new(o, "ttl", json_integer(h->ttl));
			json_object_set_new(o, "expires", json_string(h->expires));
		}
		json_array_append_new(hops, o);
	}
	for (int i = 0; i < r->ntargets; i++) {
		const struct resolve_target *t = &r->targets[i];
		json_t *o = json_pack("{s:s, s:i, s:i, s:i}", "host", t->host, "port", t->port,
		                      "priority", t->priority, "weight", t->weight);
		if (t->pin[0])
			json_object_set_new(o, "pin", json_string(t->pin));
		json_array_append_new(targets, o);
	}
	json_t *o = json_pack("{s:o, s:o, s:s, s:b}", "hops", hops, "targets", targets, "final",
	                      r->final_address, "legacy", r->legacy);

	if (o != NULL && r->has_direct)
		json_object_set_new(o, "direct",
		                    json_pack("{s:s, s:i, s:s, s:I}", "host", r->direct.host,
		                              "port", r->direct.port, "pin", r->direct.pin,
		                              "expires", (json_int_t)r->direct.expires));
	return o;
}
