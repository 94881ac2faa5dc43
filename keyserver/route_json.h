/* route_json.h - the route object and its JSON forms (route_json.c): pure, no database. */
#ifndef KS_ROUTE_JSON_H
#define KS_ROUTE_JSON_H

#include "ks.h"

#define KS_ROUTE_TTL_DEFAULT 3600

struct ks_route {
	json_t *servers; /* normalised array, or NULL */
	char *alias;     /* address (or domain, for a domain default), or NULL */
	int ttl;
	char scope_name[320]; /* the name whose route this is (address or domain) */
	char updated[32];
	long long log_seq; /* the log entry that recorded it; -1 when unknown */
};

void ks_route_free(struct ks_route *rt); /* releases members; accepts NULL */

/* Check a route body ({"servers": [...]} or {"alias": ...}, optional "ttl") for self. */
int ks_route_parse(json_t *body, const char *self, int domain_scope, struct ks_route *rt,
                   struct err *e);

/* The payload of the signed answer for asked, whose effective route is rt (the signer
 * signs it, publish.c). */
json_t *ks_route_payload(const struct ks_domain *d, const char *asked, const struct ks_route *rt);

#endif
