/*
 * payload.h - the shape every payload a user or holder signs shares (renewal,
 * encryption enrollment, route and direct requests): only the members its type
 * knows, and an "issued" time near the server's clock.  One place for these
 * rules, so that each kind of request refuses the same things the same way.
 */
#ifndef KS_PAYLOAD_H
#define KS_PAYLOAD_H

#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

#define KS_PAYLOAD_SKEW 300 /* seconds of clock difference tolerated in "issued" */

/* The string member k of p, borrowed; NULL when absent or not a string. */
const char *ks_payload_str(const json_t *p, const char *k);

/* ERR_INPUT "bad_request" naming the first member of p not among known[0..n); what
 * names the request in the message ("renewal", "encryption"). */
int ks_payload_only(const json_t *p, const char *const *known, size_t n, const char *what,
                    struct err *e);

/*
 * "issued": Unix seconds, a whole number or with a fraction (milliseconds are kept,
 * so that two requests signed within one second are distinct), into *ms.
 * ERR_INPUT "bad_request" when missing or not a number, "stale_request" when more
 * than KS_PAYLOAD_SKEW seconds from now.
 */
int ks_payload_issued(const json_t *p, long long now, long long *ms, struct err *e);

#endif
