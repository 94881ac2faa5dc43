/*
 * netdns.c - a reporter's networks, from its DNS (docs/operator-reputation.md §4).
 *
 * The network of a reporter used to be the source address of its latest report, which
 * the reporter chooses.  Now it is what the reporter's own DNS names: the addresses of
 * its mail servers (MX) and of its key server (the targets of _anchor._tcp SRV), each
 * reduced to its network (network_prefix4/6: /24 and /48 by default).  They are
 * resolved through the service's resolver (DNSSEC-validated when a trust anchor is
 * configured: a bogus answer counts for nothing) and kept for the answers' smallest TTL,
 * at most network_ttl.  A reporter whose DNS cannot be resolved has no network: it
 * counts toward min_reporters but toward no min_networks.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "store.h"

#define NET_HOSTS 8     /* MX hosts and key server targets looked at */
#define NET_CACHE 512   /* reporters whose networks are kept */
#define NET_TTL_FAIL 30 /* a failed lookup is asked again this soon */

struct net_entry {
	char domain[256];
	char nets[REP_NETS_MAX];
	time_t expires;
};

struct rep_netcache {
	pthread_mutex_t lock;
	struct net_entry v[NET_CACHE];
};

struct rep_netcache *rep_netcache_new(void)
{
	struct rep_netcache *c = calloc(1, sizeof(*c));

	if (c != NULL)
		pthread_mutex_init(&c->lock, NULL);
	return c;
}

void rep_netcache_free(struct rep_netcache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* What one lookup gathers: hosts to resolve, networks found, the smallest TTL. */
struct gather {
	char hosts[NET_HOSTS][DNS_NAME_MAX];
	int nhosts;
	char nets[REP_NETS_PER][REP_NET_LEN];
	int nnets;
	uint32_t ttl;
	int failed;
};

static int ask(struct rep *rep, const char *name, ldns_rr_type type, struct dns_answer *a,
               struct gather *g)
{
	struct err e = {0};

	if (dns_query(discover_resolver(rep->disc), name, type, a, &e) < 0) {
		log_debug(NULL, "reporter networks: %s: %s", name, e.msg);
		g->failed = 1;
		return -1;
	}
	if (a->sec == DNS_SEC_BOGUS) {
		log_warn(NULL, "reporter networks: the answer for %s does not validate (%s)", name,
		         a->sec_why);
		dns_answer_clear(a);
		g->failed = 1;
		return -1;
	}
	if (a->ttl < g->ttl)
		g->ttl = a->ttl;
	return 0;
}

/* The host names in field `field` of every record of name/type (MX: 1, SRV: 3). */
static void hosts_of(struct rep *rep, const char *name, ldns_rr_type type, size_t field,
                     struct gather *g)
{
	struct dns_answer a;
	size_t n;

	if (ask(rep, name, type, &a, g) < 0)
		return;
	n = ldns_rr_list_rr_count(a.rrs);
	for (size_t i = 0; i < n && g->nhosts < NET_HOSTS; i++) {
		const ldns_rdf *rdf = ldns_rr_rdf(ldns_rr_list_rr(a.rrs, i), field);
		char *text = rdf != NULL ? ldns_rdf2str(rdf) : NULL;
		size_t len = text != NULL ? strlen(text) : 0;

		if (len > 1 && len < DNS_NAME_MAX) {
			if (text[len - 1] == '.')
				text[len - 1] = '\0';
			snprintf(g->hosts[g->nhosts++], DNS_NAME_MAX, "%s", text);
		}
		free(text);
	}
	dns_answer_clear(&a);
}

static void add_net(struct gather *g, const char *net)
{
	if (net[0] == '\0' || g->nnets == REP_NETS_PER)
		return;
	for (int i = 0; i < g->nnets; i++)
		if (strcmp(g->nets[i], net) == 0)
			return;
	snprintf(g->nets[g->nnets++], REP_NET_LEN, "%s", net);
}

static void nets_of_host(struct rep *rep, const char *host, ldns_rr_type type, struct gather *g)
{
	struct dns_answer a;
	size_t n;

	if (ask(rep, host, type, &a, g) < 0)
		return;
	n = ldns_rr_list_rr_count(a.rrs);
	for (size_t i = 0; i < n; i++) {
		const ldns_rdf *rdf = ldns_rr_rdf(ldns_rr_list_rr(a.rrs, i), 0);
		char *ip = rdf != NULL ? ldns_rdf2str(rdf) : NULL;
		char net[REP_NET_LEN];

		rep_network_of(ip, rep->p.prefix4, rep->p.prefix6, net, sizeof(net));
		add_net(g, net);
		free(ip);
	}
	dns_answer_clear(&a);
}

static int by_text(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/* Resolve domain's networks into out ("" when none), with how long they hold. */
static uint32_t resolve(struct rep *rep, const char *domain, char *out, size_t size)
{
	struct gather *g = calloc(1, sizeof(*g));
	char srv[DNS_NAME_MAX + 16];
	size_t len = 0;
	uint32_t ttl;

	out[0] = '\0';
	if (g == NULL)
		return NET_TTL_FAIL;
	g->ttl = (uint32_t)rep->cfg.network_ttl;
	hosts_of(rep, domain, LDNS_RR_TYPE_MX, 1, g);
	snprintf(srv, sizeof(srv), "_anchor._tcp.%s", domain);
	hosts_of(rep, srv, LDNS_RR_TYPE_SRV, 3, g);
	for (int i = 0; i < g->nhosts; i++) {
		nets_of_host(rep, g->hosts[i], LDNS_RR_TYPE_A, g);
		nets_of_host(rep, g->hosts[i], LDNS_RR_TYPE_AAAA, g);
	}
	qsort(g->nets, (size_t)g->nnets, REP_NET_LEN, by_text);
	for (int i = 0; i < g->nnets; i++)
		len += (size_t)snprintf(out + len, len < size ? size - len : 0, "%s%s",
		                        i ? " " : "", g->nets[i]);
	if (g->nnets == 0)
		log_info(NULL,
		         "reporter %s: no network resolves from its DNS (MX, key server): it "
		         "counts toward no min_networks",
		         domain);
	ttl = g->failed && g->ttl > NET_TTL_FAIL ? NET_TTL_FAIL : g->ttl;
	free(g);
	return ttl < 5 ? 5 : ttl;
}

void rep_reporter_networks(struct rep *rep, const char *domain, char out[REP_NETS_MAX])
{
	struct rep_netcache *c = rep->nets;
	time_t now = time(NULL);
	struct net_entry *slot = NULL;
	uint32_t ttl;

	if (c != NULL) {
		pthread_mutex_lock(&c->lock);
		for (int i = 0; i < NET_CACHE; i++) {
			struct net_entry *en = &c->v[i];

			if (strcmp(en->domain, domain) == 0 && en->expires > now) {
				snprintf(out, REP_NETS_MAX, "%s", en->nets);
				pthread_mutex_unlock(&c->lock);
				return;
			}
		}
		pthread_mutex_unlock(&c->lock);
	}
	ttl = resolve(rep, domain, out, REP_NETS_MAX);
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < NET_CACHE && slot == NULL; i++) /* this domain's old entry */
		if (strcmp(c->v[i].domain, domain) == 0)
			slot = &c->v[i];
	if (slot == NULL) { /* else the stalest */
		slot = &c->v[0];
		for (int i = 1; i < NET_CACHE; i++)
			if (c->v[i].expires < slot->expires)
				slot = &c->v[i];
	}
	snprintf(slot->domain, sizeof(slot->domain), "%s", domain);
	snprintf(slot->nets, sizeof(slot->nets), "%s", out);
	slot->expires = now + (time_t)ttl;
	pthread_mutex_unlock(&c->lock);
}
