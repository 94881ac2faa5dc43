/*
 * http_tls.h - TLS session resumption for the HTTPS server layer: the session
 * ticket keys (TLS 1.3 PSK tickets and TLS 1.2 RFC 5077 tickets, both through
 * GnuTLS, which libmicrohttpd drives) and the schedule that rotates them.
 *
 * Keys live in memory only, 64 random bytes each, and are never logged or
 * written anywhere.  Every rotation_s seconds a fresh key becomes current (new
 * tickets are sealed with it) and the previous one is still accepted for one
 * more period, then erased; a ticket older than that costs a full handshake.
 * A restart starts with a fresh key, so tickets of the old process are refused.
 * Rotation is done by whichever connection first arrives after the period is
 * over, so an idle server holds no timer.
 */
#ifndef ANCHOR_HTTP_TLS_H
#define ANCHOR_HTTP_TLS_H

#include <stddef.h>
#include <time.h>

#include "core/err.h"

struct http_tls;

/* Ticket keys rotated every rotation_s seconds (> 0). */
struct http_tls *http_tls_new(long rotation_s, struct err *e);
void http_tls_free(struct http_tls *t); /* accepts NULL; erases the keys */

/*
 * Arms resumption on one new TLS session (a gnutls_session_t, before its
 * handshake): the ClientHello decides which key the session uses, the current
 * one or, when the client presents a ticket sealed under the previous key, that
 * one.  Returns 0, or -1 when GnuTLS refused (the session then just does full
 * handshakes).
 */
int http_tls_session_arm(struct http_tls *t, void *gnutls_session);

/*
 * Which key a ClientHello presents a ticket for: 1 when the 16-byte key name
 * `name` occurs in the message, else 0.  The name is random, so a match by
 * chance is out of reach; a client that quotes it on purpose only gets what
 * its ticket would have given it.  Exported for the fuzzer.
 */
int http_tls_hello_names(const unsigned char *hello, size_t len, const unsigned char name[16]);

/* For tests: the key rotation moves `now` as if the clock said so (0: the real clock). */
void http_tls_set_clock(struct http_tls *t, time_t (*clock_fn)(void));

#endif
