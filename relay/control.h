/*
 * control.h - the relay's HTTPS control API (control.c; PROTOCOL.md §12,
 * /work/notes/relay-control-api.md): recipients' lists and spam complaints,
 * for the admin (bearer token) or the recipient itself (a request signed by
 * its own S/MIME key, chained to its domain's pinned root).
 */
#ifndef ANCHOR_RELAY_CONTROL_H
#define ANCHOR_RELAY_CONTROL_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "dns/certauth.h"
#include "pki/crypto.h"
#include "http/metrics.h"
#include "relay.h"

#define RELAY_CONTROL_WINDOW 300 /* seconds a signed request's "issued" may be off */

struct relay_control;

/*
 * Listen on s->control_listen ("ADDR:PORT", port 0 for any) with TLS
 * (tls_cert_file, tls_key_file).  lists is required; rep and sc may be NULL
 * (complaints are then refused with 503 reputation_disabled).  Discovery of
 * the recipients' domains uses dns_server, dns_trust_anchor and
 * keyserver_cacert.  /metrics adds the state of the queues qin and qout
 * (either may be NULL) and the STARTTLS handshakes counted in smtp_tls (NULL: none).  Every
 * argument must outlive the control server.
 */
struct relay_control *relay_control_start(const struct relay_settings *s, struct relay_lists *l,
                                          struct relay_rep *rep, struct relay_signer_client *sc,
                                          struct queue *qin, struct queue *qout,
                                          struct metrics_tls *smtp_tls, struct err *e);
/* Decisions on held messages (POST /v1/decisions/{token}, GET /v1/decisions) go to df. */
struct relay_defer;
void relay_control_set_defer(struct relay_control *c, struct relay_defer *df);
/* The port actually bound. */
int relay_control_port(const struct relay_control *c);
/* Stops listening and waits for the requests in progress; accepts NULL. */
void relay_control_stop(struct relay_control *c);

/* ---- signed requests; exported for the unit tests ---- */

/* A user-signed request, verified. */
struct relay_control_signed {
	char address[RELAY_ADDR_MAX]; /* the signer's address, lowercase */
	char key_pin[CRYPTO_PIN_MAX]; /* the signer's key: the replay identity */
	long long issued;             /* Unix seconds */
	uint8_t digest[32]; /* SHA-256 of the request text: tells equal-time requests apart */
	json_t *body;       /* the payload's "body" (a reference), or NULL */
};

void relay_control_signed_clear(struct relay_control_signed *r);

/*
 * The "address" a signed request's payload claims, read without verifying
 * anything (to know which domain's pins to verify it with).  ERR_INPUT
 * bad_jws / bad_request.
 */
int relay_control_peek_address(json_t *jws, char out[RELAY_ADDR_MAX], struct err *e);

/*
 * Verify a signed request text (a flattened JWS): lib/certauth checks that it is
 * signed by the current certificate of the payload's address (chain to a root its
 * domain pins, leaf rfc822Name == the address, not revoked nor superseded, asked of
 * the domain's key server), then the payload must be {"type":
 * "anchor-relay-request", "address", "method", "path", "body", "issued": RFC 3339}
 * matching method and path, issued within RELAY_CONTROL_WINDOW of now.  Replay is
 * the caller's (newest issued per key).  Errors: those of relay_control_peek_address
 * and certauth_verify_jws, ERR_INPUT request_mismatch, stale_request, bad_request.
 */
int relay_control_verify_request(struct certauth *auth, const char *text, size_t len,
                                 const char *method, const char *path, time_t now,
                                 struct relay_control_signed *out, struct err *e);

#endif
