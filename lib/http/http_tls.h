/*
 * http_tls.h - TLS for the HTTPS server layer beyond the certificate and the
 * policy (pki/tls_policy.h, the priorities http_server.c gives GnuTLS): session
 * resumption (TLS 1.3 PSK tickets and TLS 1.2 RFC 5077 tickets, both through
 * GnuTLS, which libmicrohttpd drives), with the schedule that rotates the ticket
 * keys.
 *
 * Keys live in memory only, 64 random bytes each, and are never logged or
 * written anywhere.  Every rotation_s seconds a fresh key becomes current (new
 * tickets are sealed with it) and the one it replaces is still accepted for one
 * more period, then erased; a ticket older than that costs a full handshake, as
 * does any ticket after a restart.  The rotation is done by whichever
 * connection first arrives after the period is over: an idle server holds no
 * timer.
 *
 * GnuTLS seals a ticket not with the key it is given but with a key it derives
 * from it and the time window (SHA3-512 over the window number and the key,
 * window = now / (3 * ticket lifetime)); the first 16 bytes of that are the key
 * name a ticket starts with.  http_tls_choose() computes the same names to tell
 * which of the two keys a ClientHello's ticket was sealed under.
 */
#ifndef ANCHOR_HTTP_TLS_H
#define ANCHOR_HTTP_TLS_H

#include <stddef.h>
#include <time.h>

#include "core/err.h"

#define HTTP_TLS_NAME_LEN 16

struct http_tls;

/* Ticket keys rotated every rotation_s seconds (1 s .. 3 days); clock_fn NULL is time(). */
struct http_tls *http_tls_new(long rotation_s, time_t (*clock_fn)(time_t *), struct err *e);
void http_tls_free(struct http_tls *t); /* accepts NULL; erases the keys */

/* The ticket lifetime told to clients and enforced: two rotation periods. */
unsigned http_tls_lifetime(const struct http_tls *t);

/*
 * For one new session, before its handshake, once its ClientHello (the handshake
 * message, hello/len) is in: enables tickets with the current key or, when the
 * hello carries a ticket sealed under the previous key, with that one (so that
 * the ticket resumes; the tickets then issued use it too and die with it).
 * gnutls_session is a gnutls_session_t.  Returns 0, or -1 when GnuTLS refused
 * (the session then does a full handshake and gets no ticket).
 */
int http_tls_choose(struct http_tls *t, void *gnutls_session, const unsigned char *hello,
                    size_t len);

/* 1 when the key name occurs in the ClientHello.  The name is random, so a match by
 * chance is out of reach; a client that quotes it on purpose only gets what a
 * ticket under that key would give it.  Exported for the unit test. */
int http_tls_hello_names(const unsigned char *hello, size_t len,
                         const unsigned char name[HTTP_TLS_NAME_LEN]);

#endif
