/*
 * dns_dnssec.c - the chain of trust from a configured trust anchor (the
 * root's, or a zone's): DNSKEY sets validated down the DS records of each
 * delegation, RRset signatures verified under them (ldns_verify_time), with a
 * small cache of validated DNSKEY sets and of proven insecure delegations;
 * see the validation model at the top of dns_resolve.c and PROTOCOL.md §8.3.
 * The verdict on an answer (secure, insecure, bogus) is dns_verdict.c's.
 */
#include "dns/dns.h"
#include "dns/dns_resolver_priv.h"
#include "dns/dns_send.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int name_at_or_below(const ldns_rdf *name, const ldns_rdf *zone)
{
	return ldns_dname_compare(name, zone) == 0 || ldns_dname_is_subdomain(name, zone);
}

const ldns_rdf *dns_anchor_zone(const struct dns_resolver *r, const ldns_rdf *name)
{
	const ldns_rdf *best = NULL;
	size_t i;

	for (i = 0; i < ldns_rr_list_rr_count(r->anchors); i++) {
		const ldns_rdf *z = ldns_rr_owner(ldns_rr_list_rr(r->anchors, i));

		if (name_at_or_below(name, z) &&
		    (best == NULL || ldns_dname_label_count(z) > ldns_dname_label_count(best)))
			best = z;
	}
	return best;
}

static int is_anchor_zone(const struct dns_resolver *r, const ldns_rdf *zone)
{
	size_t i;

	for (i = 0; i < ldns_rr_list_rr_count(r->anchors); i++)
		if (ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(r->anchors, i)), zone) == 0)
			return 1;
	return 0;
}

static int same_rdata(const ldns_rr *a, const ldns_rr *b)
{
	size_t i;

	if (ldns_rr_rd_count(a) != ldns_rr_rd_count(b))
		return 0;
	for (i = 0; i < ldns_rr_rd_count(a); i++)
		if (ldns_rdf_compare(ldns_rr_rdf(a, i), ldns_rr_rdf(b, i)) != 0)
			return 0;
	return 1;
}

/* Keys of dnskeys that some record of refs (DS or DNSKEY owned by zone) vouches for. */
static ldns_rr_list *vouched_keys(const ldns_rr_list *dnskeys, const ldns_rr_list *refs,
                                  const ldns_rdf *zone)
{
	ldns_rr_list *out = ldns_rr_list_new();
	size_t i, j;

	for (i = 0; i < ldns_rr_list_rr_count(dnskeys); i++) {
		ldns_rr *k = ldns_rr_list_rr(dnskeys, i);

		for (j = 0; j < ldns_rr_list_rr_count(refs); j++) {
			ldns_rr *a = ldns_rr_list_rr(refs, j);

			if (ldns_dname_compare(ldns_rr_owner(a), zone) != 0)
				continue;
			if ((ldns_rr_get_type(a) == LDNS_RR_TYPE_DNSKEY && same_rdata(a, k)) ||
			    (ldns_rr_get_type(a) == LDNS_RR_TYPE_DS && ldns_rr_compare_ds(a, k))) {
				ldns_rr_list_push_rr(out, k); /* borrowed */
				break;
			}
		}
	}
	return out;
}

void dns_rrset_from(const ldns_rr_list *section, const ldns_rdf *owner, ldns_rr_type type,
                    ldns_rr_list *set, ldns_rr_list *sigs)
{
	size_t i;

	for (i = 0; section && i < ldns_rr_list_rr_count(section); i++) {
		ldns_rr *rr = ldns_rr_list_rr(section, i);

		if (ldns_dname_compare(ldns_rr_owner(rr), owner) != 0)
			continue;
		if (ldns_rr_get_type(rr) == type)
			ldns_rr_list_push_rr(set, ldns_rr_clone(rr));
		else if (sigs && ldns_rr_get_type(rr) == LDNS_RR_TYPE_RRSIG &&
		         ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(rr)) == type)
			ldns_rr_list_push_rr(sigs, ldns_rr_clone(rr));
	}
}

void dns_set_why(char *why, size_t size, const ldns_rdf *name, const char *fmt, ...)
{
	char *n = name ? ldns_rdf2str(name) : NULL;
	size_t used;
	va_list ap;

	snprintf(why, size, "%s: ", n ? n : "?");
	free(n);
	used = strlen(why);
	va_start(ap, fmt);
	vsnprintf(why + used, size - used, fmt, ap);
	va_end(ap);
}

int dns_verify_rrset(struct dns_resolver *r, ldns_rr_list *set, ldns_rr_list *sigs, int depth,
                     char *why, size_t wsize)
{
	const ldns_rdf *owner = ldns_rr_owner(ldns_rr_list_rr(set, 0));
	ldns_rr_list *keys = NULL;
	ldns_rdf *signer;
	ldns_status st;

	if (ldns_rr_list_rr_count(sigs) == 0) {
		dns_set_why(why, wsize, owner, "no RRSIG although a trust anchor covers it");
		return -1;
	}
	signer = ldns_rr_rrsig_signame(ldns_rr_list_rr(sigs, 0));
	if (signer == NULL || !name_at_or_below(owner, signer)) {
		dns_set_why(why, wsize, owner, "RRSIG signer is not an ancestor of the owner");
		return -1;
	}
	if (dns_trusted_keys(r, signer, depth, &keys, why, wsize) < 0)
		return -1;
	st = ldns_verify_time(set, sigs, keys, time(NULL), NULL);
	ldns_rr_list_deep_free(keys);
	if (st != LDNS_STATUS_OK) {
		dns_set_why(why, wsize, owner, "signature does not verify (%s)",
		            ldns_get_errorstr_by_id(st));
		return -1;
	}
	return 0;
}

int dns_keycache_get(struct dns_resolver *r, const ldns_rdf *zone, ldns_rr_list **keys)
{
	time_t now = time(NULL);
	int i, hit = 0;

	*keys = NULL;
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->ncache; i++)
		if (ldns_dname_compare(r->cache[i].zone, zone) == 0 && r->cache[i].expires > now) {
			if (r->cache[i].keys != NULL)
				*keys = ldns_rr_list_clone(r->cache[i].keys);
			hit = r->cache[i].keys != NULL ? 1 : 2;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	return hit;
}

void dns_keycache_put(struct dns_resolver *r, const ldns_rdf *zone, const ldns_rr_list *keys,
                      uint32_t ttl)
{
	struct keycache_entry *slot = NULL;
	int i;

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->ncache && slot == NULL; i++)
		if (ldns_dname_compare(r->cache[i].zone, zone) == 0)
			slot = &r->cache[i];
	if (slot == NULL)
		slot = r->ncache < KEYCACHE_MAX ? &r->cache[r->ncache++] : &r->cache[0];
	ldns_rdf_deep_free(slot->zone);
	ldns_rr_list_deep_free(slot->keys);
	slot->zone = ldns_rdf_clone(zone);
	slot->keys = keys ? ldns_rr_list_clone(keys) : NULL;
	slot->expires = time(NULL) + (ttl < KEYCACHE_TTL_MAX ? ttl : KEYCACHE_TTL_MAX);
	pthread_mutex_unlock(&r->lock);
}

/* The DS RRset of a delegated zone, validated under its parent's keys. */
static ldns_rr_list *validated_ds(struct dns_resolver *r, const ldns_rdf *zone, int depth,
                                  char *why, size_t wsize)
{
	ldns_rr_list *ds = ldns_rr_list_new(), *sigs = ldns_rr_list_new();
	ldns_pkt *pkt = NULL;
	struct err e;

	if (dns_send_query(r, zone, LDNS_RR_TYPE_DS, &pkt, &e) < 0) {
		dns_set_why(why, wsize, zone, "DS query failed: %s", e.msg);
		goto fail;
	}
	dns_rrset_from(ldns_pkt_answer(pkt), zone, LDNS_RR_TYPE_DS, ds, sigs);
	if (ldns_rr_list_rr_count(ds) == 0) {
		dns_set_why(why, wsize, zone,
		            "signed, but its parent gives no DS for it (unless the parent proves "
		            "the delegation insecure, a broken chain)");
		goto fail;
	}
	if (ldns_rr_list_rr_count(sigs) > 0 &&
	    ldns_dname_compare(ldns_rr_rrsig_signame(ldns_rr_list_rr(sigs, 0)), zone) == 0) {
		/* A DS is the parent's word; the child signing its own would vouch for itself. */
		dns_set_why(why, wsize, zone,
		            "its DS is signed by the zone itself, not its parent");
		goto fail;
	}
	if (dns_verify_rrset(r, ds, sigs, depth + 1, why, wsize) < 0)
		goto fail;
	ldns_rr_list_deep_free(sigs);
	ldns_pkt_free(pkt);
	return ds;
fail:
	ldns_rr_list_deep_free(ds);
	ldns_rr_list_deep_free(sigs);
	ldns_pkt_free(pkt);
	return NULL;
}

/* The DNSKEY RRset of zone from the network, validated from an anchor or a DS chain. */
static int chain_keys(struct dns_resolver *r, const ldns_rdf *zone, int depth, ldns_rr_list **keys,
                      char *why, size_t wsize)
{
	ldns_rr_list *set = ldns_rr_list_new(), *sigs = ldns_rr_list_new(), *refs = NULL,
	             *entry = NULL;
	ldns_pkt *pkt = NULL;
	ldns_status st = LDNS_STATUS_ERR;
	struct err e;
	uint32_t ttl = KEYCACHE_TTL_MAX;
	size_t i;

	if (depth > CHAIN_DEPTH_MAX) {
		dns_set_why(why, wsize, zone, "chain of trust too long");
		goto fail;
	}
	if (!is_anchor_zone(r, zone)) {
		const ldns_rdf *a = dns_anchor_zone(r, zone);

		if (a == NULL) {
			dns_set_why(why, wsize, zone, "no trust anchor above this signer");
			goto fail;
		}
		refs = validated_ds(r, zone, depth, why, wsize);
		if (refs == NULL)
			goto fail;
	}
	if (dns_send_query(r, zone, LDNS_RR_TYPE_DNSKEY, &pkt, &e) < 0) {
		dns_set_why(why, wsize, zone, "DNSKEY query failed: %s", e.msg);
		goto fail;
	}
	dns_rrset_from(ldns_pkt_answer(pkt), zone, LDNS_RR_TYPE_DNSKEY, set, sigs);
	if (ldns_rr_list_rr_count(set) == 0) {
		dns_set_why(why, wsize, zone,
		            "no DNSKEY records although a trust anchor or DS names "
		            "the zone");
		goto fail;
	}
	entry = vouched_keys(set, refs ? refs : r->anchors, zone);
	if (ldns_rr_list_rr_count(entry) == 0) {
		dns_set_why(why, wsize, zone, "no DNSKEY matches the trust anchor%s",
		            refs ? " (DS)" : "");
		goto fail;
	}
	st = ldns_verify_time(set, sigs, entry, time(NULL), NULL);
	if (st != LDNS_STATUS_OK) {
		dns_set_why(why, wsize, zone,
		            "the DNSKEY set does not verify with the anchored key (%s)",
		            ldns_get_errorstr_by_id(st));
		goto fail;
	}
	for (i = 0; i < ldns_rr_list_rr_count(set); i++)
		if (ldns_rr_ttl(ldns_rr_list_rr(set, i)) < ttl)
			ttl = ldns_rr_ttl(ldns_rr_list_rr(set, i));
	dns_keycache_put(r, zone, set, ttl);
	*keys = set;
	set = NULL;
	ldns_rr_list_free(entry);
	ldns_rr_list_deep_free(refs);
	ldns_rr_list_deep_free(sigs);
	ldns_pkt_free(pkt);
	return 0;
fail:
	ldns_rr_list_free(entry);
	ldns_rr_list_deep_free(refs);
	ldns_rr_list_deep_free(set);
	ldns_rr_list_deep_free(sigs);
	ldns_pkt_free(pkt);
	return -1;
}

int dns_trusted_keys(struct dns_resolver *r, const ldns_rdf *zone, int depth, ldns_rr_list **keys,
                     char *why, size_t wsize)
{
	switch (dns_keycache_get(r, zone, keys)) {
	case 1:
		return 0;
	case 2:
		dns_set_why(why, wsize, zone, "an insecure delegation: no DS at its parent");
		return -1;
	default:
		return chain_keys(r, zone, depth, keys, why, wsize);
	}
}
