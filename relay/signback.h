/* signback.h - sign and give back (signback.c): POST /v1/sign on the control API. */
#ifndef RELAY_SIGNBACK_H
#define RELAY_SIGNBACK_H

#include "http/http.h"
#include "relay.h"

/* "Basic <b64 of address:password>" (an Authorization header) into user (lowercased) and
 * pass (pass_size bytes); ERR_AUTH "unauthorized" for anything else. */
int relay_signback_basic(const char *header, char user[RELAY_ADDR_MAX], char *pass,
                         size_t pass_size, struct err *e);

/* A submitter's message signed and given back, not sent (PROTOCOL.md §12.6). */
void relay_signback_route(const struct relay_settings *s, struct relay_signer_client *sc,
                          const struct http_request *req, struct http_response *resp);

#endif
