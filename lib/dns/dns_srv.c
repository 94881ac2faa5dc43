/* dns_srv.c - RFC 2782 selection among SRV targets: priority first, then weight. */
#include "dns/dns.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

uint32_t dns_rand_uniform(void *ctx, uint32_t bound)
{
	uint32_t x, limit;

	(void)ctx;
	if (bound <= 1)
		return 0;
	/* Rejection sampling: no modulo bias. */
	limit = UINT32_MAX - (UINT32_MAX % bound);
	do {
		if (RAND_bytes((unsigned char *)&x, sizeof(x)) != 1)
			x = (uint32_t)random();
	} while (x >= limit);
	return x % bound;
}

static int by_priority(const void *a, const void *b)
{
	const struct dns_srv *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	/* Weighted entries first, so that weight-0 entries are drawn last. */
	if ((x->weight == 0) != (y->weight == 0))
		return x->weight == 0 ? 1 : -1;
	return 0;
}

/* Weighted random permutation of group[0..n), in place. */
static void order_group(struct dns_srv *group, size_t n, dns_rand_fn rnd, void *ctx)
{
	size_t done, i;

	for (done = 0; done + 1 < n; done++) {
		uint64_t total = 0, run = 0, pick;
		struct dns_srv tmp;

		for (i = done; i < n; i++)
			total += group[i].weight;
		if (total == 0) {
			i = done + rnd(ctx, (uint32_t)(n - done));
		} else {
			pick = (uint64_t)rnd(ctx, (uint32_t)total) + 1; /* 1..total */
			for (i = done; i < n; i++) {
				run += group[i].weight;
				if (run >= pick)
					break;
			}
		}
		tmp = group[done];
		group[done] = group[i];
		group[i] = tmp;
	}
}

int dns_srv_order(struct dns_srv *srv, size_t n, dns_rand_fn rnd, void *ctx, struct err *e)
{
	size_t i, start;

	if (rnd == NULL)
		rnd = dns_rand_uniform;
	for (i = 0; i < n; i++) {
		if (strcmp(srv[i].target, "") == 0 || strcmp(srv[i].target, ".") == 0) {
			if (n == 1)
				return err_set(
				    e, ERR_UNPROC, "srv_no_service",
				    "the SRV record's target is \".\": the domain says it "
				    "has no key server");
			return err_set(
			    e, ERR_UNPROC, "srv_bad_target",
			    "an SRV record with target \".\" stands beside other records; "
			    "\".\" is only valid alone");
		}
	}
	qsort(srv, n, sizeof(*srv), by_priority);
	for (start = 0; start < n; start = i) {
		for (i = start; i < n && srv[i].priority == srv[start].priority; i++)
			;
		order_group(srv + start, i - start, rnd, ctx);
	}
	return 0;
}

int dns_srv_from_rr(const ldns_rr *rr, struct dns_srv *out, struct err *e)
{
	char *target;

	memset(out, 0, sizeof(*out));
	if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SRV || ldns_rr_rd_count(rr) != 4 ||
	    ldns_rdf_get_type(ldns_rr_rdf(rr, 3)) != LDNS_RDF_TYPE_DNAME)
		return err_set(e, ERR_UNPROC, "srv_malformed", "an SRV record is malformed");
	out->priority = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
	out->weight = ldns_rdf2native_int16(ldns_rr_rdf(rr, 1));
	out->port = ldns_rdf2native_int16(ldns_rr_rdf(rr, 2));
	out->ttl = ldns_rr_ttl(rr);
	target = ldns_rdf2str(ldns_rr_rdf(rr, 3));
	if (target == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (strcmp(target, ".") == 0) {
		strcpy(out->target, ".");
	} else if (dns_name_canon(target, out->target, sizeof(out->target), e) < 0) {
		free(target);
		return -1;
	}
	free(target);
	return 0;
}
