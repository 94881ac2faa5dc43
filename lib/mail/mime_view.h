/*
 * mime_view.h - reduced views of a message, for receiver-chosen transfer between
 * anchored relays (PROTOCOL.md §12.12): what a receiver takes before it decides whether
 * it wants the whole message.
 *
 * Every view keeps the fields it keeps byte for byte (a DKIM signature over them still
 * verifies, its body hash aside), and is itself a well-formed message.
 */
#ifndef ANCHOR_MAIL_MIME_VIEW_H
#define ANCHOR_MAIL_MIME_VIEW_H

#include <stddef.h>

#include "core/err.h"

enum mail_view {
	MAIL_VIEW_NONE = 0,
	MAIL_VIEW_HEADERS, /* the header section, no body */
	MAIL_VIEW_SIGNERS, /* DKIM-Signature, From, Sender, Date, Message-ID, Subject; no body */
	MAIL_VIEW_HASH,    /* From, Message-ID; no body (the hash travels beside it) */
	MAIL_VIEW_TEXT,    /* the header section and the first text/plain part */
	MAIL_VIEW_FULL,    /* the whole message */
};

#define MAIL_VIEW_DEPTH 4 /* nested multiparts searched for the text part */

/* "headers", "signers", "hash", "text", "full" (any case) -> *out; -1 for anything else. */
int mail_view_parse(const char *name, size_t len, enum mail_view *out);
const char *mail_view_name(enum mail_view v); /* "" for MAIL_VIEW_NONE */

/*
 * The view v of msg (len octets), malloc'd and NUL-terminated, *outlen its length.
 * MAIL_VIEW_TEXT: a message without Content-Type, or text/plain, is whole; a multipart
 * one (with a boundary) keeps the first text/plain part found depth-first, alone between
 * the outer boundary's delimiters; any other keeps no body.  NULL (e: ERR_INTERNAL) only
 * when out of memory, or ERR_INPUT bad_view for MAIL_VIEW_NONE.
 */
char *mail_view_build(const char *msg, size_t len, enum mail_view v, size_t *outlen, struct err *e);

#endif
