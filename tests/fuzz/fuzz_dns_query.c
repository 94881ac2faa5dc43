/*
 * fuzz_dns_query.c - the DNS zone's query path without the store: a query in
 * wire form -> what it asks -> the answer for a listed and an unlisted
 * verdict, which must itself be a DNS message carrying the query's id.  The
 * fuzz build links libanchor.a only, so the pure reputation files are
 * compiled in here.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../reputation/dnszone_wire.c"
#include "../../reputation/subject.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_answer(const struct rep_dnszone_query *q, const struct rep_dnszone_verdict *v)
{
	ldns_pkt *p = NULL;
	size_t len;
	uint8_t *w = rep_dnszone_answer(q, "rep.example", v, 300, 1, &len);

	if (q->kind == REP_DZ_DROP) {
		if (w != NULL)
			__builtin_trap();
		return;
	}
	if (w == NULL)
		return; /* out of memory, or a name ldns will not rebuild */
	if (len < 12 || ldns_wire2pkt(&p, w, len) != LDNS_STATUS_OK || ldns_pkt_id(p) != q->id ||
	    !ldns_pkt_qr(p))
		__builtin_trap();
	ldns_pkt_free(p);
	free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rep_dnszone_query q;
	struct rep_dnszone_verdict v;

	rep_dnszone_parse(data, size, "rep.example", &q);
	memset(&v, 0, sizeof(v));
	v.verdict = REP_UNKNOWN;
	check_answer(&q, &v);
	v.verdict = REP_BLOCK;
	v.categories = size & 0x3f;
	memcpy(v.reason, "listed", 7);
	check_answer(&q, &v);
	return 0;
}
