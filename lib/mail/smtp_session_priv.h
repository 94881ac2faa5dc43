/*
 * smtp_session_priv.h - the state of an SMTP server session, for the files that
 * make up the state machine of smtp.h (smtp_session.c); not an interface.
 */
#ifndef ANCHOR_SMTP_SESSION_PRIV_H
#define ANCHOR_SMTP_SESSION_PRIV_H

#include <stddef.h>

#include "mail/smtp.h"
#include "mail/smtp_text.h"

enum smtp_state {
	ST_INIT,     /* before the greeting */
	ST_GREETED,  /* waiting for HELO/EHLO */
	ST_READY,    /* no transaction */
	ST_MAIL,     /* MAIL accepted */
	ST_RCPT,     /* at least one RCPT accepted */
	ST_DATA,     /* receiving message text */
	ST_TLS_WAIT, /* STARTTLS answered, waiting for the handshake */
	ST_AUTH,     /* AUTH answered 334, waiting for the client's response line */
	ST_CLOSED,
};

struct smtp_session {
	struct smtp_config cfg;
	struct smtp_callbacks cb;
	void *ctx;
	enum smtp_state state;
	int tls_active;
	unsigned errors;
	char helo[SMTP_LINE_MAX];

	/* the command line being received (or an AUTH response, which may be longer) */
	char line[SMTP_AUTH_LINE_MAX];
	size_t line_len;
	int line_cr;       /* the last byte was CR */
	int line_overflow; /* over SMTP_LINE_MAX: discard until LF */

	/* the transaction */
	unsigned nrcpt;
	int smtputf8;            /* its MAIL carried SMTPUTF8 */
	struct smtp_command cmd; /* the command whose decision is pending */
	enum smtp_verb pending;  /* SMTP_NONE, HELO/EHLO, MAIL, RCPT or DATA */

	struct smtp_text text;   /* the message */
	struct smtp_chunk chunk; /* BDAT */

	char *out;
	size_t out_len, out_cap;

	/* AUTH */
	int auth_login;     /* the exchange in progress is LOGIN (else PLAIN) */
	int auth_have_user; /* LOGIN: the user name has been received */
	int authed;
	unsigned auth_failures;
	char auth_user[SMTP_AUTH_FIELD_MAX];
	char auth_pass[SMTP_AUTH_FIELD_MAX];
	char *reply_lines; /* continuation lines for the next message's 2xx, or NULL */
	struct {
		const char *keyword, *verbs;
	} ext[SMTP_EXT_MAX]; /* the caller's extensions (smtp_session_add_ext) */
	size_t next;
};

#endif
