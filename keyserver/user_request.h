/* user_request.h - requests signed by a user's own key (user_request.c). */
#ifndef KS_USER_REQUEST_H
#define KS_USER_REQUEST_H

#include <stddef.h>

#include "ks.h"
#include "route_json.h"

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
