/*
 * smtp.h - the server side of SMTP (RFC 5321) as a protocol engine without I/O.
 *
 * Two layers:
 *  - smtp_parse_command(): one command line -> struct smtp_command, or the
 *    exact reply an invalid line deserves (500/501/502/555/552).
 *  - struct smtp_session: bytes in (smtp_session_feed), replies out (an
 *    output buffer the caller drains), and decisions asked of the caller
 *    through callbacks (HELO, MAIL, RCPT, end of DATA).  A callback may answer
 *    at once or return SMTP_PENDING and answer later with
 *    smtp_session_decide(); meanwhile the session consumes no input, so
 *    pipelined commands are always answered in order.
 *
 * ESMTP extensions: PIPELINING, 8BITMIME, SIZE, STARTTLS, ENHANCEDSTATUSCODES, DSN
 * (RFC 3461: RET, ENVID, NOTIFY, ORCPT checked by mail/dsn.h, 501 5.5.4 when malformed or
 * repeated),
 * CHUNKING (RFC 3030: BDAT, smtp_text.c), REQUIRETLS (RFC 8689; only on a TLS
 * session, MAIL ... REQUIRETLS in clear is 530 5.7.10) and AUTH (RFC 4954: PLAIN, RFC 4616, and
 * LOGIN) when the config enables it. Rules enforced (see smtp_session.c for the why of each):
 *  - command order (503 5.5.1), 512-octet command lines (500 5.5.2),
 *    bare LF or CR in a command line (500 5.5.2, RFC 5321 §2.3.8);
 *  - in DATA: only CRLF "." CRLF ends the message (no bare-LF terminator:
 *    SMTP smuggling), dot-unstuffing, a bare LF or CR rejects the message
 *    with 550 5.6.0, a line over 1000 octets with 550 5.6.0, a message over
 *    the SIZE limit with 552 5.3.4, all answered after the terminator;
 *  - BDAT: the same checks on the chunks' octets (across chunk boundaries),
 *    answered after the chunk that shows the fault; every chunk is read to
 *    its stated end even when refused (503 out of order or mixed with DATA,
 *    552 5.3.4 over the SIZE limit); a size that cannot be read: 501, close;
 *  - input before the greeting (early talker): 554 5.5.0 and close;
 *  - bytes after STARTTLS in the same read are discarded (CVE-2011-0411);
 *  - at most max_rcpts recipients (452 4.5.3), max_errors errors (421);
 *  - AUTH only over TLS (538 5.7.11 in clear, not advertised before STARTTLS),
 *    once per session (503), outside a transaction (503), SMTP_AUTH_FAILURES
 *    refused credentials close the session (421); auth_required: MAIL before
 *    a successful AUTH is 530 5.7.0.  Passwords never appear in a reply and
 *    are wiped from the session's memory once decided.
 */
#ifndef ANCHOR_SMTP_H
#define ANCHOR_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "mail/dsn.h"

#define SMTP_LINE_MAX 512        /* command line including CRLF (RFC 5321 §4.5.3.1.4) */
#define SMTP_TEXT_LINE_MAX 1000  /* DATA line including CRLF (§4.5.3.1.6) */
#define SMTP_PATH_MAX 256        /* path including the angle brackets (§4.5.3.1.3) */
#define SMTP_LOCAL_MAX 64        /* local part (§4.5.3.1.1) */
#define SMTP_DOMAIN_MAX 255      /* domain (§4.5.3.1.2) */
#define SMTP_OUT_HIGH 65536      /* feed stops consuming while this much output is pending */
#define SMTP_AUTH_LINE_MAX 12288 /* an AUTH response line including CRLF (RFC 4954 §4) */
#define SMTP_AUTH_FIELD_MAX 256  /* user and password, with their NUL (RFC 4616: 255 octets) */
#define SMTP_AUTH_FAILURES 3     /* refused credentials before 421 and close */

enum smtp_verb {
	SMTP_NONE = 0,
	SMTP_HELO,
	SMTP_EHLO,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_QUIT,
	SMTP_VRFY,
	SMTP_STARTTLS,
	SMTP_HELP,
	SMTP_AUTH, /* only with SMTP_PARSE_AUTH */
	SMTP_BDAT, /* RFC 3030 */
	SMTP_EXT,  /* a verb of an added extension (smtp_session_add_ext), served by on_ext */
};

enum smtp_body {
	SMTP_BODY_NONE = 0, /* no BODY= parameter */
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
};

/* A reply: code, enhanced status (RFC 3463, may be empty) and one line of text. */
struct smtp_reply {
	int code;
	char status[16];
	char text[200];
};

struct smtp_command {
	enum smtp_verb verb;
	/* HELO/EHLO: the domain or address literal; VRFY/HELP/NOOP: the argument. */
	char arg[SMTP_LINE_MAX];
	/* MAIL/RCPT: the mailbox without brackets or source route; "" for <>. */
	char path[SMTP_PATH_MAX];
	int null_path;  /* MAIL FROM:<> */
	int has_size;   /* MAIL ... SIZE=n given */
	int requiretls; /* MAIL ... REQUIRETLS (RFC 8689) */
	uint64_t size;  /* its value */
	enum smtp_body body;
	int smtputf8;  /* MAIL ... SMTPUTF8 (RFC 6531 §3.4) */
	int path_utf8; /* the path holds UTF-8 (its domain written in A-labels) */
	/* DSN (RFC 3461): MAIL's RET and ENVID, RCPT's NOTIFY (DSN_NOTIFY_*, 0: not
	 * given) and ORCPT; ENVID and ORCPT as sent (xtext), "" when not given. */
	enum dsn_ret dsn_ret;
	char dsn_envid[DSN_ENVID_MAX + 1];
	unsigned dsn_notify;
	char dsn_orcpt[DSN_ORCPT_MAX + 1];
	/* AUTH: the mechanism (upper case) and the initial response, still base64;
	 * "=" (an empty response) is has_initial with initial "". */
	char mech[24];
	int has_initial;
	/* BDAT: the chunk's size (chunk_known: it could be read, also when the
	 * command is refused for another reason) and its LAST marker. */
	uint64_t chunk_size;
	int chunk_known;
	int chunk_last;
	/* On failure: the reply the client gets (e.g. 501 5.1.7 ...). */
	struct smtp_reply error;
};

/*
 * Parse one command line, without its CRLF.  Verbs are case-insensitive.
 * Returns 0 and fills out, or -1 with out->error set to the reply to send
 * and e set (ERR_INPUT, code "smtp_<reply code>").  A known but unsupported
 * verb (EXPN, AUTH, BDAT, ...) is 502; an unknown one 500.
 */
int smtp_parse_command(const char *line, size_t len, struct smtp_command *out, struct err *e);

/*
 * The same with options: SMTP_PARSE_AUTH parses "AUTH mechanism
 * [initial-response]" (RFC 4954 §4) instead of answering it 502: the
 * mechanism in mech, the initial response (base64 or "=") in arg.
 */
#define SMTP_PARSE_AUTH 1
int smtp_parse_command_opts(const char *line, size_t len, int opts, struct smtp_command *out,
                            struct err *e);

/*
 * Strict base64 (RFC 4648 §4, padded, no blanks) into out (at most cap
 * octets).  Returns the decoded length or -1.  "" decodes to 0 octets.
 */
long smtp_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* 1 when the line's first word is one of list (space-separated verbs; any case). */
int smtp_verb_in(const char *line, size_t len, const char *list);

/* Syntax checks, exposed for the relay and the tests.  Return 1 if valid. */
int smtp_domain_valid(const char *s, size_t len);
int smtp_address_literal_valid(const char *s, size_t len); /* "[...]" */
int smtp_mailbox_valid(const char *s, size_t len);         /* local@domain */

/* Decision callbacks return one of these. */
#define SMTP_DECIDED 0 /* reply filled in now */
#define SMTP_PENDING 1 /* the caller answers later with smtp_session_decide() */

struct smtp_session;

/*
 * Every callback may be NULL (accept).  The reply is pre-filled with the
 * default acceptance; a decision callback overwrites it to refuse (e.g.
 * 450 4.2.0 or 550 5.1.1).  Any 2xx accepts, anything else refuses.
 */
struct smtp_callbacks {
	int (*on_helo)(void *ctx, struct smtp_session *s, const struct smtp_command *c,
	               struct smtp_reply *r);
	int (*on_mail)(void *ctx, struct smtp_session *s, const struct smtp_command *c,
	               struct smtp_reply *r);
	int (*on_rcpt)(void *ctx, struct smtp_session *s, const struct smtp_command *c,
	               struct smtp_reply *r);
	/* msg: the dot-unstuffed message with CRLF line ends, valid until decided. */
	int (*on_data)(void *ctx, struct smtp_session *s, const char *msg, size_t len,
	               struct smtp_reply *r);
	/* "220 Ready to start TLS" is in the output; start the handshake after it. */
	void (*on_starttls)(void *ctx, struct smtp_session *s);
	void (*on_quit)(void *ctx, struct smtp_session *s);
	/* The current transaction is abandoned (RSET, HELO/EHLO, STARTTLS). */
	void (*on_reset)(void *ctx, struct smtp_session *s);
	/*
	 * AUTH credentials (mech "PLAIN" or "LOGIN"), valid until decided: the
	 * reply is pre-filled with 235 2.7.0; refuse with 535 5.7.8 (bad
	 * credentials) or 454 4.7.0 (temporary).  Unlike the others, a NULL
	 * on_auth refuses every credential.  Never put the password in r.
	 */
	int (*on_auth)(void *ctx, struct smtp_session *s, const char *mech, const char *user,
	               const char *pass, struct smtp_reply *r);
	/*
	 * The one hook of the caller's extensions (smtp_session_add_ext: the relay's
	 * ANCHOR-DEFER and ANCHOR-PARTIAL, added once the peer's TLS client key is checked):
	 * a command whose verb is one of their verbs (line without CRLF), after HELO/EHLO
	 * (before: 503 5.5.1); phase says where the transaction is (SMTP_EXT_*).  The reply
	 * is pre-filled with 502 5.5.1; the session's state is left as it is.  Return
	 * SMTP_DECIDED with r filled, or SMTP_PENDING and answer with smtp_session_decide().
	 * NULL: every such verb is 502.  A verb no extension added is 500 5.5.2 as always.
	 */
	int (*on_ext)(void *ctx, struct smtp_session *s, const char *line, size_t len, int phase,
	              struct smtp_reply *r);
};

#define SMTP_EXT_READY 0 /* no transaction */
#define SMTP_EXT_MAIL 1  /* MAIL accepted, no recipient yet */
#define SMTP_EXT_RCPT 2  /* at least one recipient accepted */

struct smtp_config {
	const char *hostname; /* our name in the greeting and EHLO */
	uint64_t max_size;    /* message size limit, advertised as SIZE; 0: 10 MiB */
	unsigned max_rcpts;   /* recipients per message; 0: 100 */
	unsigned max_errors;  /* protocol errors before 421 and close; 0: 20 */
	int tls_available;    /* advertise and accept STARTTLS */
	int auth_available;   /* accept AUTH (over TLS only; advertised once TLS is active) */
	int auth_required;    /* MAIL needs a successful AUTH first (530 5.7.0) */
};

/* A new session; cb and ctx are kept.  NULL on allocation failure. */
struct smtp_session *smtp_session_new(const struct smtp_config *cfg,
                                      const struct smtp_callbacks *cb, void *ctx, struct err *e);
void smtp_session_free(struct smtp_session *s);

/*
 * Send the greeting: r NULL for "220 <hostname> ESMTP", or a refusal
 * (e.g. 554 5.7.1 after a reputation block) after which the session closes.
 * Input fed before this call is an early talker: 554 5.5.0 and close.
 */
void smtp_session_greet(struct smtp_session *s, const struct smtp_reply *r);

/*
 * Feed received bytes.  Returns how many were consumed; the caller keeps
 * the rest and feeds them again later.  Consumption stops while a decision
 * is pending and while more than SMTP_OUT_HIGH octets of output wait.  Once
 * the session is closed, or is waiting for the TLS handshake, every byte is
 * consumed and discarded (STARTTLS command injection).
 */
size_t smtp_session_feed(struct smtp_session *s, const char *buf, size_t len);

/* Answer a pending decision (see SMTP_PENDING).  -1 if none is pending. */
int smtp_session_decide(struct smtp_session *s, const struct smtp_reply *r);
/* The same, and when r is 2xx, len octets of data sent right after the reply (an
 * extension's payload, e.g. a FETCHed message). */
int smtp_session_decide_data(struct smtp_session *s, const struct smtp_reply *r, const char *data,
                             size_t len);
int smtp_session_pending(const struct smtp_session *s);

/* Pending output, and how much of it the caller has written. */
const char *smtp_session_output(const struct smtp_session *s, size_t *len);
void smtp_session_drain(struct smtp_session *s, size_t n);

/*
 * The TLS handshake after STARTTLS succeeded: the session starts afresh
 * (RFC 3207 §4.2: forget HELO and any transaction), STARTTLS is no longer
 * offered.  -1 if no STARTTLS was in progress.
 */
int smtp_session_starttls_done(struct smtp_session *s);

int smtp_session_closed(const struct smtp_session *s);  /* flush the output, then close */
int smtp_session_in_data(const struct smtp_session *s); /* a message is being received */
int smtp_session_tls_active(const struct smtp_session *s);
const char *smtp_session_helo(const struct smtp_session *s); /* "" before HELO/EHLO */
/* The transaction's MAIL carried SMTPUTF8 (RFC 6531): UTF-8 may be in its envelope
 * and header fields. */
int smtp_session_smtputf8(const struct smtp_session *s);
/* The identity a successful AUTH established, NULL before (or without) one. */
const char *smtp_session_auth_user(const struct smtp_session *s);
#define SMTP_EXT_MAX 4 /* extensions one session can add */
/* One more extension, once the peer is known: its EHLO keyword and its verbs (space-
 * separated, upper case; both static strings), offered from the next EHLO on, the verbs
 * going to on_ext.  The same keyword again changes nothing.  -1 when SMTP_EXT_MAX are
 * added already. */
int smtp_session_add_ext(struct smtp_session *s, const char *keyword, const char *verbs);
/* Whole continuation lines ("250-2.1.5 ...\r\n" each, the caller's to make well-formed)
 * sent before the 2xx that answers the current message, dropped if it is refused; NULL
 * clears them.  -1 when out of memory. */
int smtp_session_reply_lines(struct smtp_session *s, const char *lines);

#endif
