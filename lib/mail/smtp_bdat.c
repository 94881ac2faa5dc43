/*
 * smtp_bdat.c - CHUNKING (RFC 3030): BDAT chunk-size [LAST] on the server.
 *
 * A chunk is exactly chunk-size octets after the command's CRLF, with no
 * dot-stuffing and no terminator.  Every chunk is read to its stated end,
 * also when the command is refused: the octets that follow a BDAT line are
 * message text whatever the reply, and reading them as commands would let
 * message content talk SMTP (RFC 3030 §2: "the receiver-SMTP MUST be
 * prepared to accept and discard additional BDAT chunks").  Only a size that
 * cannot be read leaves the stream undelimited: 501 and the session closes.
 *
 * The message is checked as DATA's is (bare CR or LF, lines over 1000
 * octets: 550 5.6.0) across chunk boundaries, a CRLF split between two
 * chunks included, and answered after LAST like DATA after its terminator.
 * The SIZE limit is checked at each BDAT line: 552 5.3.4 once the chunk is
 * read, and the transaction is over.  LAST ends the message through the same
 * on_data decision as DATA (the relay answers 250 only once the message is
 * durable).  BINARYMIME is not offered: BDAT carries 7BIT and 8BITMIME only.
 */
#include <stdio.h>
#include <string.h>

#include "mail/smtp_priv.h"

void smtp_bdat_reset(struct smtp_session *s)
{
	s->chunk.in_txn = 0;
}

static void refuse(struct smtp_chunk *c, int code, const char *status, const char *text)
{
	c->discard = 1;
	c->refusal.code = code;
	snprintf(c->refusal.status, sizeof(c->refusal.status), "%s", status);
	snprintf(c->refusal.text, sizeof(c->refusal.text), "%s", text);
}

/* The first chunk of a transaction: the message starts empty, as after DATA's 354. */
static void begin_message(struct smtp_session *s)
{
	s->chunk.in_txn = 1;
	s->msg_len = 0;
	s->text_line = 0;
	s->data_cr = 0;
	s->bad_eol = s->long_line = s->too_big = 0;
}

static void chunk_end(struct smtp_session *s)
{
	struct smtp_chunk *c = &s->chunk;
	char text[64];

	c->active = 0;
	if (c->discard) {
		if (c->reset_after)
			smtp_sess_reset(s);
		if (c->refusal.code == 552) /* a limit, not a protocol error */
			return smtp_sess_reply(s, c->refusal.code, c->refusal.status,
			                       c->refusal.text);
		return smtp_sess_error(s, c->refusal.code, c->refusal.status, c->refusal.text);
	}
	if (!c->last) {
		snprintf(text, sizeof(text), "%llu octets received",
		         (unsigned long long)s->cmd.chunk_size);
		return smtp_sess_reply(s, 250, "2.0.0", text);
	}
	if (s->data_cr) /* a CR was the very last octet */
		s->bad_eol = 1;
	if (s->text_line > 0) /* the message's last line gets its CRLF, as DATA's always has */
		smtp_sess_append(s, "\r\n", 2);
	smtp_sess_end_message(s);
}

void smtp_bdat_command(struct smtp_session *s, int parsed)
{
	struct smtp_chunk *c = &s->chunk;
	const struct smtp_command *cmd = &s->cmd;

	if (!cmd->chunk_known)
		return smtp_sess_close(s, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
	memset(&c->refusal, 0, sizeof(c->refusal));
	c->active = 1;
	c->left = cmd->chunk_size;
	c->last = cmd->chunk_last;
	c->discard = c->reset_after = 0;
	if (!parsed) {
		refuse(c, cmd->error.code, cmd->error.status, cmd->error.text);
		c->reset_after = c->in_txn;
	} else if (s->state == ST_GREETED) {
		refuse(c, 503, "5.5.1", "Send HELO/EHLO first");
	} else if (s->state == ST_READY) {
		refuse(c, 503, "5.5.1", "Need MAIL before BDAT");
	} else if (s->state == ST_MAIL) {
		refuse(c, 503, "5.5.1", "Need RCPT before BDAT");
	} else {
		if (!c->in_txn)
			begin_message(s);
		if (cmd->chunk_size > s->cfg.max_size - s->msg_len) {
			refuse(c, 552, "5.3.4", "Message size exceeds fixed limit");
			c->reset_after = 1;
		}
	}
	if (c->left == 0)
		chunk_end(s);
}

/* The line checks of DATA (smtp_session.c's data_byte), without dot-stuffing. */
static void scan(struct smtp_session *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (s->data_cr) {
			s->data_cr = 0;
			if (ch == '\n') {
				s->text_line = 0;
				continue;
			}
			s->bad_eol = 1;
			s->text_line++;
		}
		if (ch == '\r') {
			s->data_cr = 1;
			continue;
		}
		if (ch == '\n')
			s->bad_eol = 1;
		if (++s->text_line + 2 > SMTP_TEXT_LINE_MAX)
			s->long_line = 1;
	}
}

size_t smtp_bdat_feed(struct smtp_session *s, const char *buf, size_t len)
{
	struct smtp_chunk *c = &s->chunk;
	size_t n = c->left < len ? (size_t)c->left : len;

	if (!c->discard) {
		scan(s, buf, n);
		smtp_sess_append(s, buf, n);
	}
	c->left -= n;
	if (c->left == 0)
		chunk_end(s);
	return n;
}
