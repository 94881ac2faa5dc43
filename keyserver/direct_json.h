/*
 * direct_json.h - a user's direct endpoint (PROTOCOL.md §6.5): the registration
 * request's members and the published object (direct_json.c): pure, no database.
 */
#ifndef KS_DIRECT_JSON_H
#define KS_DIRECT_JSON_H

#include <jansson.h>

#include "core/err.h"
#include "pki/crypto.h"

#define KS_DIRECT_MIN_LIFETIME 5 /* seconds: a registration must outlive its own request */

struct ks_direct {
	char address[320];
	char host[256]; /* lowercase name or IP literal */
	int port;
	char pin[64];      /* sha256:<base64 of the SHA-256 of the daemon's SPKI> */
	long long expires; /* Unix seconds */
	char key_id[CRYPTO_UUID_LEN];
	long long log_seq; /* the log entry that recorded it; -1 when unknown */
};

/* What the server allows (anchor-keyserver(8): direct_max_lifetime, direct_allow_private). */
struct ks_direct_limits {
	long long max_lifetime; /* seconds from now */
	int allow_private;      /* loopback and private literals, "localhost" names */
};

/*
 * The members of a signed registration payload ({"type", "address", "issued",
 * "host", "port", "pin", "expires"}; type, address and issued are checked by
 * user_request.c) into *out, as of now.  ERR_INPUT "bad_direct" for a malformed
 * member, "private_host" for a host the limits refuse.
 */
int ks_direct_parse(json_t *payload, long long now, const struct ks_direct_limits *lim,
                    struct ks_direct *out, struct err *e);

/* {"host", "port", "pin", "expires" (RFC 3339)}: the object published in route answers. */
json_t *ks_direct_json(const struct ks_direct *dr);

#endif
