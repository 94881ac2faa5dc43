/*
 * dns_verdict.c - the DNSSEC verdict on an answer: every RRset of a positive
 * answer verified from the trust anchor; the NSEC/NSEC3 denial of a negative
 * one (NXDOMAIN, NODATA); and, where either fails, the walk from the anchor
 * down to the name that looks for an insecure delegation (a signed "no DS
 * here"), which makes what lies below it insecure rather than bogus (RFC 4035
 * §5.2, RFC 5155 §8.6 with opt-out).  See the validation model in
 * dns_resolve.c.
 *
 * dns_query() (dns_resolve.c) asks for the answer with CD set and calls
 * dns_validate_answer() or dns_validate_denial() on it: the resolver it asks
 * is not trusted to validate, only the keys that chain to the anchor are.
 *
 * The proofs themselves are ldns's (ldns_dnssec_verify_denial,
 * ldns_dnssec_verify_denial_nsec3_match); the signatures are checked with
 * dns_verify_rrset (ldns_verify_time under keys chained to the anchor).  Two
 * things are written here: the walk, because ldns's own chain functions
 * (ldns_fetch_valid_domain_keys and friends) query through an ldns_resolver
 * of their own, never prove an insecure delegation, and would bypass the
 * transport (retries, TCP) and the key cache of dns_send.c/dns_dnssec.c;
 * and the NSEC3 exact match (hash the name, compare, read the bitmap) and
 * closest-encloser pre-check, because ldns 1.8.3's
 * ldns_dnssec_verify_denial_nsec3_match leaks the hashed name on exactly
 * those paths.
 */
#include "dns/dns.h"
#include "dns/dns_resolver_priv.h"
#include "dns/dns_send.h"

#include <stdio.h>
#include <string.h>

#define NSEC3_ITERATIONS_MAX 150 /* as unbound and BIND (RFC 9276 §3.2) */

/*
 * An NSEC3 ldns can hash with: SHA-1 and a next hashed owner of SHA-1's 20
 * octets (ldns asserts on a name it cannot hash or build), an owner below the
 * root, five rdata fields at least (the type bitmap of an empty non-terminal
 * may be absent), and the hash parameters of the
 * first NSEC3 of the answer (ldns hashes every name with those).
 */
static int nsec3_usable(const ldns_rr *rr, const ldns_rr *first)
{
	const ldns_rdf *salt = ldns_rr_rdf(rr, 3);

	if (ldns_rr_rd_count(rr) < 5 || ldns_nsec3_algorithm(rr) != LDNS_SHA1 ||
	    ldns_rr_rdf(rr, 4) == NULL || ldns_rdf_size(ldns_rr_rdf(rr, 4)) != 1U + 20U ||
	    ldns_dname_label_count(ldns_rr_owner(rr)) < 1 || salt == NULL ||
	    ldns_rdf_size(salt) < 1U + ldns_nsec3_salt_length(rr))
		return 0;
	return first == NULL || (ldns_nsec3_iterations(rr) == ldns_nsec3_iterations(first) &&
	                         ldns_rdf_compare(salt, ldns_rr_rdf(first, 3)) == 0);
}

/*
 * The NSEC or NSEC3 records of pkt's authority section into nsecs, every RRSIG
 * there into sigs.  Returns the NSEC type, 0 when there is none, -1 (why says)
 * for NSEC mixed with NSEC3 or an NSEC3 too costly to hash.
 */
static int collect_nsecs(const ldns_pkt *pkt, ldns_rr_list *nsecs, ldns_rr_list *sigs, char *why,
                         size_t wsize)
{
	ldns_rr_list *auth = ldns_pkt_authority(pkt);
	int type = 0;
	size_t i;

	for (i = 0; auth && i < ldns_rr_list_rr_count(auth); i++) {
		ldns_rr *rr = ldns_rr_list_rr(auth, i);
		int t = (int)ldns_rr_get_type(rr);

		if (t == LDNS_RR_TYPE_RRSIG) {
			ldns_rr_list_push_rr(sigs, ldns_rr_clone(rr));
			continue;
		}
		if (t != LDNS_RR_TYPE_NSEC && t != LDNS_RR_TYPE_NSEC3)
			continue;
		if (type != 0 && t != type) {
			dns_set_why(why, wsize, ldns_rr_owner(rr),
			            "NSEC and NSEC3 mixed in one answer");
			return -1;
		}
		if (t == LDNS_RR_TYPE_NSEC3 && !nsec3_usable(rr, ldns_rr_list_rr(nsecs, 0))) {
			dns_set_why(why, wsize, ldns_rr_owner(rr),
			            "an NSEC3 record with an unknown hash, a bad form or "
			            "parameters unlike its zone's");
			return -1;
		}
		if (t == LDNS_RR_TYPE_NSEC3 && ldns_nsec3_iterations(rr) > NSEC3_ITERATIONS_MAX) {
			/* Each hash costs that many SHA-1 rounds per name: a zone must not make
			 * the validator work for it (RFC 9276 §3.2). */
			dns_set_why(why, wsize, ldns_rr_owner(rr),
			            "NSEC3 with %u iterations, above %d",
			            (unsigned)ldns_nsec3_iterations(rr), NSEC3_ITERATIONS_MAX);
			return -1;
		}
		type = t;
		ldns_rr_list_push_rr(nsecs, ldns_rr_clone(rr));
	}
	return type;
}

/*
 * collect_nsecs, each NSEC RRset then verified from the anchor and, when signer
 * is not NULL, signed by that zone.  Returns the NSEC type, 0 when there is
 * none, -1 when one does not verify (why says).
 */
static int signed_nsecs(struct dns_resolver *r, const ldns_pkt *pkt, const ldns_rdf *signer,
                        ldns_rr_list *nsecs, ldns_rr_list *sigs, char *why, size_t wsize)
{
	int type = collect_nsecs(pkt, nsecs, sigs, why, wsize);
	size_t i;

	for (i = 0; type > 0 && i < ldns_rr_list_rr_count(nsecs); i++) {
		const ldns_rdf *owner = ldns_rr_owner(ldns_rr_list_rr(nsecs, i));
		ldns_rr_list *set = ldns_rr_list_new(), *s = ldns_rr_list_new();
		int rc;

		dns_rrset_from(ldns_pkt_authority(pkt), owner, (ldns_rr_type)type, set, s);
		rc = dns_verify_rrset(r, set, s, 0, why, wsize);
		if (rc == 0 && signer != NULL &&
		    ldns_dname_compare(ldns_rr_rrsig_signame(ldns_rr_list_rr(s, 0)), signer) != 0) {
			dns_set_why(why, wsize, owner,
			            "the proof is not signed by the parent zone");
			rc = -1;
		}
		ldns_rr_list_deep_free(set);
		ldns_rr_list_deep_free(s);
		if (rc < 0)
			return -1;
	}
	return type;
}

/* The NSEC3 of nsec3s whose owner is the hash of name, or NULL. */
static const ldns_rr *nsec3_exact(const ldns_rr_list *nsec3s, const ldns_rdf *name)
{
	const ldns_rr *first = ldns_rr_list_rr(nsec3s, 0), *hit = NULL;
	ldns_rdf *hashed = ldns_nsec3_hash_name_frm_nsec3(first, name);
	ldns_rdf *zone = ldns_dname_left_chop(ldns_rr_owner(first));
	size_t i;

	if (hashed != NULL && zone != NULL && ldns_dname_cat(hashed, zone) == LDNS_STATUS_OK)
		for (i = 0; i < ldns_rr_list_rr_count(nsec3s) && hit == NULL; i++)
			if (ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(nsec3s, i)), hashed) ==
			    0)
				hit = ldns_rr_list_rr(nsec3s, i);
	ldns_rdf_deep_free(hashed);
	ldns_rdf_deep_free(zone);
	return hit;
}

static int has_type(const ldns_rr *nsec, ldns_rr_type t)
{
	const ldns_rdf *bm = ldns_rr_get_type(nsec) == LDNS_RR_TYPE_NSEC3
	                         ? ldns_nsec3_bitmap(nsec)
	                         : ldns_nsec_get_bitmap(nsec);

	return bm != NULL && ldns_nsec_bitmap_covers_type(bm, t);
}

/*
 * An NXDOMAIN proved by NSEC3 whose next closer name is covered by an opt-out
 * record is insecure: an unsigned delegation may hide in that span (RFC 5155
 * §9.2), so the name's absence is not proven.  1 when so.
 */
static int nsec3_optout_span(const ldns_rr_list *nsec3s, const ldns_rdf *name)
{
	const ldns_rr *first = ldns_rr_list_rr(nsec3s, 0);
	ldns_rdf *ce = ldns_dnssec_nsec3_closest_encloser(name, LDNS_RR_TYPE_ANY, nsec3s);
	ldns_rdf *next = NULL, *hashed = NULL, *zone = ldns_dname_left_chop(ldns_rr_owner(first));
	int found = 0;
	size_t i;

	if (ce == NULL || zone == NULL ||
	    ldns_dname_label_count(name) <= ldns_dname_label_count(ce))
		goto out;
	next = ldns_dname_clone_from(name,
	                             ldns_dname_label_count(name) - ldns_dname_label_count(ce) - 1);
	hashed = next ? ldns_nsec3_hash_name_frm_nsec3(first, next) : NULL;
	if (hashed == NULL || ldns_dname_cat(hashed, zone) != LDNS_STATUS_OK)
		goto out;
	for (i = 0; i < ldns_rr_list_rr_count(nsec3s) && !found; i++)
		found = ldns_nsec3_optout(ldns_rr_list_rr(nsec3s, i)) &&
		        ldns_nsec_covers_name(ldns_rr_list_rr(nsec3s, i), hashed);
out:
	ldns_rdf_deep_free(ce);
	ldns_rdf_deep_free(next);
	ldns_rdf_deep_free(hashed);
	ldns_rdf_deep_free(zone);
	return found;
}

/* q (owner, type) denied by verified nsecs: LDNS_STATUS_OK when proven. */
static ldns_status denies(ldns_rr *q, ldns_rr_list *nsecs, ldns_rr_list *sigs, int type,
                          ldns_pkt_rcode rcode)
{
	const ldns_rr *exact;
	ldns_rdf *ce;

	if (type == LDNS_RR_TYPE_NSEC)
		return ldns_dnssec_verify_denial(q, nsecs, sigs);
	exact = rcode == LDNS_RCODE_NXDOMAIN ? NULL : nsec3_exact(nsecs, ldns_rr_owner(q));
	if (exact != NULL) /* RFC 5155 §8.5, §8.6: the name exists without the type */
		return has_type(exact, ldns_rr_get_type(q)) || has_type(exact, LDNS_RR_TYPE_CNAME)
		           ? LDNS_STATUS_DNSSEC_NSEC_RR_NOT_COVERED
		           : LDNS_STATUS_OK;
	/* Without a closest encloser there is no proof; ldns 1.8.3 leaks the hashed name
	 * when it finds that out itself for a DS question. */
	ce = ldns_dnssec_nsec3_closest_encloser(ldns_rr_owner(q), ldns_rr_get_type(q), nsecs);
	if (ce == NULL)
		return LDNS_STATUS_DNSSEC_NSEC_RR_NOT_COVERED;
	ldns_rdf_deep_free(ce);
	return ldns_dnssec_verify_denial_nsec3_match(q, nsecs, sigs, rcode, ldns_rr_get_type(q),
	                                             rcode != LDNS_RCODE_NXDOMAIN, NULL);
}

/* ------------------------------------------------------------------ the walk */

enum step { STEP_BOGUS = 0, STEP_SECURE, STEP_INSECURE, STEP_NOCUT };

/* What a verified negative DS answer says of child: a delegation without DS, opt-out, or
 * no zone cut at all. */
static enum step classify_cut(const ldns_rdf *child, ldns_rr_list *nsecs, ldns_rr_list *sigs,
                              int type, ldns_pkt_rcode rcode, char *why, size_t wsize)
{
	ldns_rr *q = ldns_rr_new_frm_type(LDNS_RR_TYPE_DS);
	const ldns_rr *exact = NULL;
	ldns_status st;
	size_t i;

	ldns_rr_set_owner(q, ldns_rdf_clone(child));
	for (i = 0; type == LDNS_RR_TYPE_NSEC && i < ldns_rr_list_rr_count(nsecs); i++)
		if (ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(nsecs, i)), child) == 0)
			exact = ldns_rr_list_rr(nsecs, i);
	if (type == LDNS_RR_TYPE_NSEC3 && rcode != LDNS_RCODE_NXDOMAIN)
		exact = nsec3_exact(nsecs, child);
	st = denies(q, nsecs, sigs, type, rcode);
	ldns_rr_free(q);
	if (st != LDNS_STATUS_OK) {
		dns_set_why(why, wsize, child,
		            "no DS was given and the parent's %s records do not prove there is "
		            "none (%s)",
		            type == LDNS_RR_TYPE_NSEC ? "NSEC" : "NSEC3",
		            ldns_get_errorstr_by_id(st));
		return STEP_BOGUS;
	}
	if (exact != NULL && has_type(exact, LDNS_RR_TYPE_NS) &&
	    !has_type(exact, LDNS_RR_TYPE_SOA)) {
		dns_set_why(why, wsize, child, "insecure delegation: signed %s proof of no DS",
		            type == LDNS_RR_TYPE_NSEC ? "NSEC" : "NSEC3");
		return STEP_INSECURE;
	}
	if (exact == NULL && type == LDNS_RR_TYPE_NSEC3 && rcode != LDNS_RCODE_NXDOMAIN) {
		dns_set_why(why, wsize, child,
		            "insecure delegation: covered by an NSEC3 opt-out span of its parent");
		return STEP_INSECURE;
	}
	return STEP_NOCUT;
}

/* One step of the walk: what zone (the deepest secure zone so far) says of child's DS. */
static enum step ds_step(struct dns_resolver *r, const ldns_rdf *zone, const ldns_rdf *child,
                         char *why, size_t wsize)
{
	ldns_rr_list *ds = ldns_rr_list_new(), *nsecs = ldns_rr_list_new(),
	             *sigs = ldns_rr_list_new(), *keys = NULL;
	ldns_pkt *pkt = NULL;
	enum step st = STEP_BOGUS;
	struct err e;
	int type;

	if (dns_send_query(r, child, LDNS_RR_TYPE_DS, &pkt, &e) < 0) {
		dns_set_why(why, wsize, child, "DS query failed: %s", e.msg);
		goto out;
	}
	dns_rrset_from(ldns_pkt_answer(pkt), child, LDNS_RR_TYPE_DS, ds, NULL);
	if (ldns_rr_list_rr_count(ds) > 0) {
		/* A DS: a signed zone, whose keys must then verify from it (a wrong DS: bogus). */
		if (dns_trusted_keys(r, child, 0, &keys, why, wsize) == 0)
			st = STEP_SECURE;
		goto out;
	}
	type = signed_nsecs(r, pkt, zone, nsecs, sigs, why, wsize);
	if (type == 0)
		dns_set_why(why, wsize, child,
		            "no DS and no NSEC/NSEC3 proof that there is none (rcode %d)",
		            (int)ldns_pkt_get_rcode(pkt));
	if (type > 0)
		st = classify_cut(child, nsecs, sigs, type, ldns_pkt_get_rcode(pkt), why, wsize);
out:
	ldns_rr_list_deep_free(keys);
	ldns_rr_list_deep_free(ds);
	ldns_rr_list_deep_free(nsecs);
	ldns_rr_list_deep_free(sigs);
	ldns_pkt_free(pkt);
	return st;
}

int dns_prove_insecure(struct dns_resolver *r, const ldns_rdf *name, char *why, size_t wsize)
{
	const ldns_rdf *anchor = dns_anchor_zone(r, name);
	ldns_rdf *zone = anchor ? ldns_rdf_clone(anchor) : NULL;
	size_t total = ldns_dname_label_count(name), k;
	enum step st = STEP_NOCUT;
	char step_why[200] = "";

	if (anchor == NULL)
		return 1;
	for (k = ldns_dname_label_count(anchor) + 1; k <= total && st != STEP_BOGUS; k++) {
		ldns_rdf *child = ldns_dname_clone_from(name, total - k);
		ldns_rr_list *keys = NULL;
		int cached = child ? dns_keycache_get(r, child, &keys) : 0;

		ldns_rr_list_deep_free(keys);
		if (child == NULL)
			break;
		st = cached == 1   ? STEP_SECURE
		     : cached == 2 ? STEP_INSECURE
		                   : ds_step(r, zone, child, step_why, sizeof(step_why));
		if (st == STEP_INSECURE) {
			if (cached == 2)
				dns_set_why(step_why, sizeof(step_why), child,
				            "insecure delegation");
			else
				dns_keycache_put(r, child, NULL, KEYCACHE_TTL_MAX);
			snprintf(why, wsize, "%s", step_why);
			ldns_rdf_deep_free(child);
			ldns_rdf_deep_free(zone);
			return 1;
		}
		if (st == STEP_SECURE) {
			ldns_rdf_deep_free(zone);
			zone = child;
		} else {
			ldns_rdf_deep_free(child);
		}
	}
	ldns_rdf_deep_free(zone);
	return 0;
}

/* ------------------------------------------------------------------ negative answers */

/* A negative answer's own proof: 0 proven, 1 insecure (opt-out NXDOMAIN), -1 not (why). */
static int denial_proof(struct dns_resolver *r, const ldns_pkt *pkt, const struct dns_answer *a,
                        const ldns_rdf *name, char *why, size_t wsize)
{
	ldns_rr_list *nsecs = ldns_rr_list_new(), *sigs = ldns_rr_list_new();
	ldns_rr *q = ldns_rr_new_frm_type(a->type);
	ldns_pkt_rcode rcode = ldns_pkt_get_rcode(pkt);
	int type = signed_nsecs(r, pkt, NULL, nsecs, sigs, why, wsize), rc = -1;
	ldns_status st;

	ldns_rr_set_owner(q, ldns_rdf_clone(name));
	if (type == 0)
		dns_set_why(why, wsize, name, "negative answer without NSEC/NSEC3 proof");
	if (type <= 0)
		goto out;
	st = denies(q, nsecs, sigs, type, rcode);
	if (st != LDNS_STATUS_OK) {
		dns_set_why(why, wsize, name, "the %s proof does not deny the name/type (%s)",
		            type == LDNS_RR_TYPE_NSEC ? "NSEC" : "NSEC3",
		            ldns_get_errorstr_by_id(st));
		goto out;
	}
	rc = 0;
	if (type == LDNS_RR_TYPE_NSEC3 && rcode == LDNS_RCODE_NXDOMAIN &&
	    nsec3_optout_span(nsecs, name)) {
		dns_set_why(why, wsize, name,
		            "NXDOMAIN under an NSEC3 opt-out span: an unsigned delegation may "
		            "exist there");
		rc = 1;
	}
out:
	ldns_rr_free(q);
	ldns_rr_list_deep_free(nsecs);
	ldns_rr_list_deep_free(sigs);
	return rc;
}

/* A negative answer under an anchor must come with signed NSEC/NSEC3 proof, unless the
 * name lies below a proven insecure delegation. */
enum dns_sec dns_validate_denial(struct dns_resolver *r, const ldns_pkt *pkt,
                                 const struct dns_answer *a, char *why, size_t wsize)
{
	ldns_rdf *name = ldns_dname_new_frm_str(a->final_name);
	enum dns_sec sec = DNS_SEC_BOGUS;
	char bogus[200] = "";
	int rc;

	if (name == NULL)
		return DNS_SEC_BOGUS;
	if (dns_anchor_zone(r, name) == NULL) {
		dns_set_why(why, wsize, name, "no trust anchor covers this name");
		ldns_rdf_deep_free(name);
		return DNS_SEC_INSECURE;
	}
	rc = denial_proof(r, pkt, a, name, bogus, sizeof(bogus));
	if (rc == 0)
		sec = DNS_SEC_SECURE;
	else if (rc == 1 || dns_prove_insecure(r, name, why, wsize) == 1)
		sec = DNS_SEC_INSECURE;
	if (sec != DNS_SEC_INSECURE || rc == 1)
		snprintf(why, wsize, "%s", bogus);
	ldns_rdf_deep_free(name);
	return sec;
}

int dns_denial_check(const ldns_pkt *pkt, char *why, size_t wsize)
{
	ldns_rr_list *nsecs = ldns_rr_list_new(), *sigs = ldns_rr_list_new();
	const ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
	ldns_pkt_rcode rcode = ldns_pkt_get_rcode(pkt);
	int type = collect_nsecs(pkt, nsecs, sigs, why, wsize), rc = -1;

	if (type > 0 && question != NULL) {
		ldns_rr *q = ldns_rr_new_frm_type(ldns_rr_get_type(question));
		const ldns_rdf *name = ldns_rr_owner(question);

		ldns_rr_set_owner(q, ldns_rdf_clone(name));
		rc = denies(q, nsecs, sigs, type, rcode) == LDNS_STATUS_OK ? 0 : -1;
		ldns_rr_free(q);
		if (classify_cut(name, nsecs, sigs, type, rcode, why, wsize) == STEP_INSECURE)
			rc = 1;
		if (type == LDNS_RR_TYPE_NSEC3 && rcode == LDNS_RCODE_NXDOMAIN &&
		    nsec3_optout_span(nsecs, name))
			rc = 1;
	}
	ldns_rr_list_deep_free(nsecs);
	ldns_rr_list_deep_free(sigs);
	return rc;
}

/* ------------------------------------------------------------------ positive answers */

/* One RRset of the answer: secure when it verifies from the anchor; when it does not,
 * insecure if a signed proof puts its owner below an insecure delegation, else bogus. */
static enum dns_sec rrset_sec(struct dns_resolver *r, const ldns_rr_list *ans, const ldns_rr *rr,
                              char *why, size_t wsize)
{
	ldns_rr_list *set = ldns_rr_list_new(), *sigs = ldns_rr_list_new();
	enum dns_sec sec = DNS_SEC_SECURE;
	char bogus[200];

	dns_rrset_from(ans, ldns_rr_owner(rr), ldns_rr_get_type(rr), set, sigs);
	if (dns_verify_rrset(r, set, sigs, 0, bogus, sizeof(bogus)) < 0) {
		sec = dns_prove_insecure(r, ldns_rr_owner(rr), why, wsize) == 1 ? DNS_SEC_INSECURE
		                                                                : DNS_SEC_BOGUS;
		if (sec == DNS_SEC_BOGUS)
			snprintf(why, wsize, "%s", bogus);
	}
	ldns_rr_list_deep_free(set);
	ldns_rr_list_deep_free(sigs);
	return sec;
}

/* Validate every RRset of the answer section. */
enum dns_sec dns_validate_answer(struct dns_resolver *r, const ldns_pkt *pkt, char *why,
                                 size_t wsize)
{
	ldns_rr_list *ans = ldns_pkt_answer(pkt);
	enum dns_sec sec = DNS_SEC_SECURE;
	size_t i, j;

	for (i = 0; i < ldns_rr_list_rr_count(ans); i++) {
		ldns_rr *rr = ldns_rr_list_rr(ans, i);
		int dup = 0;

		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_RRSIG)
			continue;
		for (j = 0; j < i && !dup; j++) /* each RRset once */
			dup = ldns_rr_get_type(ldns_rr_list_rr(ans, j)) == ldns_rr_get_type(rr) &&
			      ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(ans, j)),
			                         ldns_rr_owner(rr)) == 0;
		if (dup)
			continue;
		if (dns_anchor_zone(r, ldns_rr_owner(rr)) == NULL) {
			dns_set_why(why, wsize, ldns_rr_owner(rr),
			            "no trust anchor covers this name");
			sec = DNS_SEC_INSECURE;
			continue;
		}
		switch (rrset_sec(r, ans, rr, why, wsize)) {
		case DNS_SEC_BOGUS:
			return DNS_SEC_BOGUS;
		case DNS_SEC_INSECURE:
			sec = DNS_SEC_INSECURE;
			break;
		default:
			break;
		}
	}
	return sec;
}
