/* router.c - maps a checked HTTP request onto a key-server handler. */
#include <string.h>

#include "cache.h"
#include "pki/cert.h"
#include "pki/crypto.h"
#include "core/log.h"
#include "acme.h"
#include "ks.h"

/* lookup.c: GET /v1/domains/{domain}/dkim/{selector} (declared here to keep ks.h as it is;
 * its place is ks.h's lookup.c block). */

enum route_id {
	R_NONE = 0,
	R_DOMAIN,
	R_DOMAIN_PEM,
	R_ENROLL,
	R_TOKENS,
	R_SERVERS,
	R_POLICY,
	R_GROUP,
	R_ADDRESS,
	R_HISTORY,
	R_KEY,
	R_KEY_PEM,
	R_FINGERPRINT,
	R_ADMIN_DOMAINS,
	R_ROUTE,
	R_DOMAIN_ROUTE,
	R_DIRECT,
	R_REVOKE,
	R_CRL,
	R_LOG_HEAD,
	R_LOG_ENTRIES,
	R_LOG_CONSISTENCY,
	R_LOG_INCLUSION,
	R_FEED,
	R_WEBHOOKS,
	R_WEBHOOK,
	R_ERASE,
	R_DKIM,
	R_RENEW,
	R_RENEWAL,
	R_ACME,
	R_PAGE,
	R_ENC_ENROLL,
	R_ENC_CHALLENGE,
	R_GROUP_KEYS,
	R_GROUP_KEY_FETCH,
};

struct route {
	enum route_id id;
	const char *label;   /* metrics label */
	const char *methods; /* allowed, space separated */
	int cacheable;       /* its GET is public and changes only with the domain */
};

static const struct route routes[] = {
    [R_DOMAIN] = {R_DOMAIN, "domain", "GET", 1},
    [R_DOMAIN_PEM] = {R_DOMAIN_PEM, "domain_pem", "GET", 1},
    [R_ENROLL] = {R_ENROLL, "enroll", "POST", 0},
    [R_TOKENS] = {R_TOKENS, "token_issue", "POST", 0},
    [R_SERVERS] = {R_SERVERS, "servers", "GET POST", 0},
    [R_POLICY] = {R_POLICY, "policy", "PUT", 0},
    [R_GROUP] = {R_GROUP, "group", "GET PUT DELETE", 0},
    [R_ADDRESS] = {R_ADDRESS, "address", "GET", 1},
    [R_HISTORY] = {R_HISTORY, "history", "GET", 1},
    [R_KEY] = {R_KEY, "key", "GET", 1},
    [R_KEY_PEM] = {R_KEY_PEM, "key_pem", "GET", 1},
    [R_FINGERPRINT] = {R_FINGERPRINT, "fingerprint", "GET", 1},
    [R_ADMIN_DOMAINS] = {R_ADMIN_DOMAINS, "admin_domains", "POST", 0},
    [R_ROUTE] = {R_ROUTE, "route", "GET PUT DELETE", 1},
    [R_DOMAIN_ROUTE] = {R_DOMAIN_ROUTE, "domain_route", "GET PUT DELETE", 1},
    [R_DIRECT] = {R_DIRECT, "direct", "GET PUT DELETE", 0},
    [R_REVOKE] = {R_REVOKE, "revoke", "POST", 0},
    [R_CRL] = {R_CRL, "crl", "GET", 1},
    [R_LOG_HEAD] = {R_LOG_HEAD, "log_head", "GET", 1},
    [R_LOG_ENTRIES] = {R_LOG_ENTRIES, "log_entries", "GET", 0},
    [R_LOG_CONSISTENCY] = {R_LOG_CONSISTENCY, "log_consistency", "GET", 0},
    [R_LOG_INCLUSION] = {R_LOG_INCLUSION, "log_inclusion", "GET", 0},
    [R_FEED] = {R_FEED, "feed", "GET", 1},
    [R_WEBHOOKS] = {R_WEBHOOKS, "webhooks", "POST", 0},
    [R_WEBHOOK] = {R_WEBHOOK, "webhook", "DELETE", 0},
    [R_ERASE] = {R_ERASE, "erase", "POST", 0},
    [R_DKIM] = {R_DKIM, "dkim", "GET", 1},
    [R_RENEW] = {R_RENEW, "renew", "POST", 0},
    [R_RENEWAL] = {R_RENEWAL, "renewal", "PUT", 0},
    [R_ACME] = {R_ACME, "acme", "GET POST", 0},
    [R_PAGE] = {R_PAGE, "lookup_page", "GET", 0},
    [R_ENC_ENROLL] = {R_ENC_ENROLL, "encryption_enroll", "POST", 0},
    [R_ENC_CHALLENGE] = {R_ENC_CHALLENGE, "encryption_challenge", "POST", 0},
    [R_GROUP_KEYS] = {R_GROUP_KEYS, "group_keys", "PUT", 0},
    [R_GROUP_KEY_FETCH] = {R_GROUP_KEY_FETCH, "group_key_fetch", "POST", 0},
};

/* /v1/domains/{d}/encryption and .../encryption/challenge (PROTOCOL.md §4.1). */
static enum route_id match_encryption(const struct http_request *h, int n)
{
	if (n == 4)
		return R_ENC_ENROLL;
	return n == 5 && http_seg_is(h, 4, "challenge") ? R_ENC_CHALLENGE : R_NONE;
}

/* /v1/domains/{d}/groups/{g}, .../keys and .../keys/{member} (PROTOCOL.md §5.5). */
static enum route_id match_group(const struct http_request *h, int n)
{
	if (n == 5)
		return R_GROUP;
	if (n == 6 && http_seg_is(h, 5, "keys"))
		return R_GROUP_KEYS;
	return n == 7 && http_seg_is(h, 5, "keys") ? R_GROUP_KEY_FETCH : R_NONE;
}

/* Under /v1/domains/{d}/: the domain's own resources. */
static enum route_id match_domain(const struct http_request *h, int n)
{
	if (n == 3)
		return R_DOMAIN;
	if (n == 4 && (http_seg_is(h, 3, "root.pem") || http_seg_is(h, 3, "issuer.pem")))
		return R_DOMAIN_PEM;
	if (n == 4 && http_seg_is(h, 3, "enroll"))
		return R_ENROLL;
	if (n == 4 && http_seg_is(h, 3, "renew"))
		return R_RENEW;
	if (n >= 4 && http_seg_is(h, 3, "encryption"))
		return match_encryption(h, n);
	if (n == 4 && http_seg_is(h, 3, "renewal"))
		return R_RENEWAL;
	if (n == 4 && http_seg_is(h, 3, "tokens"))
		return R_TOKENS;
	if (n == 4 && http_seg_is(h, 3, "servers"))
		return R_SERVERS;
	if (n == 4 && http_seg_is(h, 3, "policy"))
		return R_POLICY;
	if (n >= 5 && http_seg_is(h, 3, "groups"))
		return match_group(h, n);
	if (n == 4 && http_seg_is(h, 3, "route"))
		return R_DOMAIN_ROUTE;
	if (n == 4 && (http_seg_is(h, 3, "crl") || http_seg_is(h, 3, "crl.pem")))
		return R_CRL;
	if (n == 4 && http_seg_is(h, 3, "feed"))
		return R_FEED;
	if (n == 4 && http_seg_is(h, 3, "webhooks"))
		return R_WEBHOOKS;
	if (n == 4 && http_seg_is(h, 3, "erase"))
		return R_ERASE;
	if (n == 5 && http_seg_is(h, 3, "webhooks"))
		return R_WEBHOOK;
	if (n == 5 && http_seg_is(h, 3, "dkim"))
		return R_DKIM;
	if (n == 5 && http_seg_is(h, 3, "log") && http_seg_is(h, 4, "head"))
		return R_LOG_HEAD;
	if (n == 5 && http_seg_is(h, 3, "log") && http_seg_is(h, 4, "entries"))
		return R_LOG_ENTRIES;
	if (n == 5 && http_seg_is(h, 3, "log") && http_seg_is(h, 4, "consistency"))
		return R_LOG_CONSISTENCY;
	if (n == 5 && http_seg_is(h, 3, "log") && http_seg_is(h, 4, "inclusion"))
		return R_LOG_INCLUSION;
	return R_NONE;
}

static enum route_id match_route(const struct http_request *h)
{
	int n = h->nseg;

	if (n >= 2 && http_seg_is(h, 0, "acme"))
		return R_ACME;
	/* /lookup, /lookup/ and /lookup/<file>: the public lookup page (page.c). */
	if ((n == 1 || n == 2) && http_seg_is(h, 0, "lookup"))
		return R_PAGE;
	if (n < 3 || !http_seg_is(h, 0, "v1"))
		return R_NONE;
	if (http_seg_is(h, 1, "domains"))
		return match_domain(h, n);
	if (http_seg_is(h, 1, "addresses")) {
		if (n == 3)
			return R_ADDRESS;
		if (n == 4 && http_seg_is(h, 3, "history"))
			return R_HISTORY;
		return R_NONE;
	}
	if (http_seg_is(h, 1, "keys")) {
		if (n == 3)
			return R_KEY;
		if (n == 4 && http_seg_is(h, 3, "certificate.pem"))
			return R_KEY_PEM;
		if (n == 4 && http_seg_is(h, 3, "revoke"))
			return R_REVOKE;
		return R_NONE;
	}
	if (http_seg_is(h, 1, "routes") && n == 3)
		return R_ROUTE;
	if (http_seg_is(h, 1, "direct") && n == 3)
		return R_DIRECT;
	if (http_seg_is(h, 1, "fingerprints") && n == 3)
		return R_FINGERPRINT;
	if (http_seg_is(h, 1, "admin") && http_seg_is(h, 2, "domains") && n == 3)
		return R_ADMIN_DOMAINS;
	return R_NONE;
}

/* A group, its keys (admin) and a member's fetch of them (signed by the member). */
static void run_group_handler(struct ks_req *r, enum route_id id, const char *method)
{
	const struct http_request *h = r->http;

	if (id == R_GROUP_KEYS)
		ks_group_key_put(r, h->seg[2], h->seg[4]);
	else if (id == R_GROUP_KEY_FETCH)
		ks_group_key_fetch(r, h->seg[2], h->seg[4], h->seg[6]);
	else if (strcmp(method, "DELETE") == 0)
		ks_group_delete(r, h->seg[2], h->seg[4]);
	else if (strcmp(method, "GET") == 0)
		ks_group_get(r, h->seg[2], h->seg[4]);
	else
		ks_group_set(r, h->seg[2], h->seg[4]);
}

/* The handlers of a domain's own resources: its row, enrollment, servers, groups. */
static int run_domain_handler(struct ks_req *r, enum route_id id, const char *method)
{
	const struct http_request *h = r->http;

	switch (id) {
	case R_DOMAIN:
		ks_domain_get(r, h->seg[2], NULL);
		break;
	case R_DOMAIN_PEM:
		ks_domain_get(r, h->seg[2], h->seg[3]);
		break;
	case R_ADMIN_DOMAINS:
		ks_domain_register(r);
		break;
	case R_ENROLL:
		ks_enroll(r, h->seg[2]);
		break;
	case R_RENEW:
		ks_renew(r, h->seg[2]);
		break;
	case R_ENC_CHALLENGE:
		ks_enc_new_challenge(r, h->seg[2]);
		break;
	case R_ENC_ENROLL:
		ks_enc_enroll(r, h->seg[2]);
		break;
	case R_TOKENS:
		ks_token_issue(r, h->seg[2]);
		break;
	case R_SERVERS:
		if (strcmp(method, "GET") == 0)
			ks_server_list(r, h->seg[2]);
		else
			ks_server_issue(r, h->seg[2]);
		break;
	case R_POLICY:
		ks_domain_set_policy(r, h->seg[2]);
		break;
	case R_RENEWAL:
		ks_domain_set_renewal(r, h->seg[2]);
		break;
	case R_GROUP:
	case R_GROUP_KEYS:
	case R_GROUP_KEY_FETCH:
		run_group_handler(r, id, method);
		break;
	case R_ERASE:
		ks_domain_erase(r, h->seg[2]);
		break;
	case R_ACME:
		ks_acme_dispatch(r);
		break;
	default:
		return 0;
	}
	return 1;
}

/* The handlers of keys: lookups, revocation, the CRL. */
static int run_key_handler(struct ks_req *r, enum route_id id)
{
	const struct http_request *h = r->http;

	switch (id) {
	case R_ADDRESS:
		ks_lookup_address(r, h->seg[2]);
		break;
	case R_HISTORY:
		ks_lookup_history(r, h->seg[2]);
		break;
	case R_KEY:
		ks_lookup_key(r, h->seg[2], 0);
		break;
	case R_KEY_PEM:
		ks_lookup_key(r, h->seg[2], 1);
		break;
	case R_FINGERPRINT:
		ks_lookup_fingerprint(r, h->seg[2]);
		break;
	case R_DKIM:
		ks_lookup_dkim(r, h->seg[2], h->seg[4]);
		break;
	case R_REVOKE:
		ks_revoke(r, h->seg[2]);
		break;
	case R_CRL:
		ks_crl_get(r, h->seg[2], strcmp(h->seg[3], "crl.pem") == 0);
		break;
	default:
		return 0;
	}
	return 1;
}

/* The handlers of the transparency log and what hangs off it: feed, webhooks. */
static int run_log_handler(struct ks_req *r, enum route_id id)
{
	const struct http_request *h = r->http;

	switch (id) {
	case R_LOG_HEAD:
		ks_log_head(r, h->seg[2]);
		break;
	case R_LOG_ENTRIES:
		ks_log_entries(r, h->seg[2]);
		break;
	case R_LOG_CONSISTENCY:
		ks_log_consistency(r, h->seg[2]);
		break;
	case R_LOG_INCLUSION:
		ks_log_inclusion(r, h->seg[2]);
		break;
	case R_FEED:
		ks_feed(r, h->seg[2]);
		break;
	case R_WEBHOOKS:
		ks_webhook_add(r, h->seg[2]);
		break;
	case R_WEBHOOK:
		ks_webhook_delete(r, h->seg[2], h->seg[4]);
		break;
	default:
		return 0;
	}
	return 1;
}

/* Routes: GET, PUT or DELETE of an address's or a domain's route. */
static int run_route_handler(struct ks_req *r, enum route_id id, const char *method)
{
	const char *name = r->http->seg[2];
	int get = strcmp(method, "GET") == 0, put = strcmp(method, "PUT") == 0;

	if (id == R_ROUTE) {
		if (get)
			ks_route_get(r, name);
		else if (put)
			ks_route_put(r, name);
		else
			ks_route_delete(r, name);
		return 1;
	}
	if (id == R_DIRECT) {
		if (get)
			ks_direct_get(r, name);
		else if (put)
			ks_direct_put(r, name);
		else
			ks_direct_delete(r, name);
		return 1;
	}
	if (id == R_DOMAIN_ROUTE) {
		if (get)
			ks_route_get_domain(r, name);
		else if (put)
			ks_route_put_domain(r, name);
		else
			ks_route_delete_domain(r, name);
		return 1;
	}
	return 0;
}

static void run_handler(struct ks_req *r, enum route_id id, const char *method)
{
	if (!run_domain_handler(r, id, method) && !run_key_handler(r, id) &&
	    !run_log_handler(r, id))
		run_route_handler(r, id, method);
}

void ks_dispatch(const struct http_request *h, struct http_response *resp, void *app)
{
	struct ks *ks = app;
	struct ks_req r = {
	    .ks = ks, .http = h, .resp = resp, .cache_max_age = ks->cfg.cache_max_age};
	enum route_id id = match_route(h);
	/* HEAD is GET without the body, which libmicrohttpd leaves out by itself. */
	const char *method = strcmp(h->method, "HEAD") == 0 ? "GET" : h->method;
	const struct route *rt = &routes[id];
	unsigned long long gen = 0;
	struct db_lease lease;

	if (id == R_NONE) {
		resp->route = "unknown";
		http_reply_errorf(resp, ERR_NOTFOUND, "not_found", "no resource at %s", h->path);
		return;
	}
	resp->route = rt->label;
	if (!http_method_in(method, rt->methods)) {
		http_reply_errorf(resp, ERR_INPUT, "method_not_allowed",
		                  "%s is not allowed on %s; use %s", h->method, h->path,
		                  rt->methods);
		resp->status = 405;
		http_add_header(resp, "Allow", "%s", rt->methods);
		return;
	}
	/* Constant files: no database connection, so the page loads while the store is down. */
	if (id == R_PAGE) {
		ks_page_get(&r, h->nseg == 2 ? h->seg[1] : "");
		return;
	}
	int cacheable = rt->cacheable && strcmp(method, "GET") == 0;

	if (cacheable && ks_cache_serve(ks->cache, h, resp, &gen)) {
		atomic_fetch_add(&ks->cache_hits, 1);
		return;
	}
	/* GET and HEAD only read: a replica may answer (core/db_rw.h). */
	db_rw_get(ks->rw, strcmp(method, "GET") != 0, &lease);
	r.db = lease.db;
	run_handler(&r, id, method);
	db_rw_put(ks->rw, &lease);
	if (cacheable) {
		atomic_fetch_add(&ks->cache_misses, 1);
		/* A lookup the database could not answer gets the last good one, if allowed. */
		if (resp->status >= 500)
			ks_cache_serve_stale(ks->cache, h, resp);
		else
			ks_cache_store(ks->cache, h, resp, gen, r.cache_max_age);
	}
}
