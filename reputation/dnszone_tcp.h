/*
 * dnszone_tcp.h - the DNS zone over TCP (dnszone_tcp.c): one event loop, many
 * connections; the zone (dnszone.c) hands it the listening socket and its answer
 * function.
 */
#ifndef REP_DNSZONE_TCP_H
#define REP_DNSZONE_TCP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr_storage;

/* Answer one query (wire, len) from a client into out (size octets): the answer's
 * length, or 0 to stay silent. */
typedef size_t (*rep_dnszone_answer_fn)(void *ctx, const uint8_t *wire, size_t len,
                                        const struct sockaddr_storage *from, uint8_t *out,
                                        size_t size);

#define REP_DNSZONE_TCP_MAX_CONNS 512  /* the longest idle goes when one more comes */
#define REP_DNSZONE_TCP_IDLE_MS 10000  /* a connection silent this long is closed */
#define REP_DNSZONE_TCP_QUERY_MAX 4096 /* a longer query closes the connection */

/* Serve DNS over TCP (RFC 7766: two-octet length prefixes, several queries per
 * connection, pipelined) on the non-blocking listening socket lfd, many connections at
 * once from one thread, until *stop is set (seen within 200 ms).  Returns 0, or -1 when
 * the event loop cannot be set up (logged). */
int rep_dnszone_tcp_serve(int lfd, atomic_int *stop, rep_dnszone_answer_fn answer, void *ctx);

#endif
