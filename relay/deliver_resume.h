/*
 * deliver_resume.h - outbound TLS session resumption for the delivery client
 * (deliver_resume.c): a small bounded cache of SSL_SESSIONs per destination,
 * so that the next delivery to the same hop resumes instead of paying a full
 * handshake.  Used by deliver_conn.c only.
 */
#ifndef ANCHOR_RELAY_DELIVER_RESUME_H
#define ANCHOR_RELAY_DELIVER_RESUME_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "relay.h"

#define RELAY_RESUME_KEY_MAX 600 /* host, port, tls_name and pin: see relay_resume_key */

/* Once, on the delivery client's SSL_CTX: capture new sessions (TLS 1.3 tickets too). */
void relay_resume_attach(SSL_CTX *ctx);
/* The cache key of a hop: a session is offered only to the same host and port with the
 * same tls_name and pin, so it is never resumed across differently verified peers. */
void relay_resume_key(const struct relay_hop *hop, char *key, size_t len);
/* Before SSL_connect: offer a cached session for key (if any) and remember key on ssl so
 * that the sessions the peer issues on this connection are cached under it. */
int relay_resume_prepare(SSL *ssl, const char *key);
/* After SSL_connect and the peer check: count a resumption; when the check failed
 * (ok == 0) forget every session cached for key. */
void relay_resume_done(SSL *ssl, const char *key, int ok);
/* Outbound handshakes that resumed a session, since start (for /metrics). */
unsigned long long relay_resume_count(void);

#endif
