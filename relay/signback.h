/* signback.h - sign and give back (signback.c): POST /v1/sign on the control API. */
#ifndef RELAY_SIGNBACK_H
#define RELAY_SIGNBACK_H

#include "http/http.h"
#include "relay.h"

/* A submitter's message signed and given back, not sent (PROTOCOL.md §12.6). */
void relay_signback_route(const struct relay_settings *s, struct relay_signer_client *sc,
                          const struct http_request *req, struct http_response *resp);

#endif
