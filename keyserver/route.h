/* route.h - routes (route.c) and requests signed by a user's own key (user_request.c). */
#ifndef KS_ROUTE_H
#define KS_ROUTE_H

#include "ks.h"

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
int ks_route_effective(struct db *db, const struct ks_domain *d, const char *name,
		       struct ks_route *rt, struct err *e);
int ks_route_store(struct ks_req *r, const struct ks_domain *d, const char *name,
		   const struct ks_route *rt, const char *set_by, struct err *e);

/* The payload of the signed answer for asked, whose effective route is rt (the signer
 * signs it, publish.c). */
json_t *ks_route_payload(const struct ks_domain *d, const char *asked, const struct ks_route *rt);

/*
 * The request body is a JWS signed by the address's current key (x5c [user,
 * issuer, root]) whose payload is {"type": "anchor-route-request", "address",
 * "alias", "ttl"?, "issued": <unix seconds>}.  Verifies it, checks the key is
 * the address's current one and the request is fresh and not replayed, and
 * fills rt.  keyref receives "key:<key id>" for the record.
 */
int ks_user_request_route(struct ks_req *r, const struct ks_domain *d, const char *address,
			  struct ks_route *rt, char *keyref, size_t keyref_len, struct err *e);

#endif
