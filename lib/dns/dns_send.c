/*
 * dns_send.c - one query to the configured server over ldns: the resolver's
 * transport, shared by dns_resolve.c (the answers asked for) and
 * dns_dnssec.c (the DS and DNSKEY sets the validation fetches).  In a file
 * of its own so that neither of those two depends on the other for it.
 */
#include "dns/dns_send.h"

#include "dns/dns_resolver_priv.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* An ldns resolver for one attempt: wait ms for the answer, over TCP when vc. */
static ldns_resolver *make_ldns(struct dns_resolver *r, int ms, int vc, struct err *e)
{
	ldns_resolver *res = NULL;
	ldns_rdf *ns;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	if (r->use_system) {
		if (ldns_resolver_new_frm_file(&res, NULL) != LDNS_STATUS_OK) {
			err_set(e, ERR_TEMP, "dns_config", "no nameserver in /etc/resolv.conf");
			return NULL;
		}
	} else {
		res = ldns_resolver_new();
		ns = ldns_rdf_new_frm_str(
		    strchr(r->addr, ':') ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, r->addr);
		if (res == NULL || ns == NULL ||
		    ldns_resolver_push_nameserver(res, ns) != LDNS_STATUS_OK) {
			ldns_rdf_deep_free(ns);
			ldns_resolver_deep_free(res);
			err_set(e, ERR_INTERNAL, "internal", "cannot set up the resolver");
			return NULL;
		}
		ldns_rdf_deep_free(ns);
		ldns_resolver_set_port(res, r->port);
	}
	ldns_resolver_set_timeout(res, tv);
	ldns_resolver_set_retry(res, 1);
	ldns_resolver_set_retrans(res, 1);
	ldns_resolver_set_recursive(res, true);
	ldns_resolver_set_fallback(res, true); /* TC -> TCP */
	ldns_resolver_set_usevc(res, vc != 0);
	ldns_resolver_set_edns_udp_size(res, 4096);
	if (r->anchors != NULL) {
		ldns_resolver_set_dnssec(res, true);
		ldns_resolver_set_dnssec_cd(res, true); /* we validate ourselves */
	}
	return res;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * One query within timeout_ms: over UDP, again over UDP when no answer came, then
 * over TCP.  A datagram is lost now and then, and an authoritative server's
 * response rate limiting (RRL: NSD answers 200 a second to one client prefix by
 * default, then drops or truncates) loses the answers of a burst of first queries
 * after a start: sent once, each of those was a message deferred for a minute.  TCP
 * is not rate-limited that way.  Each attempt has a fresh socket and ID, so a late
 * answer to an earlier one is never taken for the next's.
 */
int dns_send_query(struct dns_resolver *r, const ldns_rdf *name, ldns_rr_type type, ldns_pkt **pkt,
                   struct err *e)
{
	/* share of the budget: UDP, UDP, then TCP with whatever is left */
	static const int share[DNS_SEND_ATTEMPTS] = {4, 4, 1};
	long long deadline = now_ms() + r->timeout_ms;
	ldns_status st = LDNS_STATUS_NETWORK_ERR, got;
	char *n;

	atomic_fetch_add(&r->queries, 1);
	*pkt = NULL;
	for (int i = 0; i < DNS_SEND_ATTEMPTS; i++) {
		long long left = deadline - now_ms();
		int ms = (int)(left / share[i]);
		ldns_resolver *res;

		if (left < DNS_SEND_MIN_MS)
			break;
		res = make_ldns(r, ms < DNS_SEND_MIN_MS ? DNS_SEND_MIN_MS : ms,
		                i == DNS_SEND_ATTEMPTS - 1, e);
		if (res == NULL)
			return -1;
		if (i > 0)
			atomic_fetch_add(&r->retries, 1);
		got = ldns_resolver_send(pkt, res, name, type, LDNS_RR_CLASS_IN,
		                         LDNS_RD | (r->anchors ? LDNS_CD : 0));
		ldns_resolver_deep_free(res);
		if (got == LDNS_STATUS_OK && *pkt != NULL)
			return 0;
		ldns_pkt_free(*pkt);
		*pkt = NULL;
		if (i == DNS_SEND_ATTEMPTS - 1)
			break; /* a server silent over UDP that refuses TCP: still no answer */
		st = got;
		if (st != LDNS_STATUS_NETWORK_ERR && st != LDNS_STATUS_OK)
			break; /* not a lost answer: asking again would not help */
	}
	n = ldns_rdf2str(name);
	if (st == LDNS_STATUS_NETWORK_ERR || st == LDNS_STATUS_OK)
		err_set(e, ERR_TEMP, "dns_timeout", "no answer for %s from %s within %d ms",
		        n ? n : "?", r->use_system ? "the system resolver" : r->addr,
		        r->timeout_ms);
	else
		err_set(e, ERR_TEMP, "dns_error", "query for %s failed: %s", n ? n : "?",
		        ldns_get_errorstr_by_id(st));
	free(n);
	return -1;
}
