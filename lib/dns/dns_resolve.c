/*
 * dns_resolve.c - queries over ldns with CNAME chasing, a precise error for
 * every way a DNS answer can fail, and DNSSEC validation from a configured
 * trust anchor (the validation itself is dns_dnssec.c).
 *
 * Validation model (what is implemented, and its limits, see PROTOCOL.md §8.3):
 * the trust anchor file holds DS or DNSKEY records: the root's (in
 * production /usr/share/dns/root.key) and/or those of zone apexes; a name is
 * validated from the closest anchor Z at or above it, and a name under none
 * is "insecure".  Under Z, every answer RRset must carry an RRSIG that
 * verifies with a DNSKEY of its signer; the signer's DNSKEY RRset must itself
 * verify with a key matching the anchor (signer == Z) or with a key matching
 * a DS record that verifies under the parent's keys, up to Z (dns_dnssec.c).
 * Negative answers need signed NSEC or NSEC3 records proving the denial.
 * Where that fails, a walk from Z down to the name looks for an insecure
 * delegation: a DS the parent's signed NSEC/NSEC3 proves absent, or an NSEC3
 * opt-out span; what lies below one is "insecure", anything else "bogus"
 * (dns_verdict.c).
 */
#include "dns/dns.h"
#include "dns/dns_resolver_priv.h"
#include "dns/dns_send.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *dns_sec_name(enum dns_sec s)
{
	switch (s) {
	case DNS_SEC_SECURE:
		return "secure";
	case DNS_SEC_INSECURE:
		return "insecure";
	case DNS_SEC_BOGUS:
		return "bogus";
	default:
		return "unvalidated";
	}
}

int dns_name_canon(const char *in, char *out, size_t size, struct err *e)
{
	size_t len = in ? strlen(in) : 0, i;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > 253 || len >= size)
		return err_set(e, ERR_INPUT, "dns_bad_name", "\"%.64s\" is not a valid DNS name",
		               in ? in : "");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '"' || c == ';' || c == '(' ||
		    c == ')')
			return err_set(e, ERR_INPUT, "dns_bad_name",
			               "\"%.64s\" holds a character not allowed in a DNS name", in);
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	if (strstr(out, "..") != NULL || out[0] == '.')
		return err_set(e, ERR_INPUT, "dns_bad_name", "\"%.64s\" has an empty label", in);
	return 0;
}

/* ------------------------------------------------------------------ setup */

static int parse_server(const char *s, char *addr, uint16_t *port, struct err *e)
{
	const char *colon, *host = s, *end;
	unsigned char buf[16];
	char *stop;
	long p = 53;

	if (s[0] == '[') {
		host = s + 1;
		end = strchr(host, ']');
		if (end == NULL)
			goto bad;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			goto bad;
	} else {
		colon = strrchr(s, ':');
		if (colon != NULL && strchr(s, ':') != colon) /* bare IPv6 */
			colon = NULL;
		end = colon ? colon : s + strlen(s);
	}
	if ((size_t)(end - host) >= INET6_ADDRSTRLEN || end == host)
		goto bad;
	memcpy(addr, host, (size_t)(end - host));
	addr[end - host] = '\0';
	if (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1)
		goto bad;
	if (colon != NULL) {
		p = strtol(colon + 1, &stop, 10);
		if (*stop != '\0' || p < 1 || p > 65535)
			goto bad;
	}
	*port = (uint16_t)p;
	return 0;
bad:
	return err_set(e, ERR_INPUT, "bad_resolver",
	               "resolver \"%.64s\" is not ADDRESS[:PORT] (an IP address, e.g. "
	               "127.0.0.1:5353)",
	               s);
}

static int load_anchors(struct dns_resolver *r, const char *file, struct err *e)
{
	FILE *f = fopen(file, "r");
	uint32_t ttl = 3600;
	ldns_rdf *origin = NULL, *prev = NULL;
	int line = 0;

	if (f == NULL)
		return err_set(e, ERR_INPUT, "trust_anchor", "cannot open trust anchor file %s",
		               file);
	r->anchors = ldns_rr_list_new();
	while (!feof(f)) {
		ldns_rr *rr = NULL;
		ldns_status st = ldns_rr_new_frm_fp_l(&rr, f, &ttl, &origin, &prev, &line);

		if (st == LDNS_STATUS_SYNTAX_EMPTY || st == LDNS_STATUS_SYNTAX_TTL ||
		    st == LDNS_STATUS_SYNTAX_ORIGIN || st == LDNS_STATUS_SYNTAX_INCLUDE)
			continue;
		if (st != LDNS_STATUS_OK) {
			if (feof(f))
				break;
			err_set(e, ERR_INPUT, "trust_anchor", "%s:%d: %s", file, line,
			        ldns_get_errorstr_by_id(st));
			goto fail;
		}
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_DS &&
		    ldns_rr_get_type(rr) != LDNS_RR_TYPE_DNSKEY) {
			ldns_rr_free(rr);
			continue; /* e.g. a whole keyset file with RRSIGs */
		}
		ldns_rr_list_push_rr(r->anchors, rr);
	}
	if (ldns_rr_list_rr_count(r->anchors) == 0) {
		err_set(e, ERR_INPUT, "trust_anchor", "%s holds no DS or DNSKEY record", file);
		goto fail;
	}
	fclose(f);
	ldns_rdf_deep_free(origin);
	ldns_rdf_deep_free(prev);
	return 0;
fail:
	fclose(f);
	ldns_rdf_deep_free(origin);
	ldns_rdf_deep_free(prev);
	ldns_rr_list_deep_free(r->anchors);
	r->anchors = NULL;
	return -1;
}

struct dns_resolver *dns_resolver_new(const char *server, const char *trust_anchor_file,
                                      int timeout_ms, struct err *e)
{
	struct dns_resolver *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->timeout_ms = timeout_ms < 100 ? 100 : timeout_ms;
	if (server == NULL || server[0] == '\0')
		r->use_system = 1;
	else if (parse_server(server, r->addr, &r->port, e) < 0)
		goto fail;
	if (trust_anchor_file != NULL && trust_anchor_file[0] != '\0' &&
	    load_anchors(r, trust_anchor_file, e) < 0)
		goto fail;
	return r;
fail:
	dns_resolver_free(r);
	return NULL;
}

void dns_resolver_free(struct dns_resolver *r)
{
	int i;

	if (r == NULL)
		return;
	for (i = 0; i < r->ncache; i++) {
		ldns_rdf_deep_free(r->cache[i].zone);
		ldns_rr_list_deep_free(r->cache[i].keys);
	}
	ldns_rr_list_deep_free(r->anchors);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int dns_resolver_has_anchor(const struct dns_resolver *r)
{
	return r->anchors != NULL;
}

unsigned dns_resolver_queries(const struct dns_resolver *r)
{
	return atomic_load(&((struct dns_resolver *)r)->queries);
}

unsigned dns_resolver_retries(const struct dns_resolver *r)
{
	return atomic_load(&((struct dns_resolver *)r)->retries);
}

static int rcode_error(ldns_pkt_rcode rc, const char *qname, struct err *e)
{
	switch (rc) {
	case LDNS_RCODE_NOERROR:
	case LDNS_RCODE_NXDOMAIN:
		return 0;
	case LDNS_RCODE_SERVFAIL:
		return err_set(e, ERR_TEMP, "dns_servfail",
		               "the resolver answered SERVFAIL for %s (broken zone, or DNSSEC "
		               "failure at a validating resolver)",
		               qname);
	case LDNS_RCODE_REFUSED:
		return err_set(e, ERR_TEMP, "dns_refused",
		               "the resolver refused the query for %s (not authoritative or not "
		               "allowed to recurse)",
		               qname);
	default:
		return err_set(e, ERR_TEMP, "dns_rcode", "the resolver answered rcode %d for %s",
		               (int)rc, qname);
	}
}

static uint32_t negative_ttl(const ldns_pkt *pkt)
{
	ldns_rr_list *auth = ldns_pkt_authority(pkt);
	size_t i;

	for (i = 0; auth && i < ldns_rr_list_rr_count(auth); i++) {
		ldns_rr *rr = ldns_rr_list_rr(auth, i);

		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) == 7) {
			uint32_t min = ldns_rdf2native_int32(ldns_rr_rdf(rr, 6));

			return min < ldns_rr_ttl(rr) ? min : ldns_rr_ttl(rr);
		}
	}
	return 60;
}

static int has_soa(const ldns_pkt *pkt)
{
	ldns_rr_list *auth = ldns_pkt_authority(pkt);
	size_t i;

	for (i = 0; auth && i < ldns_rr_list_rr_count(auth); i++)
		if (ldns_rr_get_type(ldns_rr_list_rr(auth, i)) == LDNS_RR_TYPE_SOA)
			return 1;
	return 0;
}

static void ttl_min(struct dns_answer *out, uint32_t ttl)
{
	if (out->ttl == 0 || ttl < out->ttl)
		out->ttl = ttl;
}

/* The records of type owned by cur go to out (their count returned); *cname is the first
 * CNAME owned by cur, or NULL. */
static size_t answer_at(const ldns_rr_list *ans, const char *cur, ldns_rr_type type,
                        struct dns_answer *out, ldns_rr **cname)
{
	size_t k, found = 0;

	*cname = NULL;
	for (k = 0; ans && k < ldns_rr_list_rr_count(ans); k++) {
		ldns_rr *rr = ldns_rr_list_rr(ans, k);
		char *owner = ldns_rdf2str(ldns_rr_owner(rr));
		char canon[DNS_NAME_MAX];
		struct err ign;
		int match = owner && dns_name_canon(owner, canon, sizeof(canon), &ign) == 0 &&
		            strcmp(canon, cur) == 0;

		free(owner);
		if (!match)
			continue;
		if (ldns_rr_get_type(rr) == type) {
			ldns_rr_list_push_rr(out->rrs, ldns_rr_clone(rr));
			ttl_min(out, ldns_rr_ttl(rr));
			found++;
		} else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && *cname == NULL) {
			*cname = rr;
		}
	}
	return found;
}

/* cur becomes the canonical target of cname. */
static int cname_target(const ldns_rr *cname, char *cur, size_t size, const char *qname,
                        struct err *e)
{
	char *t = ldns_rdf2str(ldns_rr_rdf(cname, 0));
	int rc = t ? dns_name_canon(t, cur, size, e) : -1;

	free(t);
	if (rc < 0)
		return err_set(e, ERR_UNPROC, "dns_bad_cname",
		               "a CNAME in the answer for %s has a bad target", qname);
	return 0;
}

int dns_answer_from_pkt(const ldns_pkt *pkt, const char *qname, ldns_rr_type type,
                        struct dns_answer *out, char *next_name, size_t next_size, struct err *e)
{
	char seen[DNS_CNAME_MAX + 1][DNS_NAME_MAX];
	char cur[DNS_NAME_MAX];
	ldns_rr_list *ans = ldns_pkt_answer(pkt);
	int nseen = 0, hops = 0, i;

	next_name[0] = '\0';
	if (ldns_pkt_tc(pkt))
		return err_set(e, ERR_TEMP, "dns_truncated",
		               "the answer for %s was truncated and could not be had in full",
		               qname);
	if (rcode_error(ldns_pkt_get_rcode(pkt), qname, e) < 0)
		return -1;
	snprintf(cur, sizeof(cur), "%s", qname);
	if (out->rrs == NULL)
		out->rrs = ldns_rr_list_new();
	for (;;) {
		ldns_rr *cname = NULL;
		size_t found;

		for (i = 0; i < nseen; i++)
			if (strcmp(seen[i], cur) == 0)
				return err_set(e, ERR_UNPROC, "dns_cname_loop",
				               "CNAME loop: %s points back to itself through %d "
				               "hops",
				               cur, hops);
		if (nseen <= DNS_CNAME_MAX)
			snprintf(seen[nseen++], DNS_NAME_MAX, "%s", cur);
		found = answer_at(ans, cur, type, out, &cname);
		snprintf(out->final_name, sizeof(out->final_name), "%s", cur);
		if (found > 0)
			return 0;
		if (cname == NULL || type == LDNS_RR_TYPE_CNAME)
			break;
		if (cname_target(cname, cur, sizeof(cur), qname, e) < 0)
			return -1;
		ttl_min(out, ldns_rr_ttl(cname));
		hops++;
		out->cnames++;
		if (out->cnames > DNS_CNAME_MAX)
			return err_set(e, ERR_UNPROC, "dns_cname_chain",
			               "more than %d CNAMEs from %s", DNS_CNAME_MAX, out->qname);
	}
	/* No record of the type at cur. */
	if (hops > 0 && ldns_pkt_get_rcode(pkt) == LDNS_RCODE_NOERROR && !has_soa(pkt)) {
		/* The chain leaves what this server answers: ask for the target. */
		snprintf(next_name, next_size, "%s", cur);
		return 0;
	}
	if (ldns_pkt_get_rcode(pkt) == LDNS_RCODE_NXDOMAIN)
		out->nxdomain = 1;
	else
		out->nodata = 1;
	ttl_min(out, negative_ttl(pkt));
	return 0;
}

void dns_answer_clear(struct dns_answer *a)
{
	if (a == NULL)
		return;
	ldns_rr_list_deep_free(a->rrs);
	memset(a, 0, sizeof(*a));
}

/* ------------------------------------------------------------------ dns_query */

static enum dns_sec worse(enum dns_sec a, enum dns_sec b)
{
	static const int rank[] = {[DNS_SEC_SECURE] = 0,
	                           [DNS_SEC_UNVALIDATED] = 1,
	                           [DNS_SEC_INSECURE] = 2,
	                           [DNS_SEC_BOGUS] = 3};

	return rank[a] >= rank[b] ? a : b;
}

int dns_query(struct dns_resolver *r, const char *name, ldns_rr_type type, struct dns_answer *out,
              struct err *e)
{
	char asked[DNS_CNAME_MAX + 1][DNS_NAME_MAX];
	char cur[DNS_NAME_MAX], next[DNS_NAME_MAX];
	int nasked = 0, i;

	memset(out, 0, sizeof(*out));
	out->type = type;
	out->sec = r->anchors ? DNS_SEC_SECURE : DNS_SEC_UNVALIDATED;
	if (dns_name_canon(name, out->qname, sizeof(out->qname), e) < 0)
		return -1;
	snprintf(cur, sizeof(cur), "%s", out->qname);
	for (;;) {
		ldns_rdf *dname = ldns_dname_new_frm_str(cur);
		ldns_pkt *pkt = NULL;
		char why[sizeof(out->sec_why)] = "";
		int rc;

		for (i = 0; i < nasked; i++)
			if (strcmp(asked[i], cur) == 0) {
				ldns_rdf_deep_free(dname);
				err_set(e, ERR_UNPROC, "dns_cname_loop",
				        "CNAME loop: the chain from %s comes back to %s",
				        out->qname, cur);
				goto fail;
			}
		if (nasked > DNS_CNAME_MAX) {
			ldns_rdf_deep_free(dname);
			err_set(e, ERR_UNPROC, "dns_cname_chain", "more than %d CNAMEs from %s",
			        DNS_CNAME_MAX, out->qname);
			goto fail;
		}
		snprintf(asked[nasked++], DNS_NAME_MAX, "%s", cur);
		if (dname == NULL) {
			err_set(e, ERR_INPUT, "dns_bad_name", "\"%s\" is not a valid DNS name",
			        cur);
			goto fail;
		}
		rc = dns_send_query(r, dname, type, &pkt, e);
		ldns_rdf_deep_free(dname);
		if (rc < 0)
			goto fail;
		rc = dns_answer_from_pkt(pkt, cur, type, out, next, sizeof(next), e);
		if (rc == 0 && r->anchors != NULL) {
			enum dns_sec s = ldns_rr_list_rr_count(ldns_pkt_answer(pkt)) > 0
			                     ? dns_validate_answer(r, pkt, why, sizeof(why))
			                     : DNS_SEC_SECURE;

			if (s != DNS_SEC_BOGUS && (out->nxdomain || out->nodata))
				s = worse(s, dns_validate_denial(r, pkt, out, why, sizeof(why)));
			if (worse(out->sec, s) != out->sec || out->sec_why[0] == '\0')
				snprintf(out->sec_why, sizeof(out->sec_why), "%s", why);
			out->sec = worse(out->sec, s);
		}
		ldns_pkt_free(pkt);
		if (rc < 0)
			goto fail;
		if (next[0] == '\0')
			break;
		snprintf(cur, sizeof(cur), "%s", next);
	}
	if (r->anchors == NULL)
		snprintf(out->sec_why, sizeof(out->sec_why), "no trust anchor configured");
	else if (out->sec == DNS_SEC_SECURE && out->sec_why[0] == '\0')
		snprintf(out->sec_why, sizeof(out->sec_why),
		         "signatures verified from the trust "
		         "anchor");
	return 0;
fail:
	dns_answer_clear(out);
	return -1;
}
