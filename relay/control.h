/*
 * control.h - the relay's HTTPS control API (control.c; PROTOCOL.md §12.6):
 * recipients' lists, spam complaints, signing, decisions and views,
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
#include "control_signed.h"
#include "relay.h"

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

#endif
