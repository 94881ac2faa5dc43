/*
 * smtp_text.h - the message text of an SMTP transaction, for smtp_session.c;
 * not an interface.
 *
 * smtp_text.c holds the message being received and knows its rules: DATA's
 * dot-terminated, dot-stuffed stream and BDAT's length-delimited chunks
 * (RFC 3030), the same line checks over both, which BDAT is refused and
 * with what.  The session owns the replies and the decisions and acts on
 * what these functions return.
 */
#ifndef ANCHOR_SMTP_TEXT_H
#define ANCHOR_SMTP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "mail/smtp.h"

struct smtp_text {
	char *msg;
	size_t len, cap;
	uint64_t max; /* the SIZE limit */
	size_t line;  /* octets in the current line */
	int at_bol, dot_line, cr;
	int bad_eol, long_line, too_big;
};

/* A BDAT transaction and the chunk being read. */
struct smtp_chunk {
	uint64_t left;             /* octets of the current chunk still to come */
	uint64_t size;             /* its stated size */
	int active;                /* a chunk is being read */
	int last;                  /* ... it carried LAST */
	int discard;               /* ... it is refused: read and dropped */
	int reset_after;           /* ... and its refusal ends the transaction */
	struct smtp_reply refusal; /* the reply once a refused chunk is read */
	int in_txn;                /* the transaction has had a BDAT: DATA is refused */
};

/* An empty message (after DATA's 354, at a transaction's first BDAT). */
void smtp_text_start(struct smtp_text *t, uint64_t max);
/* Append octets; over the limit (or out of memory) too_big is set and nothing kept. */
void smtp_text_append(struct smtp_text *t, const char *p, size_t n);
/* One octet of DATA's stream: 1 when it completed CRLF "." CRLF. */
int smtp_text_data_byte(struct smtp_text *t, char c);
/* The complete message: 0 if acceptable, else -1 with r the refusal (552, 550). */
int smtp_text_verdict(const struct smtp_text *t, struct smtp_reply *r);
void smtp_text_free(struct smtp_text *t);

/* Where the session stands when a BDAT line arrives. */
enum smtp_chunk_where {
	SMTP_CHUNK_NO_HELO,
	SMTP_CHUNK_NO_MAIL,
	SMTP_CHUNK_NO_RCPT,
	SMTP_CHUNK_TXN, /* MAIL and at least one RCPT accepted */
};

/* What the session does next. */
#define SMTP_CHUNK_CLOSE (-1) /* the size cannot be read: 501 and close */
#define SMTP_CHUNK_READ 0     /* read the chunk (smtp_chunk_take) */
#define SMTP_CHUNK_REFUSED 2  /* the chunk ended refused: reply (a 552 is no protocol error) */
#define SMTP_CHUNK_MORE 3     /* the chunk ended, more to come: reply */
#define SMTP_CHUNK_LAST 4     /* the message is complete: its verdict, the on_data decision */

/* After a BDAT line (parsed: 0 when smtp_parse_command refused it). */
int smtp_chunk_begin(struct smtp_chunk *c, struct smtp_text *t, const struct smtp_command *cmd,
                     int parsed, enum smtp_chunk_where where);
/* How many octets at buf belong to the chunk; they go into t unless it is refused. */
size_t smtp_chunk_take(struct smtp_chunk *c, struct smtp_text *t, const char *buf, size_t len);
/* Once left is 0: REFUSED, MORE (r filled) or LAST. */
int smtp_chunk_end(struct smtp_chunk *c, struct smtp_text *t, struct smtp_reply *r);

#endif
