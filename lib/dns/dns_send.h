/*
 * dns_send.h - one query to the resolver's configured server (dns_send.c).
 * Used inside the resolver only (dns_resolve.c, dns_dnssec.c).
 */
#ifndef ANCHOR_DNS_SEND_H
#define ANCHOR_DNS_SEND_H

#include <ldns/ldns.h>

#include "core/err.h"

struct dns_resolver;

/* One query to the configured server (CD set when validating); counted in queries.
 * Sent again over UDP, then over TCP, while no answer comes within timeout_ms. */
int dns_send_query(struct dns_resolver *r, const ldns_rdf *name, ldns_rr_type type, ldns_pkt **pkt,
                   struct err *e);

#endif
