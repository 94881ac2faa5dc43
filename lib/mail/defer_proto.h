/*
 * defer_proto.h - the wire format of ANCHOR-DEFER, deferred disposition between
 * anchored relays (PROTOCOL.md §12.10): the status tokens, the two commands
 * (DEFER-STATUS, DEFER-WITHDRAW), the per-recipient "accepted for decision" reply
 * line and the status answers.  No I/O; the relay's store is relay/defer.c.
 *
 * A token is "<id>.<mac>": id the 32 lowercase hex digits of the held message,
 * mac the 64 hex digits of HMAC-SHA256(relay secret, id NUL recipient NUL peer).
 * Only the relay that holds the secret can make one, and it names the peer it was
 * issued to: checked against another peer's identity it does not verify.
 */
#ifndef ANCHOR_DEFER_PROTO_H
#define ANCHOR_DEFER_PROTO_H

#include <stddef.h>

#include "core/err.h"

#define DEFER_KEYWORD "ANCHOR-DEFER"              /* the EHLO keyword */
#define DEFER_VERBS "DEFER-STATUS DEFER-WITHDRAW" /* its commands */
#define DEFER_ID_LEN 32                           /* hex digits of a held message's id */
#define DEFER_MAC_LEN 64                          /* hex digits of the HMAC-SHA256 */
#define DEFER_TOKEN_MAX (DEFER_ID_LEN + 1 + DEFER_MAC_LEN + 1)
#define DEFER_SECRET_LEN 32 /* bytes of the relay secret */
#define DEFER_RCPT_MAX 320
#define DEFER_REASON_MAX 160
#define DEFER_WINDOW_MAX 86400 /* the largest interval (seconds) either side accepts */

enum defer_op { DEFER_OP_NONE = 0, DEFER_OP_STATUS, DEFER_OP_WITHDRAW };

enum defer_state {
	DEFER_PENDING = 0, /* held, awaiting the receiver's decision */
	DEFER_ACCEPTED,    /* handed on to the recipient */
	DEFER_REFUSED,     /* will never be delivered */
	DEFER_WITHDRAWN,   /* the sender gave up: deleted */
	DEFER_EXPIRED,     /* no decision before the hold ended: deleted */
};

/*
 * One command line (without CRLF): "DEFER-STATUS <token>" or "DEFER-WITHDRAW
 * <token>", verbs in any case.  1: *op and token set; 0: another verb (not ours);
 * -1: our verb with a bad argument (e ERR_INPUT "defer_syntax").  The token is only
 * checked for its shape here.
 */
int defer_parse_command(const char *line, size_t len, enum defer_op *op,
                        char token[DEFER_TOKEN_MAX], struct err *e);

/* 1 when token has the shape "<32 hex>.<64 hex>" (lowercase); id set (may be NULL). */
int defer_token_split(const char *token, char id[DEFER_ID_LEN + 1]);

/* The token for (id, rcpt, peer) under key; -1 (e set) on a bad id or a crypto error. */
int defer_token_make(const unsigned char key[DEFER_SECRET_LEN], const char *id, const char *rcpt,
                     const char *peer, char out[DEFER_TOKEN_MAX], struct err *e);

/* 1 when token is the one defer_token_make gives for (rcpt, peer); constant-time. */
int defer_token_verify(const unsigned char key[DEFER_SECRET_LEN], const char *token,
                       const char *rcpt, const char *peer);

/* The text of an "accepted for decision" reply line (after "250-2.1.5 "):
 * "<rcpt> DEFERRED <token> <min> <max>". */
struct defer_offer {
	char rcpt[DEFER_RCPT_MAX];
	char token[DEFER_TOKEN_MAX];
	unsigned min, max; /* seconds: ask no sooner than min apart, no later than max */
};
int defer_offer_format(const struct defer_offer *o, char *out, size_t size);
/* 0 and *o, or -1 (e ERR_INPUT "defer_offer") when text is no such line. */
int defer_offer_parse(const char *text, size_t len, struct defer_offer *o, struct err *e);

/* A status answer's text (after "250 2.0.0 "): "PENDING <min> <max>", "ACCEPTED",
 * "REFUSED <reason>", "WITHDRAWN" or "EXPIRED". */
struct defer_status {
	enum defer_state state;
	unsigned min, max;             /* PENDING */
	char reason[DEFER_REASON_MAX]; /* REFUSED; "" otherwise */
};
int defer_status_format(const struct defer_status *st, char *out, size_t size);
int defer_status_parse(const char *text, size_t len, struct defer_status *st, struct err *e);

const char *defer_state_name(enum defer_state s); /* "PENDING", ... */
/* "pending" / "accepted" / ... (any case) into *s; -1 when none. */
int defer_state_parse(const char *name, enum defer_state *s);

#endif
