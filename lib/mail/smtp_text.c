/*
 * smtp_text.c - the message text of a transaction: DATA's stream and BDAT's
 * chunks (RFC 3030), into one buffer under the same checks.
 *
 * DATA: only CRLF "." CRLF ends the message (no bare-LF terminator: SMTP
 * smuggling), the first dot of a line is dropped (RFC 5321 §4.5.2).
 *
 * BDAT: a chunk is exactly chunk-size octets after the command's CRLF, with
 * no dot-stuffing and no terminator.  Every chunk is read to its stated end,
 * also when the command is refused: the octets that follow a BDAT line are
 * message text whatever the reply, and reading them as commands would let
 * message content talk SMTP (RFC 3030 §2: the receiver "MUST be prepared to
 * accept and discard additional BDAT chunks").  Only a size that cannot be
 * read leaves the stream undelimited: the session answers 501 and closes.
 * The SIZE limit is checked at each BDAT line: 552 5.3.4 once the chunk is
 * read, and the transaction is over.  BINARYMIME is not offered: BDAT
 * carries 7BIT and 8BITMIME text only.
 *
 * Both: a bare CR or LF or a line over 1000 octets refuses the message with
 * 550 5.6.0, answered at its end (the terminator, LAST), a CRLF split
 * between two chunks being a CRLF.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/smtp_text.h"

static void set(struct smtp_reply *r, int code, const char *status, const char *text)
{
	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status);
	snprintf(r->text, sizeof(r->text), "%s", text);
}

void smtp_text_start(struct smtp_text *t, uint64_t max)
{
	t->len = 0;
	t->max = max;
	t->line = 0;
	t->at_bol = 1;
	t->dot_line = t->cr = 0;
	t->bad_eol = t->long_line = t->too_big = 0;
}

void smtp_text_append(struct smtp_text *t, const char *p, size_t n)
{
	if (t->too_big)
		return;
	if (t->len + n > t->max) {
		/* keep reading to the end, keep nothing */
		t->too_big = 1;
		return;
	}
	if (t->len + n > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		char *m;

		while (cap < t->len + n)
			cap *= 2;
		m = realloc(t->msg, cap);
		if (m == NULL) {
			t->too_big = 1;
			return;
		}
		t->msg = m;
		t->cap = cap;
	}
	memcpy(t->msg + t->len, p, n);
	t->len += n;
}

static void text_char(struct smtp_text *t, char c)
{
	if (++t->line + 2 > SMTP_TEXT_LINE_MAX)
		t->long_line = 1;
	smtp_text_append(t, &c, 1);
}

/* A bare LF or CR never delimits a line here (that ambiguity is SMTP smuggling): it marks
 * the message for rejection. */
int smtp_text_data_byte(struct smtp_text *t, char c)
{
	if (t->cr) {
		t->cr = 0;
		if (c == '\n') {
			if (t->dot_line && t->line == 0)
				return 1;
			smtp_text_append(t, "\r\n", 2);
			t->line = 0;
			t->at_bol = 1;
			t->dot_line = 0;
			return 0;
		}
		t->bad_eol = 1;
		text_char(t, '\r');
	}
	if (c == '\r') {
		t->cr = 1;
		return 0;
	}
	if (c == '\n')
		t->bad_eol = 1;
	if (t->at_bol && c == '.') {
		/* dot-unstuffing (§4.5.2): drop the first dot of a line */
		t->at_bol = 0;
		t->dot_line = 1;
		t->line = 0;
		return 0;
	}
	if (t->at_bol)
		t->dot_line = 0;
	t->at_bol = 0;
	if (t->dot_line && t->line == 0)
		t->line = 1; /* the dropped dot counts toward the line limit */
	text_char(t, c);
	return 0;
}

int smtp_text_verdict(const struct smtp_text *t, struct smtp_reply *r)
{
	if (t->too_big)
		set(r, 552, "5.3.4", "Message size exceeds fixed limit");
	else if (t->bad_eol)
		set(r, 550, "5.6.0", "Message contains bare CR or LF (RFC 5321 2.3.8)");
	else if (t->long_line)
		set(r, 550, "5.6.0", "Message has a line longer than 1000 octets");
	else
		return 0;
	return -1;
}

void smtp_text_free(struct smtp_text *t)
{
	free(t->msg);
	t->msg = NULL;
	t->len = t->cap = 0;
}

static void refuse(struct smtp_chunk *c, int code, const char *status, const char *text)
{
	c->discard = 1;
	set(&c->refusal, code, status, text);
}

int smtp_chunk_begin(struct smtp_chunk *c, struct smtp_text *t, const struct smtp_command *cmd,
                     int parsed, enum smtp_chunk_where where)
{
	if (!cmd->chunk_known)
		return SMTP_CHUNK_CLOSE;
	memset(&c->refusal, 0, sizeof(c->refusal));
	c->active = 1;
	c->left = c->size = cmd->chunk_size;
	c->last = cmd->chunk_last;
	c->discard = c->reset_after = 0;
	if (!parsed) {
		refuse(c, cmd->error.code, cmd->error.status, cmd->error.text);
		c->reset_after = c->in_txn;
	} else if (where == SMTP_CHUNK_NO_HELO) {
		refuse(c, 503, "5.5.1", "Send HELO/EHLO first");
	} else if (where == SMTP_CHUNK_NO_MAIL) {
		refuse(c, 503, "5.5.1", "Need MAIL before BDAT");
	} else if (where == SMTP_CHUNK_NO_RCPT) {
		refuse(c, 503, "5.5.1", "Need RCPT before BDAT");
	} else {
		if (!c->in_txn) {
			c->in_txn = 1;
			smtp_text_start(t, t->max);
		}
		if (cmd->chunk_size > t->max - t->len) {
			refuse(c, 552, "5.3.4", "Message size exceeds fixed limit");
			c->reset_after = 1;
		}
	}
	return SMTP_CHUNK_READ;
}

/* DATA's line checks, without dot-stuffing. */
static void scan(struct smtp_text *t, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (t->cr) {
			t->cr = 0;
			if (ch == '\n') {
				t->line = 0;
				continue;
			}
			t->bad_eol = 1;
			t->line++;
		}
		if (ch == '\r') {
			t->cr = 1;
			continue;
		}
		if (ch == '\n')
			t->bad_eol = 1;
		if (++t->line + 2 > SMTP_TEXT_LINE_MAX)
			t->long_line = 1;
	}
}

size_t smtp_chunk_take(struct smtp_chunk *c, struct smtp_text *t, const char *buf, size_t len)
{
	size_t n = c->left < len ? (size_t)c->left : len;

	if (!c->discard) {
		scan(t, buf, n);
		smtp_text_append(t, buf, n);
	}
	c->left -= n;
	return n;
}

int smtp_chunk_end(struct smtp_chunk *c, struct smtp_text *t, struct smtp_reply *r)
{
	char text[64];

	c->active = 0;
	if (c->discard) {
		*r = c->refusal;
		return SMTP_CHUNK_REFUSED;
	}
	if (!c->last) {
		snprintf(text, sizeof(text), "%llu octets received", (unsigned long long)c->size);
		set(r, 250, "2.0.0", text);
		return SMTP_CHUNK_MORE;
	}
	if (t->cr) /* a CR was the very last octet */
		t->bad_eol = 1;
	if (t->line > 0) /* the last line gets its CRLF, as DATA's always has */
		smtp_text_append(t, "\r\n", 2);
	return SMTP_CHUNK_LAST;
}
