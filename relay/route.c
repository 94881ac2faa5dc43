/*
 * route.c - where a recipient's mail goes: the hops of an outbound recipient
 * (PROTOCOL.md §6.4 through lib/resolve), and the inbound next hop of the
 * settings.
 *
 * An anchored route's servers become hops with TLS required, the server's
 * pin and its host name as the name the certificate must carry; a legacy
 * domain's MX hosts (or the domain itself, RFC 5321 §5.1: lib/resolve
 * does that) become hops on smtp_port with the outbound_tls rule.
 *
 * Errors are sorted here, where the cause is known: what a later attempt may
 * cure (DNS, key servers, answers that do not verify or have expired — an
 * attacker or a misconfiguration both pass) is ERR_TEMP and the recipient is
 * deferred; what it cannot (no route, alias loops and chains, a malformed
 * address) keeps a permanent kind and the recipient fails.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/un.h>
#include <arpa/inet.h>

#include <ldns/ldns.h>

#include "core/ipaddr.h"
#include "core/ttlcache.h"
#include "dns/dns.h"
#include "relay.h"
#include "dns/resolve.h"

static int is_permanent(const char *code)
{
	static const char *const permanent[] = {"no_route", "route_loop", "too_many_hops",
	                                        "bad_address"};

	for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
		if (strcmp(code, permanent[i]) == 0)
			return 1;
	return 0;
}

/* Keep resolve's code and message; make the kind say defer or fail. */
static int route_error(struct err *e)
{
	if (!is_permanent(e->code))
		e->kind = ERR_TEMP;
	else
		e->kind = strcmp(e->code, "no_route") == 0 ? ERR_NOTFOUND : ERR_UNPROC;
	return -1;
}

/*
 * Replace a hop's host name by its address, asked of the configured resolver
 * (dns_server) like every other lookup the relay makes, rather than of the
 * system's: the name and its route come from the same DNS.  The name stays
 * the TLS name of anchored hops.  An IP literal is left alone.
 */
/*
 * Host addresses are cached for their DNS TTL (capped): every message to a
 * domain goes to the same few hosts, and asking for each would cost a round
 * trip per delivery.  Route answers and discovery have their own caches.
 */
#define ADDR_CACHE_MAX_TTL 3600

/* Host names are compared without case: the key is the lower-cased name. */
static void addr_key(const char *host, char key[256])
{
	size_t i = 0;

	for (; i < 255 && host[i] != '\0'; i++)
		key[i] = (char)tolower((unsigned char)host[i]);
	key[i] = '\0';
}

struct addr_out {
	char *out;
	size_t size;
};

static int addr_copy(const void *value, void *arg)
{
	const char *addr = value;
	struct addr_out *o = arg;

	snprintf(o->out, o->size, "%s", addr);
	return 0;
}

static int addr_cache_get(struct ttlcache *addrs, const char *host, char *addr, size_t size)
{
	char key[256];
	struct addr_out o = {addr, size};

	addr_key(host, key);
	return ttlcache_get(addrs, key, (double)time(NULL), 0, addr_copy, &o);
}

static void addr_cache_put(struct ttlcache *addrs, const char *host, const char *addr, uint32_t ttl)
{
	char key[256], *copy;

	if (ttl == 0 || addrs == NULL || (copy = strdup(addr)) == NULL)
		return;
	addr_key(host, key);
	ttlcache_put(addrs, key, copy,
	             (double)(time(NULL) + (ttl > ADDR_CACHE_MAX_TTL ? ADDR_CACHE_MAX_TTL : ttl)),
	             TTLCACHE_ANY_GEN);
}

static int hop_address(struct resolve_ctx *rc, struct ttlcache *addrs, struct relay_hop *h,
                       struct err *e)
{
	char cached[64];

	static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA};
	struct dns_resolver *res = discover_resolver(resolve_discover(rc));
	unsigned char buf[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, h->host, buf) == 1 || inet_pton(AF_INET6, h->host, buf) == 1)
		return 0;
	if (addr_cache_get(addrs, h->host, cached, sizeof(cached))) {
		snprintf(h->host, sizeof(h->host), "%s", cached);
		return 0;
	}
	for (size_t t = 0; t < 2; t++) {
		struct dns_answer a;
		ldns_rdf *rdf;
		char *text;
		uint32_t ttl;

		memset(&a, 0, sizeof(a));
		if (dns_query(res, h->host, types[t], &a, e) < 0)
			return -1;
		if (a.sec == DNS_SEC_BOGUS) {
			dns_answer_clear(&a);
			return err_set(e, ERR_TEMP, "dns_bogus",
			               "the address of %s is bogus (DNSSEC)", h->host);
		}
		if (a.nxdomain || a.nodata || ldns_rr_list_rr_count(a.rrs) == 0) {
			dns_answer_clear(&a);
			continue;
		}
		rdf = ldns_rr_rdf(ldns_rr_list_rr(a.rrs, 0), 0);
		text = rdf != NULL ? ldns_rdf2str(rdf) : NULL;
		ttl = a.ttl;
		dns_answer_clear(&a);
		if (text == NULL)
			return err_set(e, ERR_TEMP, "dns_bad_answer", "bad address record for %s",
			               h->host);
		addr_cache_put(addrs, h->host, text, ttl);
		snprintf(h->host, sizeof(h->host), "%s", text);
		free(text);
		return 0;
	}
	return err_set(e, ERR_TEMP, "no_address", "%s has no address", h->host);
}

/* Hops whose name has no address are dropped; the others keep their order. */
static int hops_addresses(struct resolve_ctx *rc, struct ttlcache *addrs, const char *rcpt,
                          struct relay_hop *hops, size_t *n, struct err *e)
{
	size_t kept = 0;
	struct err ae = {0};

	for (size_t i = 0; i < *n; i++)
		if (hop_address(rc, addrs, &hops[i], &ae) == 0)
			hops[kept++] = hops[i];
	if (kept == 0 && *n > 0) {
		*e = ae;
		*n = 0;
		return route_error(e);
	}
	*n = kept;
	if (*n == 0)
		return err_set(e, ERR_NOTFOUND, "no_route", "%.200s has no server to deliver to",
		               rcpt);
	return 0;
}

/*
 * An anchored domain that publishes no route for the address (404 no_route)
 * still takes mail the ordinary way: its MX hosts, or the domain itself
 * (RFC 5321 §5.1), with the legacy TLS rule, since no route names a pin.
 * Without this an anchored domain would have to publish routes before it
 * could receive mail from anchored senders at all.
 */
static int mx_fallback(struct resolve_ctx *rc, const struct relay_settings *s, const char *domain,
                       struct relay_hop *hops, size_t max, size_t *n, struct err *e)
{
	struct dns_resolver *res = discover_resolver(resolve_discover(rc));
	struct dns_answer a;
	uint16_t prefs[64];
	size_t i, k;
	int had_mx, encrypt = s->outbound_tls != NULL && strcmp(s->outbound_tls, "encrypt") == 0;
	uint16_t port = s->smtp_port > 0 && s->smtp_port <= 65535 ? (uint16_t)s->smtp_port : 25;

	memset(&a, 0, sizeof(a));
	if (dns_query(res, domain, LDNS_RR_TYPE_MX, &a, e) < 0)
		return -1;
	*n = 0;
	for (i = 0;
	     !a.nxdomain && !a.nodata && i < ldns_rr_list_rr_count(a.rrs) && *n < max && *n < 64;
	     i++) {
		ldns_rr *rr = ldns_rr_list_rr(a.rrs, i);
		ldns_rdf *pref = ldns_rr_rdf(rr, 0), *host = ldns_rr_rdf(rr, 1);
		char *name = host ? ldns_rdf2str(host) : NULL;
		struct relay_hop h;
		size_t len;

		if (name == NULL || pref == NULL) {
			free(name);
			continue;
		}
		len = strlen(name);
		if (len > 0 && name[len - 1] == '.')
			name[--len] = '\0';
		if (len == 0) { /* a null MX (RFC 7505): takes no mail */
			free(name);
			continue;
		}
		memset(&h, 0, sizeof(h));
		h.proto = RELAY_PROTO_SMTP;
		h.port = port;
		h.tls_required = encrypt;
		snprintf(h.host, sizeof(h.host), "%s", name);
		free(name);
		/* insertion by preference, ties kept in answer order */
		uint16_t p = ldns_rdf2native_int16(pref);
		for (k = *n; k > 0 && prefs[k - 1] > p; k--) {
			hops[k] = hops[k - 1];
			prefs[k] = prefs[k - 1];
		}
		hops[k] = h;
		prefs[k] = p;
		(*n)++;
	}
	had_mx = !a.nxdomain && !a.nodata && ldns_rr_list_rr_count(a.rrs) > 0;
	dns_answer_clear(&a);
	if (*n == 0 && had_mx)
		return err_set(e, ERR_NOTFOUND, "no_route", "%s takes no mail (null MX)", domain);
	if (*n == 0 && max > 0) {
		memset(&hops[0], 0, sizeof(hops[0]));
		hops[0].proto = RELAY_PROTO_SMTP;
		hops[0].port = port;
		hops[0].tls_required = encrypt;
		snprintf(hops[0].host, sizeof(hops[0].host), "%s", domain);
		*n = 1;
	}
	return 0;
}

/*
 * A user's own daemon (PROTOCOL.md §6.5) goes before the domain's servers: TLS required,
 * its key pinned (the pin names the leaf's key; its name is not checked), so a daemon
 * that is away or an impostor without the key costs one attempt and the mail goes on to
 * the next hop.  An endpoint whose address is loopback or private is skipped unless
 * direct_allow_private says otherwise: a stranger's registration must not point this
 * relay into its own network.
 */
static void direct_first(struct resolve_ctx *rc, struct ttlcache *addrs,
                         const struct relay_settings *s, const struct resolve_direct *d,
                         struct relay_hop *hops, size_t max, size_t *n)
{
	struct relay_hop h;
	struct err ignore = {0};

	if (max == 0 || d->expires <= time(NULL))
		return;
	memset(&h, 0, sizeof(h));
	h.proto = RELAY_PROTO_SMTP;
	h.port = d->port;
	h.tls_required = 1;
	snprintf(h.host, sizeof(h.host), "%s", d->host);
	snprintf(h.pin, sizeof(h.pin), "%s", d->pin);
	if (hop_address(rc, addrs, &h, &ignore) < 0 ||
	    (!s->direct_allow_private && ipaddr_is_private(h.host) != 0))
		return;
	if (*n == max)
		(*n)--;
	memmove(&hops[1], &hops[0], *n * sizeof(hops[0]));
	hops[0] = h;
	(*n)++;
}

/* The resolved targets as hops: pinned TLS for anchored servers, MX rules for legacy. */
static void targets_hops(const struct resolve_result *r, const struct relay_settings *s,
                         struct relay_hop *hops, size_t max, size_t *n)
{
	int encrypt = s->outbound_tls != NULL && strcmp(s->outbound_tls, "encrypt") == 0;
	uint16_t mx_port = s->smtp_port > 0 && s->smtp_port <= 65535 ? (uint16_t)s->smtp_port : 25;

	for (int i = 0; i < r->ntargets && *n < max; i++) {
		const struct resolve_target *tg = &r->targets[i];
		struct relay_hop *h = &hops[(*n)++];
		memset(h, 0, sizeof(*h));
		h->proto = RELAY_PROTO_SMTP;
		snprintf(h->host, sizeof(h->host), "%s", tg->host);
		if (r->legacy) {
			h->port = mx_port;
			h->tls_required = encrypt;
		} else {
			h->port = tg->port ? tg->port : 25;
			h->tls_required = 1;
			snprintf(h->pin, sizeof(h->pin), "%s", tg->pin);
			snprintf(h->tls_name, sizeof(h->tls_name), "%s", tg->host);
		}
	}
}

/* resolve_address failed: keep its error, or for no_route fall back to the MX hosts of
 * the last address's domain. */
static int resolve_failed(struct resolve_ctx *rc, const struct relay_settings *s, const char *rcpt,
                          const struct resolve_result *r, struct relay_hop *hops, size_t max,
                          size_t *n, char *final_rcpt, struct err *e)
{
	const char *last = r->nhops > 0 ? r->hops[r->nhops - 1].address : rcpt;
	const char *at = strrchr(last, '@');
	char where[RELAY_ADDR_MAX];

	if (strcmp(e->code, "bad_name") == 0) /* name_check_address on rcpt itself */
		snprintf(e->code, sizeof(e->code), "bad_address");
	if (strcmp(e->code, "no_route") != 0 || at == NULL)
		return route_error(e);
	snprintf(where, sizeof(where), "%s", last);
	if (mx_fallback(rc, s, strrchr(where, '@') + 1, hops, max, n, e) < 0)
		return route_error(e);
	if (final_rcpt != NULL)
		snprintf(final_rcpt, RELAY_ADDR_MAX, "%s", where);
	return 0;
}

int relay_route(struct resolve_ctx *rc, struct ttlcache *addrs, const struct relay_settings *s,
                const char *rcpt, struct relay_hop *hops, size_t max, size_t *n, char *final_rcpt,
                struct err *e)
{
	struct resolve_result *r;
	struct resolve_direct direct = {0};
	int has_direct = 0;

	*n = 0;
	if (rcpt == NULL || strchr(rcpt, '@') == NULL)
		return err_set(e, ERR_UNPROC, "bad_address", "the recipient '%.200s' has no domain",
		               rcpt ? rcpt : "");
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return err_set(e, ERR_TEMP, "internal", "out of memory");
	if (resolve_address(rc, rcpt, r, e) < 0) {
		int rv = resolve_failed(rc, s, rcpt, r, hops, max, n, final_rcpt, e);
		free(r);
		if (rv < 0)
			return -1;
		return hops_addresses(rc, addrs, rcpt, hops, n, e);
	}
	has_direct = r->has_direct;
	direct = r->direct;
	targets_hops(r, s, hops, max, n);
	if (final_rcpt != NULL)
		snprintf(final_rcpt, RELAY_ADDR_MAX, "%s",
		         r->final_address[0] ? r->final_address : rcpt);
	/* a direct endpoint without a route: the domain's MX hosts after it */
	if (r->ntargets == 0 && has_direct && r->final_address[0] != '\0' &&
	    mx_fallback(rc, s, strrchr(r->final_address, '@') + 1, hops, max, n, e) < 0) {
		free(r);
		return route_error(e);
	}
	free(r);
	if (hops_addresses(rc, addrs, rcpt, hops, n, e) < 0)
		return -1;
	if (has_direct)
		direct_first(rc, addrs, s, &direct, hops, max, n);
	return 0;
}

/* ------------------------------------------------------------------ next hop */

static int hop_bad(struct err *e, const char *text, const char *why)
{
	return err_set(e, ERR_INPUT, "bad_next_hop", "next hop '%.200s': %s", text, why);
}

/* A host name or an IP literal: letters, digits, '-', '.', ':' (IPv6) and '_'. */
static int host_ok(const char *h, size_t len)
{
	if (len == 0 || len >= sizeof(((struct relay_hop *)0)->host))
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = h[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == ':' || c == '_'))
			return 0;
	}
	return 1;
}

static int port_parse(const char *p, uint16_t *out)
{
	unsigned long v = 0;

	if (*p == '\0' || strlen(p) > 5)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* "HOST[:PORT]" or "[V6][:PORT]" into out->host / out->port. */
static int hostport_parse(const char *text, const char *hp, struct relay_hop *out, struct err *e)
{
	const char *host = hp, *colon, *port = NULL;
	size_t hlen;

	if (*hp == '[') {
		const char *close = strchr(hp, ']');
		if (close == NULL)
			return hop_bad(e, text, "unclosed '['");
		host = hp + 1;
		hlen = (size_t)(close - host);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return hop_bad(e, text, "junk after ']'");
		if (memchr(host, ':', hlen) == NULL)
			return hop_bad(e, text, "brackets are for IPv6 addresses");
	} else {
		colon = strchr(hp, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return hop_bad(e, text, "an IPv6 address must be in brackets");
		hlen = colon ? (size_t)(colon - hp) : strlen(hp);
		if (colon != NULL)
			port = colon + 1;
	}
	if (!host_ok(host, hlen))
		return hop_bad(e, text, "bad host");
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	if (port != NULL) {
		if (port_parse(port, &out->port) < 0)
			return hop_bad(e, text, "bad port");
	} else if (out->proto == RELAY_PROTO_LMTP) {
		return hop_bad(e, text, "LMTP over TCP needs a port");
	} else {
		out->port = 25;
	}
	return 0;
}

int relay_hop_parse(const char *text, struct relay_hop *out, struct err *e)
{
	const char *p = text;
	int explicit_proto = 1;

	memset(out, 0, sizeof(*out));
	if (text == NULL || *text == '\0')
		return hop_bad(e, "", "empty");
	if (strncmp(p, "lmtp:", 5) == 0) {
		out->proto = RELAY_PROTO_LMTP;
		p += 5;
	} else if (strncmp(p, "smtp:", 5) == 0) {
		out->proto = RELAY_PROTO_SMTP;
		p += 5;
	} else {
		explicit_proto = 0;
	}
	if (strncmp(p, "unix:", 5) == 0) {
		p += 5;
		if (!explicit_proto)
			out->proto =
			    RELAY_PROTO_LMTP; /* what listens on a socket is a local LMTP */
		if (*p != '/')
			return hop_bad(e, text, "a socket path must be absolute");
		if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) /* < host's size */
			return hop_bad(e, text, "socket path too long");
		for (const char *c = p; *c; c++)
			if ((unsigned char)*c < 0x21 || (unsigned char)*c == 0x7f)
				return hop_bad(e, text, "bad character in the socket path");
		snprintf(out->host, sizeof(out->host), "%s", p);
		out->unix_socket = 1;
		return 0;
	}
	return hostport_parse(text, p, out, e);
}
