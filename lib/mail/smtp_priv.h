/*
 * smtp_priv.h - what smtp_session.c and smtp_bdat.c share; not an interface.
 *
 * smtp_session.c owns the session (commands, DATA, AUTH, replies);
 * smtp_bdat.c reads BDAT chunks (RFC 3030) into the same message buffer and
 * ends the message through the same decision as DATA.
 */
#ifndef ANCHOR_SMTP_PRIV_H
#define ANCHOR_SMTP_PRIV_H

#include "mail/smtp.h"

/* A BDAT transaction and the chunk being read. */
struct smtp_chunk {
	uint64_t left;             /* octets of the current chunk still to come */
	int active;                /* a chunk is being read */
	int last;                  /* ... and it carried LAST */
	int discard;               /* ... and it is refused: read and dropped */
	struct smtp_reply refusal; /* the reply once a refused chunk is read */
	int reset_after;           /* ... and its refusal ends the transaction */
	int in_txn;                /* the transaction has had a BDAT: DATA is refused */
};

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
	struct smtp_command cmd; /* the command whose decision is pending */
	enum smtp_verb pending;  /* SMTP_NONE, HELO/EHLO, MAIL, RCPT or DATA */

	/* message text */
	char *msg;
	size_t msg_len, msg_cap;
	size_t text_line; /* octets in the current line */
	int at_bol, dot_line, data_cr;
	int bad_eol, long_line, too_big;

	char *out;
	size_t out_len, out_cap;

	/* BDAT (smtp_bdat.c) */
	struct smtp_chunk chunk;

	/* AUTH */
	int auth_login;     /* the exchange in progress is LOGIN (else PLAIN) */
	int auth_have_user; /* LOGIN: the user name has been received */
	int authed;
	unsigned auth_failures;
	char auth_user[SMTP_AUTH_FIELD_MAX];
	char auth_pass[SMTP_AUTH_FIELD_MAX];
};

/* smtp_session.c, for smtp_bdat.c */
void smtp_sess_reply(struct smtp_session *s, int code, const char *status, const char *text);
void smtp_sess_error(struct smtp_session *s, int code, const char *status, const char *text);
void smtp_sess_close(struct smtp_session *s, int code, const char *status, const char *text);
void smtp_sess_reset(struct smtp_session *s);
/* Append message octets (too_big once over the limit); end the message (the on_data decision). */
void smtp_sess_append(struct smtp_session *s, const char *p, size_t n);
void smtp_sess_end_message(struct smtp_session *s);

/* smtp_bdat.c */
void smtp_bdat_command(struct smtp_session *s, int parsed); /* after the BDAT line */
size_t smtp_bdat_feed(struct smtp_session *s, const char *buf, size_t len);
void smtp_bdat_reset(struct smtp_session *s); /* the transaction is over */

#endif
