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

/*
 * Any other request a user signs (type: "anchor-direct-request", ...): the JWS body
 * verified against the domain's pins, its payload's type, address (the URL's) and
 * "issued" checked, the signer the address's current S/MIME key, the request fresh and
 * not replayed.  On success *payload is the signed payload (caller json_decref's) and
 * key_id the signing key's id.
 */
int ks_user_request_open(struct ks_req *r, const struct ks_domain *d, const char *address,
                         const char *type, json_t **payload, char key_id[CRYPTO_UUID_LEN],
                         struct err *e);

#endif
