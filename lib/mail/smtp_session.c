/*
 * smtp_session.c - the SMTP server state machine of smtp.h, without I/O.
 *
 * Input is consumed byte by byte, so the replies never depend on how the
 * client's bytes were split into packets.  A command is handled once its
 * CRLF arrives; after DATA's 354 or BDAT the following bytes are message text
 * (smtp_text.c), and after AUTH's 334 the next line is a base64 response (RFC 4954 §4).
 */
#include "mail/smtp.h"
#include "mail/smtp_session_priv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void out_append(struct smtp_session *s, const char *p, size_t n)
{
	if (s->out_len + n > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 512;
		char *o;

		while (cap < s->out_len + n)
			cap *= 2;
		o = realloc(s->out, cap);
		if (o == NULL) {
			/* nothing sensible can be said: close */
			s->state = ST_CLOSED;
			return;
		}
		s->out = o;
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

static void __attribute__((format(printf, 2, 3)))
out_printf(struct smtp_session *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	out_append(s, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void reply(struct smtp_session *s, int code, const char *status, const char *text)
{
	if (status != NULL && status[0] != '\0')
		out_printf(s, "%d %s %s\r\n", code, status, text);
	else
		out_printf(s, "%d %s\r\n", code, text);
}

/* A reply from a callback: a code outside 200-599 or a CR/LF in it is a bug. */
static void reply_checked(struct smtp_session *s, struct smtp_reply *r)
{
	size_t i;

	if (r->code < 200 || r->code > 599) {
		reply(s, 451, "4.3.0", "Internal error");
		return;
	}
	r->status[sizeof(r->status) - 1] = '\0';
	r->text[sizeof(r->text) - 1] = '\0';
	for (i = 0; r->text[i]; i++)
		if ((unsigned char)r->text[i] < 32 || (unsigned char)r->text[i] == 127)
			r->text[i] = ' ';
	for (i = 0; r->status[i]; i++)
		if (!((r->status[i] >= '0' && r->status[i] <= '9') || r->status[i] == '.'))
			r->status[0] = '\0';
	reply(s, r->code, r->status, r->text);
}

static void set_reply(struct smtp_reply *r, int code, const char *status, const char *text)
{
	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status);
	snprintf(r->text, sizeof(r->text), "%s", text);
}

static void close_with(struct smtp_session *s, int code, const char *status, const char *text)
{
	reply(s, code, status, text);
	s->state = ST_CLOSED;
}

/* A protocol error: too many of them and the client is not worth talking to. */
static void error_reply(struct smtp_session *s, int code, const char *status, const char *text)
{
	reply(s, code, status, text);
	if (++s->errors >= s->cfg.max_errors)
		close_with(s, 421, "4.7.0", "Too many errors, closing connection");
}

static void reset_transaction(struct smtp_session *s)
{
	int had = s->state == ST_MAIL || s->state == ST_RCPT || s->state == ST_DATA;

	s->chunk.in_txn = 0;
	s->nrcpt = 0;
	s->smtputf8 = 0;
	s->text.len = 0;
	if (s->state != ST_INIT && s->state != ST_GREETED && s->state != ST_CLOSED &&
	    s->state != ST_TLS_WAIT)
		s->state = ST_READY;
	if (had && s->cb.on_reset)
		s->cb.on_reset(s->ctx, s);
}

struct smtp_session *smtp_session_new(const struct smtp_config *cfg,
                                      const struct smtp_callbacks *cb, void *ctx, struct err *e)
{
	struct smtp_session *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		err_set(e, ERR_INTERNAL, "nomem", "out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	if (s->cfg.hostname == NULL)
		s->cfg.hostname = "localhost";
	if (s->cfg.max_size == 0)
		s->cfg.max_size = 10 * 1024 * 1024;
	if (s->cfg.max_rcpts == 0)
		s->cfg.max_rcpts = 100;
	if (s->cfg.max_errors == 0)
		s->cfg.max_errors = 20;
	s->text.max = s->cfg.max_size;
	if (cb != NULL)
		s->cb = *cb;
	s->ctx = ctx;
	s->state = ST_INIT;
	return s;
}

void smtp_session_free(struct smtp_session *s)
{
	if (s == NULL)
		return;
	smtp_text_free(&s->text);
	free(s->out);
	free(s->reply_lines);
	/* an AUTH line or password may still be in there */
	explicit_bzero(s, sizeof(*s));
	free(s);
}

void smtp_session_greet(struct smtp_session *s, const struct smtp_reply *r)
{
	struct smtp_reply copy;

	if (s->state != ST_INIT)
		return;
	if (r == NULL || (r->code >= 200 && r->code < 300)) {
		out_printf(s, "220 %s ESMTP\r\n", s->cfg.hostname);
		s->state = ST_GREETED;
		return;
	}
	copy = *r;
	reply_checked(s, &copy);
	s->state = ST_CLOSED;
}

static void send_ehlo(struct smtp_session *s)
{
	out_printf(s, "250-%s\r\n", s->cfg.hostname);
	out_printf(s, "250-PIPELINING\r\n");
	out_printf(s, "250-SIZE %llu\r\n", (unsigned long long)s->cfg.max_size);
	out_printf(s, "250-8BITMIME\r\n");
	out_printf(s, "250-CHUNKING\r\n");
	out_printf(s, "250-SMTPUTF8\r\n");
	out_printf(s, "250-DSN\r\n"); /* RFC 3461: the relay reports to legacy senders */
	if (s->cfg.tls_available && !s->tls_active)
		out_printf(s, "250-STARTTLS\r\n");
	/* RFC 4954 §4 and §14: passwords only travel encrypted, so AUTH is not even offered before
	 */
	if (s->cfg.auth_available && s->tls_active)
		out_printf(s, "250-AUTH PLAIN LOGIN\r\n");
	if (s->tls_active) /* RFC 8689 §3: offered only on a TLS session */
		out_printf(s, "250-REQUIRETLS\r\n");
	for (size_t i = 0; i < s->next; i++)
		out_printf(s, "250-%s\r\n", s->ext[i].keyword);
	out_printf(s, "250 ENHANCEDSTATUSCODES\r\n");
}

static void auth_wipe(struct smtp_session *s)
{
	explicit_bzero(s->auth_pass, sizeof(s->auth_pass));
	if (!s->authed)
		explicit_bzero(s->auth_user, sizeof(s->auth_user));
	s->auth_have_user = 0;
}

/* The credentials' verdict: a refusal counts toward SMTP_AUTH_FAILURES (guessing). */
static void finish_auth(struct smtp_session *s, struct smtp_reply *r)
{
	int ok = r->code >= 200 && r->code < 300;

	s->authed = ok;
	auth_wipe(s);
	reply_checked(s, r);
	/* a temporary failure (454) is ours, not the client's: it does not count */
	if (!ok && r->code >= 500 && ++s->auth_failures >= SMTP_AUTH_FAILURES)
		close_with(s, 421, "4.7.0", "Too many authentication failures, closing connection");
}

/* Apply a decision on s->cmd (or the message) and answer it. */
static void finish(struct smtp_session *s, struct smtp_reply *r)
{
	int ok = r->code >= 200 && r->code < 300;
	enum smtp_verb v = s->pending;

	s->pending = SMTP_NONE;
	switch (v) {
	case SMTP_HELO:
	case SMTP_EHLO:
		if (!ok) {
			reply_checked(s, r);
			break;
		}
		snprintf(s->helo, sizeof(s->helo), "%s", s->cmd.arg);
		s->state = ST_READY;
		if (v == SMTP_EHLO)
			send_ehlo(s);
		else
			out_printf(s, "250 %s\r\n", s->cfg.hostname);
		break;
	case SMTP_MAIL:
		if (ok)
			s->state = ST_MAIL;
		s->smtputf8 = ok && s->cmd.smtputf8; /* read by RCPT and during DATA only */
		reply_checked(s, r);
		break;
	case SMTP_RCPT:
		if (ok) {
			s->nrcpt++;
			s->state = ST_RCPT;
		}
		reply_checked(s, r);
		break;
	case SMTP_EXT:
		reply_checked(s, r);
		break;
	case SMTP_DATA:
		/* the transaction is over either way */
		if (ok && s->reply_lines != NULL) /* the caller's per-recipient lines */
			out_append(s, s->reply_lines, strlen(s->reply_lines));
		smtp_session_reply_lines(s, NULL);
		reply_checked(s, r);
		s->chunk.in_txn = 0;
		s->nrcpt = 0;
		s->text.len = 0;
		s->state = ST_READY;
		break;
	case SMTP_AUTH:
		finish_auth(s, r);
		break;
	default:
		break;
	}
}

typedef int (*decide_fn)(void *, struct smtp_session *, const struct smtp_command *,
                         struct smtp_reply *);

static void ask(struct smtp_session *s, decide_fn fn, struct smtp_reply *r)
{
	s->pending = s->cmd.verb;
	if (fn != NULL && fn(s->ctx, s, &s->cmd, r) == SMTP_PENDING)
		return;
	finish(s, r);
}

static void cmd_helo(struct smtp_session *s)
{
	struct smtp_reply r;

	/* RFC 5321 §4.1.4: a HELO/EHLO mid-session also resets the transaction. */
	reset_transaction(s);
	set_reply(&r, 250, "", "");
	ask(s, s->cb.on_helo, &r);
}

static void cmd_mail(struct smtp_session *s)
{
	struct smtp_reply r;

	if (s->state == ST_GREETED)
		return error_reply(s, 503, "5.5.1", "Send HELO/EHLO first");
	if (s->cfg.auth_required && !s->authed)
		return error_reply(s, 530, "5.7.0", "Authentication required");
	if (s->state != ST_READY)
		return error_reply(s, 503, "5.5.1", "Nested MAIL command");
	if (s->cmd.has_size && s->cmd.size > s->cfg.max_size)
		return reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
	if (s->cmd.requiretls && !s->tls_active)
		return reply(s, 530, "5.7.10", "REQUIRETLS needs a TLS session: STARTTLS first");
	if (s->cmd.path_utf8 && !s->cmd.smtputf8)
		return reply(s, 553, "5.6.7", "Non-ASCII sender address needs SMTPUTF8 (RFC 6531)");
	set_reply(&r, 250, "2.1.0", "Ok");
	ask(s, s->cb.on_mail, &r);
}

static void cmd_rcpt(struct smtp_session *s)
{
	struct smtp_reply r;

	if (s->state != ST_MAIL && s->state != ST_RCPT)
		return error_reply(s, 503, "5.5.1", "Need MAIL before RCPT");
	if (s->nrcpt >= s->cfg.max_rcpts)
		return reply(s, 452, "4.5.3", "Too many recipients");
	if (s->cmd.path_utf8 && !s->smtputf8)
		return reply(s, 553, "5.6.7", "Non-ASCII recipient needs SMTPUTF8 (RFC 6531)");
	set_reply(&r, 250, "2.1.5", "Ok");
	ask(s, s->cb.on_rcpt, &r);
}

static void cmd_data(struct smtp_session *s)
{
	if (s->state == ST_MAIL)
		return error_reply(s, 503, "5.5.1", "Need RCPT before DATA");
	if (s->state != ST_RCPT)
		return error_reply(s, 503, "5.5.1", "Need MAIL before DATA");
	if (s->chunk.in_txn) /* RFC 3030 §2 */
		return error_reply(s, 503, "5.5.1", "DATA not allowed after BDAT in a transaction");
	reply(s, 354, "", "End data with <CR><LF>.<CR><LF>");
	s->state = ST_DATA;
	smtp_text_start(&s->text, s->cfg.max_size);
}

static void cmd_starttls(struct smtp_session *s)
{
	if (!s->cfg.tls_available)
		return error_reply(s, 502, "5.5.1", "Command not implemented");
	if (s->tls_active)
		return error_reply(s, 503, "5.5.1", "TLS already active");
	if (s->state == ST_GREETED)
		return error_reply(s, 503, "5.5.1", "Send EHLO first");
	reset_transaction(s);
	reply(s, 220, "2.0.0", "Ready to start TLS");
	s->state = ST_TLS_WAIT;
	if (s->cb.on_starttls)
		s->cb.on_starttls(s->ctx, s);
}

/* Credentials complete: ask the caller (with the password, which no reply ever carries). */
static void auth_ask(struct smtp_session *s)
{
	struct smtp_reply r;
	const char *mech = s->auth_login ? "LOGIN" : "PLAIN";

	s->state = ST_READY;
	s->pending = SMTP_AUTH;
	set_reply(&r, 235, "2.7.0", "Authentication successful");
	if (s->cb.on_auth == NULL)
		set_reply(&r, 535, "5.7.8", "Authentication credentials invalid");
	else if (s->cb.on_auth(s->ctx, s, mech, s->auth_user, s->auth_pass, &r) == SMTP_PENDING)
		return;
	finish(s, &r);
}

static void auth_refuse(struct smtp_session *s)
{
	struct smtp_reply r;

	s->state = ST_READY;
	s->pending = SMTP_AUTH;
	set_reply(&r, 535, "5.7.8", "Authentication credentials invalid");
	finish(s, &r);
}

/* Copy a decoded user name or password: 1..255 octets, no NUL; user names no controls. */
static int auth_field(char *dst, const unsigned char *p, size_t n, int is_user)
{
	size_t i;

	if (n == 0 || n >= SMTP_AUTH_FIELD_MAX)
		return -1;
	for (i = 0; i < n; i++)
		if (p[i] == 0 || (is_user && (p[i] < 32 || p[i] == 127)))
			return -1;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

/* PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd; no acting for someone else. */
static int auth_plain(struct smtp_session *s, const unsigned char *m, size_t n)
{
	const unsigned char *nul1 = memchr(m, 0, n), *nul2;
	size_t zlen, clen;

	if (nul1 == NULL || (nul2 = memchr(nul1 + 1, 0, n - (size_t)(nul1 + 1 - m))) == NULL)
		return -1;
	zlen = (size_t)(nul1 - m);
	clen = (size_t)(nul2 - nul1 - 1);
	if (auth_field(s->auth_user, nul1 + 1, clen, 1) < 0 ||
	    auth_field(s->auth_pass, nul2 + 1, n - (size_t)(nul2 + 1 - m), 0) < 0)
		return -1;
	if (zlen > 0 && (zlen != clen || strncasecmp((const char *)m, s->auth_user, zlen) != 0))
		return -1;
	return 0;
}

/* One base64 response (the initial one or a line after 334), "*" cancels. */
static void auth_response(struct smtp_session *s, const char *b64, size_t len)
{
	unsigned char buf[SMTP_AUTH_LINE_MAX / 4 * 3];
	long n;

	s->state = ST_READY;
	if (len == 1 && b64[0] == '*') {
		auth_wipe(s);
		return error_reply(s, 501, "5.0.0", "Authentication cancelled");
	}
	n = smtp_base64_decode(b64, len, buf, sizeof(buf));
	if (n < 0) {
		auth_wipe(s);
		return error_reply(s, 501, "5.5.2", "Invalid base64 data");
	}
	if (!s->auth_login) {
		if (auth_plain(s, buf, (size_t)n) < 0)
			auth_refuse(s);
		else
			auth_ask(s);
	} else if (!s->auth_have_user) {
		if (auth_field(s->auth_user, buf, (size_t)n, 1) < 0) {
			auth_refuse(s);
		} else {
			s->auth_have_user = 1;
			s->state = ST_AUTH;
			reply(s, 334, "", "UGFzc3dvcmQ6"); /* "Password:" */
		}
	} else if (auth_field(s->auth_pass, buf, (size_t)n, 0) < 0) {
		auth_refuse(s);
	} else {
		auth_ask(s);
	}
	explicit_bzero(buf, sizeof(buf));
}

static void cmd_auth(struct smtp_session *s)
{
	if (s->state == ST_GREETED)
		return error_reply(s, 503, "5.5.1", "Send EHLO first");
	if (s->authed)
		return error_reply(s, 503, "5.5.1", "Already authenticated");
	if (s->state != ST_READY)
		return error_reply(s, 503, "5.5.1", "AUTH not allowed during a mail transaction");
	if (!s->tls_active)
		return error_reply(s, 538, "5.7.11",
		                   "Encryption required for requested authentication mechanism");
	if (strcmp(s->cmd.mech, "PLAIN") == 0)
		s->auth_login = 0;
	else if (strcmp(s->cmd.mech, "LOGIN") == 0)
		s->auth_login = 1;
	else
		return error_reply(s, 504, "5.5.4", "Unrecognized authentication type");
	s->auth_have_user = 0;
	if (s->cmd.has_initial)
		return auth_response(s, s->cmd.arg, strlen(s->cmd.arg));
	s->state = ST_AUTH;
	/* PLAIN's challenge is empty; LOGIN's is "Username:" */
	reply(s, 334, "", s->auth_login ? "VXNlcm5hbWU6" : "");
}

static void cmd_bdat(struct smtp_session *s, int parsed);

int smtp_session_reply_lines(struct smtp_session *s, const char *lines)
{
	free(s->reply_lines);
	s->reply_lines = lines != NULL ? strdup(lines) : NULL;
	return lines != NULL && s->reply_lines == NULL ? -1 : 0;
}

/* 1 when the line's verb is one of an added extension's. */
static int ext_verb(const struct smtp_session *s, const char *line, size_t len)
{
	for (size_t i = 0; i < s->next; i++)
		if (smtp_verb_in(line, len, s->ext[i].verbs))
			return 1;
	return 0;
}

/* A verb of an added extension: the caller answers it, now or later (smtp_session_decide). */
static void cmd_ext(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_reply r;
	int phase = s->state == ST_RCPT   ? SMTP_EXT_RCPT
	            : s->state == ST_MAIL ? SMTP_EXT_MAIL
	                                  : SMTP_EXT_READY;

	if (s->state == ST_GREETED)
		return error_reply(s, 503, "5.5.1", "Send EHLO first");
	set_reply(&r, 502, "5.5.1", "Command not implemented");
	s->pending = SMTP_EXT;
	if (s->cb.on_ext != NULL && s->cb.on_ext(s->ctx, s, line, len, phase, &r) == SMTP_PENDING)
		return;
	finish(s, &r);
}

static void handle_command(struct smtp_session *s, const char *line, size_t len)
{
	struct err e;
	int opts = s->cfg.auth_available ? SMTP_PARSE_AUTH : 0;

	if (ext_verb(s, line, len))
		return cmd_ext(s, line, len);
	if (smtp_parse_command_opts(line, len, opts, &s->cmd, &e) < 0) {
		if (s->cmd.verb == SMTP_BDAT)
			return cmd_bdat(s, 0); /* its chunk is read before the reply */
		error_reply(s, s->cmd.error.code, s->cmd.error.status, s->cmd.error.text);
		return;
	}
	switch (s->cmd.verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		return cmd_helo(s);
	case SMTP_MAIL:
		return cmd_mail(s);
	case SMTP_RCPT:
		return cmd_rcpt(s);
	case SMTP_DATA:
		return cmd_data(s);
	case SMTP_BDAT:
		return cmd_bdat(s, 1);
	case SMTP_RSET:
		reset_transaction(s);
		return reply(s, 250, "2.0.0", "Ok");
	case SMTP_NOOP:
		return reply(s, 250, "2.0.0", "Ok");
	case SMTP_VRFY:
		return reply(s, 252, "2.5.0",
		             "Cannot VRFY user, but will accept message and attempt delivery");
	case SMTP_HELP:
		return reply(s, 214, "2.0.0", "See RFC 5321");
	case SMTP_STARTTLS:
		return cmd_starttls(s);
	case SMTP_AUTH:
		cmd_auth(s);
		explicit_bzero(s->cmd.arg, sizeof(s->cmd.arg)); /* an initial response */
		return;
	case SMTP_QUIT:
		reset_transaction(s);
		close_with(s, 221, "2.0.0", "Bye");
		if (s->cb.on_quit)
			s->cb.on_quit(s->ctx, s);
		return;
	default:
		return error_reply(s, 500, "5.5.2", "Syntax error, command unrecognized");
	}
}

/* A complete line while ST_AUTH: the response to a 334; any failure ends the exchange. */
static void auth_line(struct smtp_session *s, int overflow, int cr, size_t len)
{
	if (overflow) {
		s->state = ST_READY;
		auth_wipe(s);
		error_reply(s, 500, "5.5.6", "Authentication Exchange line is too long");
	} else if (!cr) {
		s->state = ST_READY;
		auth_wipe(s);
		error_reply(s, 500, "5.5.2", "Syntax error, bare LF received");
	} else {
		auth_response(s, s->line, len - 1);
	}
	explicit_bzero(s->line, sizeof(s->line));
}

/* One byte of a command line. */
static void command_byte(struct smtp_session *s, char c)
{
	size_t max = s->state == ST_AUTH ? SMTP_AUTH_LINE_MAX : SMTP_LINE_MAX;

	if (c == '\n') {
		int cr = s->line_cr, overflow = s->line_overflow;
		size_t len = s->line_len;

		s->line_len = 0;
		s->line_cr = 0;
		s->line_overflow = 0;
		if (s->state == ST_AUTH)
			return auth_line(s, overflow, cr, len);
		if (overflow)
			return error_reply(s, 500, "5.5.2", "Line too long");
		/* RFC 5321 §2.3.8: a bare LF does not end a line; refuse the command. */
		if (!cr)
			return error_reply(s, 500, "5.5.2", "Syntax error, bare LF received");
		return handle_command(s, s->line, len - 1);
	}
	s->line_cr = c == '\r';
	if (s->line_overflow)
		return;
	if (s->line_len + 1 >= max) {
		/* 510 octets plus CRLF is the limit; the CR may still come */
		s->line_overflow = 1;
		return;
	}
	s->line[s->line_len++] = c;
}

static void end_of_message(struct smtp_session *s)
{
	struct smtp_reply r;

	s->state = ST_RCPT; /* until decided; reset afterwards */
	s->pending = SMTP_DATA;
	if (smtp_text_verdict(&s->text, &r) == 0) {
		set_reply(&r, 250, "2.0.0", "Ok: queued");
		if (s->cb.on_data && s->cb.on_data(s->ctx, s, s->text.msg ? s->text.msg : "",
		                                   s->text.len, &r) == SMTP_PENDING)
			return;
	}
	finish(s, &r);
}

/* A BDAT chunk read to its end: its reply, or the message's decision after LAST. */
static void chunk_done(struct smtp_session *s)
{
	struct smtp_reply r;
	int act = smtp_chunk_end(&s->chunk, &s->text, &r);

	if (act == SMTP_CHUNK_LAST)
		return end_of_message(s);
	if (s->chunk.reset_after)
		reset_transaction(s);
	if (act == SMTP_CHUNK_REFUSED && r.code != 552) /* a limit is no protocol error */
		return error_reply(s, r.code, r.status, r.text);
	reply(s, r.code, r.status, r.text);
}

static void cmd_bdat(struct smtp_session *s, int parsed)
{
	enum smtp_chunk_where w = s->state == ST_GREETED ? SMTP_CHUNK_NO_HELO
	                          : s->state == ST_READY ? SMTP_CHUNK_NO_MAIL
	                          : s->state == ST_MAIL  ? SMTP_CHUNK_NO_RCPT
	                                                 : SMTP_CHUNK_TXN;

	if (smtp_chunk_begin(&s->chunk, &s->text, &s->cmd, parsed, w) == SMTP_CHUNK_CLOSE)
		return close_with(s, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
	if (s->chunk.left == 0)
		chunk_done(s);
}

/* Octets of a BDAT chunk: how many of buf it takes (at least one). */
static size_t chunk_bytes(struct smtp_session *s, const char *buf, size_t len)
{
	size_t n = smtp_chunk_take(&s->chunk, &s->text, buf, len);

	if (s->chunk.left == 0)
		chunk_done(s);
	return n;
}

size_t smtp_session_feed(struct smtp_session *s, const char *buf, size_t len)
{
	size_t i;

	if (s->state == ST_INIT && len > 0) {
		/* early talker: a client that does not wait for the greeting */
		close_with(s, 554, "5.5.0", "SMTP protocol violation, input before greeting");
		return len;
	}
	for (i = 0; i < len; i++) {
		if (s->state == ST_CLOSED || s->state == ST_TLS_WAIT)
			return len; /* discarded: nothing after STARTTLS or QUIT counts */
		if (s->pending != SMTP_NONE || s->out_len > SMTP_OUT_HIGH)
			return i;
		if (s->chunk.active)
			i += chunk_bytes(s, buf + i, len - i) - 1;
		else if (s->state != ST_DATA)
			command_byte(s, buf[i]);
		else if (smtp_text_data_byte(&s->text, buf[i]))
			end_of_message(s);
	}
	return len;
}

int smtp_session_decide(struct smtp_session *s, const struct smtp_reply *r)
{
	struct smtp_reply copy;

	if (s->pending == SMTP_NONE || s->state == ST_CLOSED)
		return -1;
	copy = *r;
	finish(s, &copy);
	return 0;
}

int smtp_session_decide_data(struct smtp_session *s, const struct smtp_reply *r, const char *data,
                             size_t len)
{
	if (smtp_session_decide(s, r) < 0)
		return -1;
	if (r->code >= 200 && r->code < 300 && len > 0)
		out_append(s, data, len);
	return 0;
}

int smtp_session_pending(const struct smtp_session *s)
{
	return s->pending != SMTP_NONE;
}

const char *smtp_session_output(const struct smtp_session *s, size_t *len)
{
	*len = s->out_len;
	return s->out;
}

void smtp_session_drain(struct smtp_session *s, size_t n)
{
	if (n >= s->out_len) {
		s->out_len = 0;
		return;
	}
	memmove(s->out, s->out + n, s->out_len - n);
	s->out_len -= n;
}

int smtp_session_starttls_done(struct smtp_session *s)
{
	if (s->state != ST_TLS_WAIT)
		return -1;
	/* RFC 3207 §4.2: discard all knowledge obtained from the client */
	s->tls_active = 1;
	s->helo[0] = '\0';
	s->line_len = 0;
	s->line_cr = s->line_overflow = 0;
	s->nrcpt = 0;
	s->state = ST_GREETED;
	s->authed = 0;
	auth_wipe(s);
	return 0;
}

int smtp_session_closed(const struct smtp_session *s)
{
	return s->state == ST_CLOSED;
}

int smtp_session_in_data(const struct smtp_session *s)
{
	return s->state == ST_DATA || s->chunk.active;
}

int smtp_session_tls_active(const struct smtp_session *s)
{
	return s->tls_active;
}

const char *smtp_session_helo(const struct smtp_session *s)
{
	return s->helo;
}

int smtp_session_smtputf8(const struct smtp_session *s)
{
	return s->smtputf8;
}

const char *smtp_session_auth_user(const struct smtp_session *s)
{
	return s->authed ? s->auth_user : NULL;
}
int smtp_session_add_ext(struct smtp_session *s, const char *keyword, const char *verbs)
{
	for (size_t i = 0; i < s->next; i++)
		if (strcmp(s->ext[i].keyword, keyword) == 0)
			return 0;
	if (s->next >= SMTP_EXT_MAX)
		return -1;
	s->ext[s->next].keyword = keyword;
	s->ext[s->next++].verbs = verbs;
	return 0;
}
