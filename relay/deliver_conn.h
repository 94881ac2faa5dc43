/*
 * deliver_conn.h - the delivery client's connection (deliver_conn.c): a
 * blocking socket, optionally TLS, where every wait is a poll() against a
 * deadline.  Used by deliver.c only; run on worker threads.
 */
#ifndef ANCHOR_RELAY_DELIVER_CONN_H
#define ANCHOR_RELAY_DELIVER_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "relay.h"

#define RELAY_DELIVER_PATH_MAX 256 /* RFC 5321 §4.5.3.1.3, brackets included */

/* RELAY_IO_PLAIN_RETRY: a handshake failed with a peer that does not require TLS. */
enum relay_io_rc { RELAY_IO_OK = 0, RELAY_IO_FAIL = -1, RELAY_IO_PLAIN_RETRY = -2 };

struct relay_dconn {
	int fd;
	SSL *ssl;
	char peer[300]; /* "host[addr]": the prefix of every reply text */
	char in[RELAY_REPLY_LINE_MAX + 1024];
	size_t inlen;
	char why[400]; /* the last failure, for the results */
	int code;      /* the reply code behind why; 0 when no reply was involved */
	int polite;    /* the failure left the session usable: say QUIT */
};

/* The failure (also in c->why): the text of every recipient's result. */
void relay_dconn_fail(struct relay_dconn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int relay_dconn_write(struct relay_dconn *c, const char *buf, size_t len, int seconds);
int relay_dconn_printf(struct relay_dconn *c, int seconds, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One whole reply (lib's strict reader, relay_smtp_reply_*). */
int relay_dconn_read_reply(struct relay_dconn *c, int seconds, struct relay_smtp_reply *r);
/* Exactly len octets (after a reply that announced them), within seconds. */
int relay_dconn_read_bytes(struct relay_dconn *c, char *buf, size_t len, int seconds);
/* After a clean end of the session (QUIT answered): TLS close_notify, which keeps the
 * TLS session resumable. */
void relay_dconn_tls_end(struct relay_dconn *c);
void relay_dconn_close(struct relay_dconn *c);
int relay_dconn_unix(struct relay_dconn *c, const char *path, int seconds);
int relay_dconn_tcp(struct relay_dconn *c, const char *host, uint16_t port, int seconds);
/* The TLS handshake, then the hop's pin and tls_name checked on what the peer presented. */
/* The TLS client certificate deliveries present (ANCHOR-DEFER peers know us by its key);
 * set once at start, before the first delivery. */
void relay_dconn_client_cert(const char *cert_file, const char *key_file);
int relay_dconn_tls(struct relay_dconn *c, const struct relay_hop *hop, int seconds);

#endif
