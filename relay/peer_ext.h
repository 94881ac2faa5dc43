/*
 * peer_ext.h - the one SMTP extension hook of the inbound sessions (smtp.h's on_ext): the
 * verbs of ANCHOR-DEFER (PROTOCOL.md §12.10) and ANCHOR-PARTIAL (§12.12), which peers.c
 * adds to a session once its client certificate's key is found in anchored_peers.
 */
#ifndef ANCHOR_RELAY_PEER_EXT_H
#define ANCHOR_RELAY_PEER_EXT_H

#include <stddef.h>

struct smtp_session;
struct smtp_reply;

/* DEFER-STATUS and DEFER-WITHDRAW to defer_smtp.c, PARTIAL and FETCH to partial_in.c. */
int relayd_peer_on_ext(void *ctx, struct smtp_session *s, const char *line, size_t len, int phase,
                       struct smtp_reply *r);

#endif
