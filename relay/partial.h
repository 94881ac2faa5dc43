/*
 * partial.h - receiver-chosen transfer between anchored relays (PROTOCOL.md §12.12):
 * the ESMTP extension ANCHOR-PARTIAL.
 *
 *   partial_view.c  settings, the Anchor-Partial field (who is a peer: peers.h)
 *   partial_out.c   the sender: the view a receiver asks for, the kept message, FETCH
 *   partial_in.c    the receiver: which view to ask for, the view queued as a partial
 *   partial_fetch.c the receiver: the whole message fetched on the user's request
 *
 * The views themselves are lib/mail/mime_view's.
 */
#ifndef ANCHOR_RELAY_PARTIAL_H
#define ANCHOR_RELAY_PARTIAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "mail/mime_view.h"
#include "relay.h"

#define RELAY_PARTIAL_KEYWORD "ANCHOR-PARTIAL"
#define RELAY_PARTIAL_VERBS "PARTIAL FETCH"
#define RELAY_PARTIAL_FIELD "Anchor-Partial"
#define RELAY_PARTIAL_TOKEN_HEX 64 /* 32 random octets */
#define RELAY_PARTIAL_ID_HEX 32    /* a receiver's record: 16 random octets */

/* What a sender says of a view, in the Anchor-Partial field it puts first. */
struct relay_partial_meta {
	enum mail_view view;
	unsigned long long size; /* octets of the whole message */
	char sha256[65];         /* its SHA-256, lowercase hex */
	char token[RELAY_PARTIAL_TOKEN_HEX + 1];
	char host[64]; /* where to FETCH: an address literal (IPv6 without brackets) */
	uint16_t port;
};

/*
 * The field's value: "view=V; size=N; sha256=H; token=T; fetch=ADDR:PORT" (any order, each
 * once, blanks and folding around the separators).  ERR_INPUT bad_partial (e->msg says
 * what) for anything else: an unknown or repeated key, a view "full", a size that is not a
 * decimal number, hex of the wrong length or case, a fetch that is no address literal.
 */
int relay_partial_meta_parse(const char *value, size_t len, struct relay_partial_meta *out,
                             struct err *e);
/* The whole field, "Anchor-Partial: ...\r\n", malloc'd. */
char *relay_partial_meta_field(const struct relay_partial_meta *m);
/* Lowercase hex of 32-byte digests and random values (2n+1 bytes in out). */
void relay_partial_hex(const uint8_t *in, size_t n, char *out);
/* 1 when s is exactly n lowercase hex digits. */
int relay_partial_is_hex(const char *s, size_t n);

/* ---- the sender (partial_out.c, called by deliver.c on a worker) ---- */

struct relay_dconn;
/*
 * After the recipients were accepted by a server that offers ANCHOR-PARTIAL: PARTIAL, and
 * when the reply asks for a view, the message is kept under state_dir/partial/out for
 * partial_keep_time, bound to peer (the server's anchored_peers name, peers.c), and *view gets what
 * to send instead of it (the Anchor-Partial field and the view; malloc'd).  *view NULL: send the
 * whole message.  RELAY_IO_FAIL when the connection broke.
 */
int relay_partial_offer(const struct relay_settings *s, struct relay_dconn *c, const char *peer,
                        const char *body, size_t len, int seconds, char **view, size_t *vlen);

/* held_sweep.c, on a worker: every kept message past partial_keep_time is deleted; how
 * many. */
unsigned relay_partial_sweep(const struct relay_settings *s);

/* The recipients of a view or of its fetched message as the next hop should see them:
 * each by its tier (the verdicts a, its lists in l), unknown mail into unknown_folder
 * (relay_tier_rcpt).  A malloc'd array of n malloc'd strings (relay_partial_rcpts_free);
 * NULL when out of memory. */
char **relay_partial_rcpts(const struct relay_settings *s, struct relay_lists *l,
                           const struct relay_auth *a, char *const *rcpts, size_t n);
void relay_partial_rcpts_free(char **r, size_t n);

/* A file written whole (temporary, fsync, rename; 0600) and read whole (at most max). */
int relay_partial_file_write(const char *path, const char *data, size_t len, struct err *e);
char *relay_partial_file_read(const char *path, size_t max, size_t *len, struct err *e);

/* ---- the daemon's side (relayd.h) ---- */

struct relayd;
struct relayd_conn;
struct relayd_msg_job;
struct smtp_session;
struct smtp_reply;
/* PARTIAL (partial_in.c) and FETCH (partial_out.c), from relayd_peer_on_ext (peers.c). */
int relayd_partial_on_ext(void *ctx, struct smtp_session *s, const char *line, size_t len,
                          int phase, struct smtp_reply *r);
int relayd_partial_fetch_cmd(struct relayd_conn *c, const char *line, size_t len, int phase,
                             struct smtp_reply *r);
/* The end of a view's BDAT (inbound.c's data_work when c->partial_view): checked, recorded
 * under state_dir/partial/in and queued with its Anchor-Partial field. */
void relayd_partial_view_work(struct relayd_msg_job *j);
/* The daemon whose queue and verifier a fetch uses (main.c, before the control API). */
void relayd_partial_start(struct relayd *d);

/* ---- the receiver's fetch (partial_fetch.c), for the control API ---- */

struct relay_partial_result {
	int http;       /* 200, or the control API's status for the failure */
	char code[32];  /* "fetched", "not_found", "fetch_refused", "hash_mismatch", ... */
	char text[400]; /* what happened, the sender's reply included */
	char queue_id[64];
};
/* Fetch record id's whole message from its sender, check it against the view and queue it
 * for the view's recipients; rcpt non-NULL: only when it is one of them (else 403
 * not_your_message).  Blocking; thread-safe. */
void relayd_partial_fetch(const char *id, const char *rcpt, struct relay_partial_result *out);

#endif
