/*
 * fuzz_dns_denial.c - what NSEC and NSEC3 records prove (lib/dns/dns_verdict.c):
 * a DNS answer in wire form -> the denial of its question, the zone cut its
 * DS question finds (insecure delegation, opt-out span) and the NSEC3 closest
 * encloser, signatures aside.  Records an attacker's own signed zone can hold:
 * any owner, bitmap, hash parameters or mix of types.
 */
#include <stddef.h>
#include <stdint.h>

#include <ldns/ldns.h>

#include "dns/dns_resolver_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ldns_pkt *pkt = NULL;
	char why[200];
	int rc;

	if (ldns_wire2pkt(&pkt, data, size) != LDNS_STATUS_OK)
		return 0;
	why[0] = '\0';
	rc = dns_denial_check(pkt, why, sizeof(why));
	if (rc < -1 || rc > 1)
		__builtin_trap();
	ldns_pkt_free(pkt);
	return 0;
}
