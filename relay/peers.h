/*
 * peers.h - who is an anchored peer (peers.c; PROTOCOL.md §12.10, §12.12): a relay known
 * by the key of the TLS certificate it presents, listed in anchored_peers as
 * "name=sha256:PIN[,...]".  One identity for both relay-to-relay extensions: ANCHOR-DEFER
 * and ANCHOR-PARTIAL are offered only after STARTTLS to a client whose certificate key is
 * listed, a view is bound to the peer name of the server it went to, and a FETCH is
 * answered to, and made of, that name only.
 */
#ifndef ANCHOR_RELAY_PEERS_H
#define ANCHOR_RELAY_PEERS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "core/err.h"
#include "relay.h"

#define RELAY_PEER_NAME_MAX 64 /* a name's octets, its NUL included */

/* anchored_peers' syntax: ERR_INPUT bad_config saying which entry is wrong. */
int relay_peers_check(const char *list, struct err *e);
/* The name listed with pin ("sha256:..."): 1 with name filled, 0 when none. */
int relay_peer_of_pin(const char *list, const char *pin, char *name, size_t size);
/* The peer name of the certificate ssl's other side presented (its leaf's key): 1 with
 * name filled, 0 when it presented none or its key is not listed. */
int relay_peer_of_ssl(const struct relay_settings *s, SSL *ssl, char *name, size_t size);

struct relay_dconn;
/* deliver.c, before a defer token is sent: 0 when the server of c presented a listed key;
 * else -1 with c failed (why, polite: QUIT follows). */
int relay_peer_require(const struct relay_settings *s, struct relay_dconn *c);

struct relayd_conn;
/* Before an inbound STARTTLS handshake: ask for a client certificate when peers are
 * configured (any certificate, or none, completes the handshake). */
void relayd_peer_tls_prepare(const struct relayd_conn *c, SSL *ssl);
/* After it: a client certificate whose key is listed makes the session that peer's
 * (c->peer) and offers ANCHOR-DEFER and ANCHOR-PARTIAL from its next EHLO. */
void relayd_peer_tls_ready(struct relayd_conn *c, SSL *ssl);

#endif
