/*
 * route_json.c - a route as JSON: the check of a route body an admin (or a
 * user, for their alias) sends, and the payload of the signed answer the
 * signer builds from a stored route.  Pure: no database, no I/O, so the
 * unit tests (tests/unit/test_ks_route.c) drive it directly.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki/cert.h"
#include "pki/name.h"
#include "pki/crypto.h"
#include "route_json.h"

#define ROUTE_MAX_SERVERS 32
#define ROUTE_TTL_DEFAULT KS_ROUTE_TTL_DEFAULT
#define ROUTE_TTL_MIN 60
#define ROUTE_TTL_MAX 86400
/* A signed answer stays valid for an hour past its TTL: long enough to ride out a
 * key-server outage, short enough that a replayed old answer soon dies. */
#define ROUTE_GRACE 3600

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
		return err_set(e, ERR_INPUT, "bad_route",
		               "servers[%zu].%s must be a whole number "
		               "from %lld to %lld",
		               idx, key, min, max);
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
			err_set(e, ERR_INPUT, "bad_route",
			        "servers[%zu] has an unknown member \"%.40s\"", i, key);
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
		        "certificate key the host presents",
		        i);
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
static int alias_parse(const char *alias, const char *self, int domain_scope, struct ks_route *rt,
                       struct err *e)
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
	static const char *const known[] = {"servers", "alias", "ttl", "type", "address", "issued"};
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
			               "a route has no member \"%.40s\" (servers, alias, ttl)",
			               key);
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

static void rfc3339(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *ks_route_payload(const struct ks_domain *d, const char *asked, const struct ks_route *rt)
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
	else if (rt->alias != NULL)
		json_object_set_new(o, "alias", json_string(rt->alias));
	return o;
}
