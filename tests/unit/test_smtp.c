/*
 * test_smtp.c - the SMTP command parser and the session engine.
 *
 * Conversations are tables of client bytes -> expected server bytes and
 * callback events; each is replayed whole, one byte at a time, and split in
 * two at every position, and must give the same result every time.  AUTH
 * conversations (RFC 4954) start after a completed STARTTLS unless they test
 * the clear-text refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/smtp.h"

/* ---- parser ---- */

struct parse_case {
	const char *line;
	int code; /* 0: parses */
	enum smtp_verb verb;
	const char *path;
};

static const struct parse_case parse_cases[] = {
    {"EHLO client.example", 0, SMTP_EHLO, NULL},
    {"ehlo client.example", 0, SMTP_EHLO, NULL},
    {"HELO [192.0.2.1]", 0, SMTP_HELO, NULL},
    {"EHLO [IPv6:2001:db8::1]", 0, SMTP_EHLO, NULL},
    {"EHLO [x-tag:abc]", 0, SMTP_EHLO, NULL},
    {"EHLO [192.0.2.256]", 501, 0, NULL},
    {"EHLO [IPv6:zz::1]", 501, 0, NULL},
    {"EHLO", 501, 0, NULL},
    {"EHLO -bad.example", 501, 0, NULL},
    {"EHLO bad-.example", 501, 0, NULL},
    {"EHLO a..example", 501, 0, NULL},
    {"EHLO under_score.example", 501, 0, NULL},
    {"MAIL FROM:<a@b.example>", 0, SMTP_MAIL, "a@b.example"},
    {"mail from:<a@b.example>", 0, SMTP_MAIL, "a@b.example"},
    {"MAIL FROM: <a@b.example>", 0, SMTP_MAIL, "a@b.example"},
    {"MAIL FROM:<>", 0, SMTP_MAIL, ""},
    {"MAIL FROM:<\"x y>z\"@b.example>", 0, SMTP_MAIL, "\"x y>z\"@b.example"},
    {"MAIL FROM:<a@[192.0.2.1]>", 0, SMTP_MAIL, "a@[192.0.2.1]"},
    {"MAIL FROM:<a.b+c@b.example> SIZE=100 BODY=8BITMIME", 0, SMTP_MAIL, "a.b+c@b.example"},
    {"MAIL FROM:<a@b.example> body=7bit", 0, SMTP_MAIL, "a@b.example"},
    {"MAIL FROM:<a@b.example> BODY=BINARYMIME", 501, 0, NULL},
    {"MAIL FROM:<a@b.example> SIZE=12x", 501, 0, NULL},
    {"MAIL FROM:<a@b.example> SIZE=1 SIZE=2", 501, 0, NULL},
    {"MAIL FROM:<a@b.example> SIZE=99999999999999999999", 552, 0, NULL},
    {"MAIL FROM:<a@b.example> SIZE=999999999999999999999", 552, 0, NULL},
    {"MAIL FROM:<a@b.example> SMTPUTF8", 0, SMTP_MAIL, "a@b.example"},
    {"MAIL FROM:<a@b.example> SMTPUTF8 SMTPUTF8", 501, 0, NULL},
    {"MAIL FROM:<a@b.example> SMTPUTF8=yes", 501, 0, NULL},
    {"RCPT TO:<c@d.example> SMTPUTF8", 555, 0, NULL},
    /* UTF-8 paths (RFC 6531): the domain written in A-labels, the local part kept */
    {"MAIL FROM:<J\xc3\xb6rg@b\xc3\xbc"
     "cher.example> SMTPUTF8",
     0, SMTP_MAIL, "J\xc3\xb6rg@xn--bcher-kva.example"},
    {"RCPT TO:<\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd@d.example>", 0, SMTP_RCPT,
     "\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd@d.example"},
    {"MAIL FROM:<j\xc3rg@b.example> SMTPUTF8", 501, 0, NULL},         /* truncated */
    {"MAIL FROM:<j\xc0\xafrg@b.example> SMTPUTF8", 501, 0, NULL},     /* overlong */
    {"MAIL FROM:<j\xed\xa0\x80rg@b.example> SMTPUTF8", 501, 0, NULL}, /* surrogate */
    {"RCPT TO:<j\xc2\x85rg@d.example>", 501, 0, NULL},                /* C1 control */
    {"RCPT TO:<j\xe2\x80\xaerg@d.example>", 501, 0, NULL},            /* bidi override */
    {"MAIL FROM:<a@b.example> X-FOO=bar", 555, 0, NULL},
    {"MAIL FROM:<a@b.example>  SIZE=1", 501, 0, NULL},
    {"MAIL FROM:<a@b.example> SIZE=1 ", 501, 0, NULL},
    {"MAIL FROM:<a@b.example>SIZE=1", 501, 0, NULL},
    {"MAIL FROM:a@b.example", 501, 0, NULL},
    {"MAIL FROM:<a@b.example", 501, 0, NULL},
    {"MAIL FROM:<a.@b.example>", 501, 0, NULL},
    {"MAIL FROM:<a@>", 501, 0, NULL},
    {"MAIL FROM:<@b.example>", 501, 0, NULL},
    {"MAIL TO:<a@b.example>", 501, 0, NULL},
    {"MAIL", 501, 0, NULL},
    {"RCPT TO:<c@d.example>", 0, SMTP_RCPT, "c@d.example"},
    {"RCPT TO:<@x.example,@y.example:c@d.example>", 0, SMTP_RCPT, "c@d.example"},
    {"RCPT TO:<@x.example,y.example:c@d.example>", 501, 0, NULL},
    {"RCPT TO:<Postmaster>", 0, SMTP_RCPT, "Postmaster"},
    {"RCPT TO:<>", 501, 0, NULL},
    {"RCPT TO:<c@d.example> SIZE=1", 555, 0, NULL},
    {"RCPT TO:<c@d.example> NOTIFY=NEVER", 0, SMTP_RCPT, "c@d.example"}, /* DSN, RFC 3461 */
    {"RCPT TO:<c@d.example> XNOTIFY=NEVER", 555, 0, NULL},
    {"DATA", 0, SMTP_DATA, NULL},
    {"DATA x", 501, 0, NULL},
    {"RSET", 0, SMTP_RSET, NULL},
    {"QUIT now", 501, 0, NULL},
    {"NOOP anything", 0, SMTP_NOOP, NULL},
    {"VRFY someone", 0, SMTP_VRFY, NULL},
    {"VRFY", 501, 0, NULL},
    {"HELP", 0, SMTP_HELP, NULL},
    {"STARTTLS", 0, SMTP_STARTTLS, NULL},
    {"EXPN list", 502, 0, NULL},
    {"AUTH PLAIN", 502, 0, NULL}, /* without SMTP_PARSE_AUTH: not offered */
    {"BDAT x", 501, 0, NULL},
    {"BDAT 10 LASTX", 501, 0, NULL},
    {"BDAT", 501, 0, NULL},
    {"XYZZY", 500, 0, NULL},
    {"", 500, 0, NULL},
    {"NOOP \x01", 500, 0, NULL},
    {"NOOP caf\xc3\xa9", 500, 0, NULL},
};

static void test_parse_table(void **state)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct smtp_command cmd;
		struct err e;
		int rc;

		err_clear(&e);
		rc = smtp_parse_command(c->line, strlen(c->line), &cmd, &e);
		if (c->code == 0) {
			if (rc != 0)
				fail_msg("'%s' refused: %s", c->line, e.msg);
			assert_int_equal(cmd.verb, c->verb);
			if (c->path)
				assert_string_equal(cmd.path, c->path);
		} else {
			if (rc != -1 || cmd.error.code != c->code)
				fail_msg("'%s': rc %d code %d, want %d", c->line, rc,
				         cmd.error.code, c->code);
			assert_int_equal(e.kind, ERR_INPUT);
			assert_true(cmd.error.status[0] != '\0');
		}
	}
}

struct auth_parse_case {
	const char *line;
	int code; /* 0: parses */
	const char *mech;
	int has_initial;
	const char *initial;
};

static const struct auth_parse_case auth_parse_cases[] = {
    {"AUTH PLAIN", 0, "PLAIN", 0, ""},
    {"auth plain", 0, "PLAIN", 0, ""},
    {"AUTH LOGIN YWxpY2VAYi50ZXN0", 0, "LOGIN", 1, "YWxpY2VAYi50ZXN0"},
    {"AUTH PLAIN AGFsaWNlQGIudGVzdAB3cm9uZw==", 0, "PLAIN", 1, "AGFsaWNlQGIudGVzdAB3cm9uZw=="},
    {"AUTH PLAIN =", 0, "PLAIN", 1, ""},
    {"AUTH CRAM-MD5", 0, "CRAM-MD5", 0, ""},
    {"AUTH SCRAM-SHA-256-PLUS", 0, "SCRAM-SHA-256-PLUS", 0, ""},
    {"AUTH", 501, NULL, 0, NULL},
    {"AUTH ", 501, NULL, 0, NULL},
    {"AUTH PLAIN ", 501, NULL, 0, NULL},
    {"AUTH PL@IN", 501, NULL, 0, NULL},
    {"AUTH ABCDEFGHIJKLMNOPQRSTU", 501, NULL, 0, NULL}, /* 21 characters */
    {"AUTH PLAIN abc", 501, NULL, 0, NULL},
    {"AUTH PLAIN ab=c", 501, NULL, 0, NULL},
    {"AUTH PLAIN a===", 501, NULL, 0, NULL},
    {"AUTH PLAIN YQ==YQ==", 501, NULL, 0, NULL},
    {"AUTH PLAIN YR==", 501, NULL, 0, NULL}, /* non-zero pad bits */
    {"AUTH PLAIN YWJj ZGVm", 501, NULL, 0, NULL},
    {"AUTH PLAIN ==", 501, NULL, 0, NULL},
};

static void test_parse_auth(void **state)
{
	for (size_t i = 0; i < sizeof(auth_parse_cases) / sizeof(auth_parse_cases[0]); i++) {
		const struct auth_parse_case *c = &auth_parse_cases[i];
		struct smtp_command cmd;
		struct err e;
		int rc;

		err_clear(&e);
		rc = smtp_parse_command_opts(c->line, strlen(c->line), SMTP_PARSE_AUTH, &cmd, &e);
		if (c->code == 0) {
			if (rc != 0)
				fail_msg("'%s' refused: %s", c->line, e.msg);
			assert_int_equal(cmd.verb, SMTP_AUTH);
			assert_string_equal(cmd.mech, c->mech);
			assert_int_equal(cmd.has_initial, c->has_initial);
			assert_string_equal(cmd.arg, c->initial);
		} else if (rc != -1 || cmd.error.code != c->code) {
			fail_msg("'%s': rc %d code %d, want %d", c->line, rc, cmd.error.code,
			         c->code);
		}
		/* without the option AUTH stays "not implemented", whatever follows */
		rc = smtp_parse_command(c->line, strlen(c->line), &cmd, &e);
		assert_int_equal(rc, -1);
		assert_int_equal(cmd.error.code, 502);
	}
}

static void test_base64(void **state)
{
	unsigned char out[16];

	assert_int_equal(smtp_base64_decode("", 0, out, sizeof(out)), 0);
	assert_int_equal(smtp_base64_decode("YQ==", 4, out, sizeof(out)), 1);
	assert_int_equal(out[0], 'a');
	assert_int_equal(smtp_base64_decode("YWI=", 4, out, sizeof(out)), 2);
	assert_memory_equal(out, "ab", 2);
	assert_int_equal(smtp_base64_decode("YWJj", 4, out, sizeof(out)), 3);
	assert_memory_equal(out, "abc", 3);
	assert_int_equal(smtp_base64_decode("+/+/", 4, out, sizeof(out)), 3);
	assert_memory_equal(out, "\xfb\xff\xbf", 3);
	assert_int_equal(smtp_base64_decode("YWJj", 4, out, 2), -1); /* no room */
	assert_int_equal(smtp_base64_decode("YWJ", 3, out, sizeof(out)), -1);
	assert_int_equal(smtp_base64_decode("YW=j", 4, out, sizeof(out)), -1);
	assert_int_equal(smtp_base64_decode("YWJj\r\n", 6, out, sizeof(out)), -1);
	assert_int_equal(smtp_base64_decode("YWI-", 4, out, sizeof(out)), -1); /* base64url */
}

static void test_parse_values(void **state)
{
	struct smtp_command cmd;
	struct err e;
	const char *l = "MAIL FROM:<> SIZE=18446744073709551615 BODY=8bitmime";

	assert_int_equal(smtp_parse_command(l, strlen(l), &cmd, &e), 0);
	assert_true(cmd.null_path);
	assert_true(cmd.has_size);
	assert_true(cmd.size == UINT64_MAX);
	assert_int_equal(cmd.body, SMTP_BODY_8BITMIME);
	l = "EHLO [IPv6:::1]";
	assert_int_equal(smtp_parse_command(l, strlen(l), &cmd, &e), 0);
	assert_string_equal(cmd.arg, "[IPv6:::1]");
}

static void test_parse_limits(void **state)
{
	char line[600], path[400];
	struct smtp_command cmd;
	struct err e;

	/* 510 octets + CRLF = 512: the limit */
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	assert_int_equal(smtp_parse_command(line, 510, &cmd, &e), 0);
	assert_int_equal(smtp_parse_command(line, 511, &cmd, &e), -1);
	assert_int_equal(cmd.error.code, 500);
	assert_string_equal(cmd.error.status, "5.5.2");
	/* local part 64 octets ok, 65 not */
	memset(path, 'a', 65);
	snprintf(line, sizeof(line), "MAIL FROM:<%.64s@b.example>", path);
	assert_int_equal(smtp_parse_command(line, strlen(line), &cmd, &e), 0);
	snprintf(line, sizeof(line), "MAIL FROM:<%.65s@b.example>", path);
	assert_int_equal(smtp_parse_command(line, strlen(line), &cmd, &e), -1);
	assert_int_equal(cmd.error.code, 501);
	/* a label of 64 octets is too long */
	assert_true(smtp_domain_valid("a.example", 9));
	memset(path, 'a', 64);
	memcpy(path + 64, ".example", 8);
	assert_false(smtp_domain_valid(path, 72));
	assert_true(smtp_domain_valid(path + 1, 71));
}

/* ---- session ---- */

struct capture {
	char out[65536];
	size_t out_len;
	char ev[65536];
	size_t ev_len;
	int async; /* callbacks answer SMTP_PENDING */
};

static void ev_add(struct capture *c, const char *p, size_t n)
{
	assert_true(c->ev_len + n < sizeof(c->ev));
	memcpy(c->ev + c->ev_len, p, n);
	c->ev_len += n;
	c->ev[c->ev_len] = '\0';
}

static void ev_str(struct capture *c, const char *a, const char *b)
{
	ev_add(c, a, strlen(a));
	ev_add(c, b, strlen(b));
	ev_add(c, ";", 1);
}

static int cb_helo(void *ctx, struct smtp_session *s, const struct smtp_command *c,
                   struct smtp_reply *r)
{
	if (strcmp(c->arg, "blocked.example") == 0) {
		r->code = 550;
		snprintf(r->status, sizeof(r->status), "5.7.1");
		snprintf(r->text, sizeof(r->text), "Go away");
	}
	return SMTP_DECIDED;
}

static int cb_mail(void *ctx, struct smtp_session *s, const struct smtp_command *c,
                   struct smtp_reply *r)
{
	struct capture *cap = ctx;

	ev_str(cap, "M ", c->path);
	return cap->async ? SMTP_PENDING : SMTP_DECIDED;
}

static int cb_rcpt(void *ctx, struct smtp_session *s, const struct smtp_command *c,
                   struct smtp_reply *r)
{
	struct capture *cap = ctx;

	ev_str(cap, "R ", c->path);
	if (strncmp(c->path, "reject", 6) == 0) {
		r->code = 550;
		snprintf(r->status, sizeof(r->status), "5.1.1");
		snprintf(r->text, sizeof(r->text), "No such user");
	} else if (strncmp(c->path, "temp", 4) == 0) {
		r->code = 450;
		snprintf(r->status, sizeof(r->status), "4.2.0");
		snprintf(r->text, sizeof(r->text), "Try later");
	}
	return cap->async ? SMTP_PENDING : SMTP_DECIDED;
}

static int cb_data(void *ctx, struct smtp_session *s, const char *msg, size_t len,
                   struct smtp_reply *r)
{
	struct capture *cap = ctx;

	ev_add(cap, "D ", 2);
	ev_add(cap, msg, len);
	ev_add(cap, ";", 1);
	return cap->async ? SMTP_PENDING : SMTP_DECIDED;
}

/* alice@b.test / "secret" (or "s3cr3t-Pa55") is good; temp@b.test: the check cannot run now. */
static int cb_auth(void *ctx, struct smtp_session *s, const char *mech, const char *user,
                   const char *pass, struct smtp_reply *r)
{
	struct capture *cap = ctx;

	ev_str(cap, "A ", mech);
	ev_str(cap, "U ", user);
	assert_null(smtp_session_auth_user(s));
	if (strcmp(user, "temp@b.test") == 0) {
		r->code = 454;
		snprintf(r->status, sizeof(r->status), "4.7.0");
		snprintf(r->text, sizeof(r->text), "Temporary authentication failure");
	} else if (strcmp(user, "alice@b.test") != 0 ||
	           (strcmp(pass, "secret") != 0 && strcmp(pass, "s3cr3t-Pa55") != 0)) {
		r->code = 535;
		snprintf(r->status, sizeof(r->status), "5.7.8");
		snprintf(r->text, sizeof(r->text), "Authentication credentials invalid");
	}
	return cap->async ? SMTP_PENDING : SMTP_DECIDED;
}

static void cb_starttls(void *ctx, struct smtp_session *s)
{
	ev_str(ctx, "T", "");
}

static void cb_quit(void *ctx, struct smtp_session *s)
{
	ev_str(ctx, "Q", "");
}

static void cb_reset(void *ctx, struct smtp_session *s)
{
	ev_str(ctx, "X", "");
}

static const struct smtp_callbacks callbacks = {
    .on_helo = cb_helo,
    .on_mail = cb_mail,
    .on_rcpt = cb_rcpt,
    .on_data = cb_data,
    .on_starttls = cb_starttls,
    .on_quit = cb_quit,
    .on_reset = cb_reset,
    .on_auth = cb_auth,
};

/* conv.auth flags */
#define A_AVAIL 1 /* auth_available */
#define A_REQ 2   /* auth_required */
#define A_TLS 4   /* EHLO, STARTTLS and the handshake done before the conversation */

static struct smtp_session *session_auth(struct capture *cap, int tls, int auth)
{
	struct smtp_config cfg = {
	    .hostname = "mx.test",
	    .max_size = 2000,
	    .max_rcpts = 3,
	    .max_errors = 10,
	    .tls_available = tls,
	    .auth_available = (auth & A_AVAIL) != 0,
	    .auth_required = (auth & A_REQ) != 0,
	};
	struct err e;
	struct smtp_session *s;

	memset(cap, 0, sizeof(*cap));
	s = smtp_session_new(&cfg, &callbacks, cap, &e);
	assert_non_null(s);
	return s;
}

static struct smtp_session *session(struct capture *cap, int tls)
{
	return session_auth(cap, tls, 0);
}

static void drain(struct smtp_session *s, struct capture *cap)
{
	size_t n;
	const char *o = smtp_session_output(s, &n);

	assert_true(cap->out_len + n < sizeof(cap->out));
	if (n > 0)
		memcpy(cap->out + cap->out_len, o, n);
	cap->out_len += n;
	cap->out[cap->out_len] = '\0';
	smtp_session_drain(s, n);
}

static void feed_all(struct smtp_session *s, struct capture *cap, const char *in, size_t len)
{
	while (len > 0) {
		size_t n = smtp_session_feed(s, in, len);

		drain(s, cap);
		assert_false(n == 0 && smtp_session_pending(s));
		in += n;
		len -= n;
	}
}

#define G "220 mx.test ESMTP\r\n"
#define EH "EHLO c.test\r\n"
#define EHR                                                                                        \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 2000\r\n250-8BITMIME\r\n250-CHUNKING\r\n"       \
	"250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHR_TLS                                                                                    \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE "                                               \
	"2000\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n"      \
	"250 ENHANCEDSTATUSCODES\r\n"
#define MF "MAIL FROM:<a@b.test>\r\n"
#define RT "RCPT TO:<c@d.test>\r\n"
#define OK_MAIL "250 2.1.0 Ok\r\n"
#define OK_RCPT "250 2.1.5 Ok\r\n"
#define GO "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED "250 2.0.0 Ok: queued\r\n"
#define BYE "221 2.0.0 Bye\r\n"
#define BDAT_OK(n) "250 2.0.0 " #n " octets received\r\n"
#define EV_TXN "M a@b.test;R c@d.test;"

struct conv {
	const char *name;
	int tls;
	int nogreet;
	const char *in;
	const char *out;
	const char *ev;
};

#define MF8 "MAIL FROM:<j\xc3\xb6rg@b.test> SMTPUTF8\r\n"
#define RT8 "RCPT TO:<\xc3\xa5sa@d.test>\r\n"

static const struct conv convs[] = {
    {"smtputf8 envelope", 0, 0, EH MF8 RT8, G EHR OK_MAIL OK_RCPT,
     "M j\xc3\xb6rg@b.test;R \xc3\xa5sa@d.test;"},
    {"utf-8 sender without SMTPUTF8", 0, 0, EH "MAIL FROM:<j\xc3\xb6rg@b.test>\r\n" MF,
     G EHR "553 5.6.7 Non-ASCII sender address needs SMTPUTF8 (RFC 6531)\r\n" OK_MAIL,
     "M a@b.test;"},
    {"utf-8 recipient without SMTPUTF8", 0, 0, EH MF RT8 RT,
     G EHR OK_MAIL "553 5.6.7 Non-ASCII recipient needs SMTPUTF8 (RFC 6531)\r\n" OK_RCPT, EV_TXN},
    {"invalid utf-8 under SMTPUTF8", 0, 0, EH "MAIL FROM:<j\xc3rg@b.test> SMTPUTF8\r\n",
     G EHR "501 5.1.7 Bad sender address syntax: the address is not well-formed UTF-8\r\n", ""},
    {"basic pipelined", 0, 0, EH MF RT "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
     G EHR OK_MAIL OK_RCPT GO QUEUED BYE, EV_TXN "D Subject: x\r\n\r\nhi\r\n;Q;"},
    {"helo", 0, 0, "HELO c.test\r\n" MF "QUIT\r\n", G "250 mx.test\r\n" OK_MAIL BYE,
     "M a@b.test;X;Q;"},
    {"helo refused by policy", 0, 0, "EHLO blocked.example\r\n" MF,
     G "550 5.7.1 Go away\r\n503 5.5.1 Send HELO/EHLO first\r\n", ""},
    {"mail before helo", 0, 0, MF EH MF, G "503 5.5.1 Send HELO/EHLO first\r\n" EHR OK_MAIL,
     "M a@b.test;"},
    {"rcpt before mail", 0, 0, EH RT, G EHR "503 5.5.1 Need MAIL before RCPT\r\n", ""},
    {"data before rcpt", 0, 0, EH "DATA\r\n" MF "DATA\r\n",
     G EHR "503 5.5.1 Need MAIL before DATA\r\n" OK_MAIL "503 5.5.1 Need RCPT before DATA\r\n",
     "M a@b.test;"},
    {"nested mail", 0, 0, EH MF MF, G EHR OK_MAIL "503 5.5.1 Nested MAIL command\r\n",
     "M a@b.test;"},
    {"rset", 0, 0, EH MF "RSET\r\n" RT,
     G EHR OK_MAIL "250 2.0.0 Ok\r\n"
                   "503 5.5.1 Need MAIL before RCPT\r\n",
     "M a@b.test;X;"},
    {"ehlo resets the transaction", 0, 0, EH MF EH RT,
     G EHR OK_MAIL EHR "503 5.5.1 Need MAIL before RCPT\r\n", "M a@b.test;X;"},
    {"bare LF in a command", 0, 0, "NOOP\nNOOP\r\n",
     G "500 5.5.2 Syntax error, bare LF received\r\n250 2.0.0 Ok\r\n", ""},
    {"bare CR in a command", 0, 0, "NOOP\rx\r\n", G "500 5.5.2 Syntax error, invalid character\r\n",
     ""},
    {"misc verbs", 0, 0, "NOOP\r\nVRFY bob\r\nHELP\r\nEXPN x\r\nFOO\r\nSTARTTLS\r\n",
     G "250 2.0.0 Ok\r\n"
       "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
       "214 2.0.0 See RFC 5321\r\n502 5.5.1 Command not implemented\r\n"
       "500 5.5.2 Syntax error, command unrecognized\r\n502 5.5.1 Command not implemented\r\n",
     ""},
    {"dot-unstuffing", 0, 0, EH MF RT "DATA\r\n..a\r\n.b\r\n...\r\n.\r\n",
     G EHR OK_MAIL OK_RCPT GO QUEUED, EV_TXN "D .a\r\nb\r\n..\r\n;"},
    {"empty message", 0, 0, EH MF RT "DATA\r\n.\r\n", G EHR OK_MAIL OK_RCPT GO QUEUED,
     EV_TXN "D ;"},
    {"missing CRLF.CRLF", 0, 0, EH MF RT "DATA\r\nhi\r\n.\nQUIT\r\n", G EHR OK_MAIL OK_RCPT GO,
     EV_TXN},
    {"bare LF in data", 0, 0, EH MF RT "DATA\r\na\nb\r\n.\r\nQUIT\r\n",
     G EHR OK_MAIL OK_RCPT GO "550 5.6.0 Message contains bare CR or LF (RFC 5321 2.3.8)\r\n" BYE,
     EV_TXN "Q;"},
    {"smuggling with LF.LF", 0, 0, EH MF RT "DATA\r\nhi\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n" MF,
     G EHR OK_MAIL OK_RCPT GO
     "550 5.6.0 Message contains bare CR or LF (RFC 5321 2.3.8)\r\n" OK_MAIL,
     EV_TXN "M a@b.test;"},
    {"smuggling with CR.CR", 0, 0, EH MF RT "DATA\r\nhi\r.\rRSET\r\n.\r\n",
     G EHR OK_MAIL OK_RCPT GO "550 5.6.0 Message contains bare CR or LF (RFC 5321 2.3.8)\r\n",
     EV_TXN},
    {"size at MAIL", 0, 0,
     EH "MAIL FROM:<a@b.test> SIZE=2001\r\nMAIL FROM:<a@b.test> SIZE=2000 BODY=8BITMIME\r\n",
     G EHR "552 5.3.4 Message size exceeds fixed limit\r\n" OK_MAIL, "M a@b.test;"},
    {"unknown parameter", 0, 0, EH "MAIL FROM:<a@b.test> FOO=1\r\nMAIL FROM:<> BODY=X\r\n",
     G EHR "555 5.5.4 Unsupported parameter\r\n501 5.5.4 Unsupported BODY type\r\n", ""},
    {"null path and source route", 0, 0,
     EH "MAIL FROM:<>\r\nRCPT TO:<>\r\nRCPT TO:<@r.test:c@d.test>\r\n",
     G EHR OK_MAIL "501 5.1.3 Bad recipient address syntax\r\n" OK_RCPT, "M ;R c@d.test;"},
    {"recipient decisions", 0, 0,
     EH MF "RCPT TO:<reject@d.test>\r\nRCPT TO:<temp@d.test>\r\nDATA\r\n" RT "DATA\r\n.\r\n",
     G EHR OK_MAIL "550 5.1.1 No such user\r\n450 4.2.0 Try later\r\n"
                   "503 5.5.1 Need RCPT before DATA\r\n" OK_RCPT GO QUEUED,
     "M a@b.test;R reject@d.test;R temp@d.test;R c@d.test;D ;"},
    {"too many recipients", 0, 0, EH MF RT RT RT RT,
     G EHR OK_MAIL OK_RCPT OK_RCPT OK_RCPT "452 4.5.3 Too many recipients\r\n",
     EV_TXN "R c@d.test;R c@d.test;"},
    {"two messages", 0, 0, EH MF RT "DATA\r\n1\r\n.\r\n" MF RT "DATA\r\n2\r\n.\r\n",
     G EHR OK_MAIL OK_RCPT GO QUEUED OK_MAIL OK_RCPT GO QUEUED,
     EV_TXN "D 1\r\n;" EV_TXN "D 2\r\n;"},
    {"early talker", 0, 1, EH, "554 5.5.0 SMTP protocol violation, input before greeting\r\n", ""},
    {"after QUIT", 0, 0, "QUIT\r\nNOOP\r\n", G BYE, "Q;"},
    {"starttls", 1, 0, EH "STARTTLS\r\n", G EHR_TLS "220 2.0.0 Ready to start TLS\r\n", "T;"},
    {"starttls injection", 1, 0, EH "STARTTLS\r\n" MF RT,
     G EHR_TLS "220 2.0.0 Ready to start TLS\r\n", "T;"},
    {"starttls needs ehlo", 1, 0, "STARTTLS\r\n", G "503 5.5.1 Send EHLO first\r\n", ""},
    {"starttls unavailable", 0, 0, EH "STARTTLS\r\n", G EHR "502 5.5.1 Command not implemented\r\n",
     ""},
    {"requiretls in clear", 0, 0,
     EH "MAIL FROM:<a@b.test> REQUIRETLS\r\nMAIL FROM:<a@b.test> REQUIRETLS=yes\r\n",
     G EHR "530 5.7.10 REQUIRETLS needs a TLS session: STARTTLS first\r\n"
           "501 5.5.4 Bad REQUIRETLS parameter\r\n",
     ""},
    {"bdat in chunks", 0, 0, EH MF RT "BDAT 5\r\nSubjeBDAT 9 LAST\r\nct: x\r\n\r\nQUIT\r\n",
     G EHR OK_MAIL OK_RCPT BDAT_OK(5) QUEUED BYE, EV_TXN "D Subject: x\r\n\r\n;Q;"},
    {"bdat CRLF split between chunks", 0, 0, EH MF RT "BDAT 3\r\nab\rBDAT 3 LAST\r\n\ncd",
     G EHR OK_MAIL OK_RCPT BDAT_OK(3) QUEUED, EV_TXN "D ab\r\ncd\r\n;"},
    {"bdat has no dot-stuffing", 0, 0, EH MF RT "BDAT 7 LAST\r\n.\r\n..\r\n",
     G EHR OK_MAIL OK_RCPT QUEUED, EV_TXN "D .\r\n..\r\n;"},
    {"bdat 0 last", 0, 0, EH MF RT "BDAT 0 LAST\r\n", G EHR OK_MAIL OK_RCPT QUEUED, EV_TXN "D ;"},
    {"bdat then data", 0, 0, EH MF RT "BDAT 4\r\nab\r\nDATA\r\nBDAT 0 LAST\r\n",
     G EHR OK_MAIL OK_RCPT BDAT_OK(
         4) "503 5.5.1 DATA not allowed after BDAT in a transaction\r\n" QUEUED,
     EV_TXN "D ab\r\n;"},
    {"bdat without mail: chunk read, not run", 0, 0,
     EH "BDAT 22\r\nMAIL FROM:<e@x.test>\r\nNOOP\r\n",
     G EHR "503 5.5.1 Need MAIL before BDAT\r\n250 2.0.0 Ok\r\n", ""},
    {"bdat without rcpt", 0, 0, EH MF "BDAT 2 LAST\r\nabNOOP\r\n",
     G EHR OK_MAIL "503 5.5.1 Need RCPT before BDAT\r\n250 2.0.0 Ok\r\n", "M a@b.test;"},
    {"bdat before helo", 0, 0, "BDAT 2\r\nab", G "503 5.5.1 Send HELO/EHLO first\r\n", ""},
    {"bdat size unreadable closes", 0, 0, EH MF RT "BDAT x\r\nNOOP\r\n",
     G EHR OK_MAIL OK_RCPT "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n", EV_TXN},
    {"bdat bad marker ends the transaction", 0, 0,
     EH MF RT "BDAT 2\r\nabBDAT 3 LASTX\r\nRSTBDAT 1 LAST\r\nx",
     G EHR OK_MAIL OK_RCPT BDAT_OK(2) "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n"
                                      "503 5.5.1 Need MAIL before BDAT\r\n",
     EV_TXN "X;"},
    {"bdat bare LF", 0, 0, EH MF RT "BDAT 5 LAST\r\na\nb\r\n",
     G EHR OK_MAIL OK_RCPT "550 5.6.0 Message contains bare CR or LF (RFC 5321 2.3.8)\r\n", EV_TXN},
    {"bdat ends in CR", 0, 0, EH MF RT "BDAT 3 LAST\r\nab\r",
     G EHR OK_MAIL OK_RCPT "550 5.6.0 Message contains bare CR or LF (RFC 5321 2.3.8)\r\n", EV_TXN},
    {"bdat size says less than sent", 0, 0, EH MF RT "BDAT 4 LAST\r\nab\r\ncd\r\n",
     G EHR OK_MAIL OK_RCPT QUEUED "500 5.5.2 Syntax error, command unrecognized\r\n",
     EV_TXN "D ab\r\n;"},
    {"too many errors", 0, 0, "A\r\nB\r\nC\r\nD\r\nE\r\nF\r\nG\r\nH\r\nI\r\nJ\r\nNOOP\r\n",
     G "500 5.5.2 Syntax error, command unrecognized\r\n"
       "500 5.5.2 Syntax error, command unrecognized\r\n"
       "500 5.5.2 Syntax error, command unrecognized\r\n"
       "500 5.5.2 Syntax error, command unrecognized\r\n"
       "500 5.5.2 Syntax error, command unrecognized\r\n"
       "500 5.5.2 Syntax error, command unrecognized\r\n"
       "500 5.5.2 Syntax error, command unrecognized\r\n"
       "500 5.5.2 Syntax error, command unrecognized\r\n"
       "500 5.5.2 Syntax error, command unrecognized\r\n"
       "500 5.5.2 Syntax error, command unrecognized\r\n"
       "421 4.7.0 Too many errors, closing connection\r\n",
     ""},
};

#define EHR_AUTH                                                                                   \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 2000\r\n250-8BITMIME\r\n250-CHUNKING\r\n"       \
	"250-SMTPUTF8\r\n250-DSN\r\n250-AUTH PLAIN LOGIN\r\n250-REQUIRETLS\r\n250 "                \
	"ENHANCEDSTATUSCODES\r\n"
#define EHR_TLSON                                                                                  \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 2000\r\n250-8BITMIME\r\n250-CHUNKING\r\n"       \
	"250-SMTPUTF8\r\n250-DSN\r\n250-REQUIRETLS\r\n250 ENHANCEDSTATUSCODES\r\n"
#define PLAIN_OK "AGFsaWNlQGIudGVzdABzZWNyZXQ="   /* \0alice@b.test\0secret */
#define PLAIN_BAD "AGFsaWNlQGIudGVzdAB3cm9uZw=="  /* \0alice@b.test\0wrong */
#define PLAIN_TEMP "AHRlbXBAYi50ZXN0AHNlY3JldA==" /* \0temp@b.test\0secret */
#define LOGIN_USER "YWxpY2VAYi50ZXN0"             /* alice@b.test */
#define LOGIN_PASS "c2VjcmV0"                     /* secret */
#define AUTH_OK "235 2.7.0 Authentication successful\r\n"
#define AUTH_BAD "535 5.7.8 Authentication credentials invalid\r\n"
#define AUTH_TEMP "454 4.7.0 Temporary authentication failure\r\n"
#define EV_ALICE(m) "A " m ";U alice@b.test;"
#define ATLS (A_AVAIL | A_TLS)
#define AREQ (A_AVAIL | A_REQ | A_TLS)

static const struct {
	int auth; /* A_* */
	struct conv c;
} auth_convs[] = {
    {AREQ,
     {"plain with initial response, pipelined with MAIL", 0, 0,
      EH "AUTH PLAIN " PLAIN_OK "\r\n" MF RT "DATA\r\n.\r\n",
      EHR_AUTH AUTH_OK OK_MAIL OK_RCPT GO QUEUED, EV_ALICE("PLAIN") EV_TXN "D ;"}},
    {AREQ,
     {"plain after 334", 0, 0, EH "AUTH PLAIN\r\n" PLAIN_OK "\r\n" MF,
      EHR_AUTH "334 \r\n" AUTH_OK OK_MAIL, EV_ALICE("PLAIN") "M a@b.test;"}},
    {AREQ,
     {"plain with authzid = authcid", 0, 0,
      EH "AUTH PLAIN YWxpY2VAYi50ZXN0AGFsaWNlQGIudGVzdABzZWNyZXQ=\r\n", EHR_AUTH AUTH_OK,
      EV_ALICE("PLAIN")}},
    {AREQ,
     {"plain acting for someone else", 0, 0,
      EH "AUTH PLAIN Ym9iQGIudGVzdABhbGljZUBiLnRlc3QAc2VjcmV0\r\n" MF,
      EHR_AUTH AUTH_BAD "530 5.7.0 Authentication required\r\n", ""}},
    {AREQ,
     {"plain with a NUL in the password", 0, 0,
      EH "AUTH PLAIN AGFsaWNlQGIudGVzdABzZWNyZXQAeA==\r\n", EHR_AUTH AUTH_BAD, ""}},
    {AREQ, {"plain empty initial response", 0, 0, EH "AUTH PLAIN =\r\n", EHR_AUTH AUTH_BAD, ""}},
    {AREQ,
     {"login", 0, 0, EH "AUTH LOGIN\r\n" LOGIN_USER "\r\n" LOGIN_PASS "\r\n" MF,
      EHR_AUTH "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" AUTH_OK OK_MAIL,
      EV_ALICE("LOGIN") "M a@b.test;"}},
    {AREQ,
     {"login with initial response", 0, 0, EH "auth login " LOGIN_USER "\r\n" LOGIN_PASS "\r\n",
      EHR_AUTH "334 UGFzc3dvcmQ6\r\n" AUTH_OK, EV_ALICE("LOGIN")}},
    {AREQ,
     {"login user with a control character", 0, 0, EH "AUTH LOGIN YWxpAWNl\r\n", EHR_AUTH AUTH_BAD,
      ""}},
    {AREQ,
     {"cancel", 0, 0, EH "AUTH LOGIN\r\n" LOGIN_USER "\r\n*\r\n" MF,
      EHR_AUTH "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n501 5.0.0 Authentication cancelled\r\n"
               "530 5.7.0 Authentication required\r\n",
      ""}},
    {AREQ,
     {"bad base64", 0, 0, EH "AUTH PLAIN\r\n!!!!\r\nAUTH PLAIN abc\r\n",
      EHR_AUTH "334 \r\n501 5.5.2 Invalid base64 data\r\n501 5.5.2 Invalid base64 data\r\n", ""}},
    {AREQ,
     {"bare LF in a response", 0, 0, EH "AUTH PLAIN\r\n" PLAIN_OK "\nNOOP\r\n",
      EHR_AUTH "334 \r\n500 5.5.2 Syntax error, bare LF received\r\n250 2.0.0 Ok\r\n", ""}},
    {AREQ,
     {"mail before auth", 0, 0, EH MF "AUTH PLAIN " PLAIN_OK "\r\n" MF,
      EHR_AUTH "530 5.7.0 Authentication required\r\n" AUTH_OK OK_MAIL,
      EV_ALICE("PLAIN") "M a@b.test;"}},
    {AREQ,
     {"auth twice", 0, 0, EH "AUTH PLAIN " PLAIN_OK "\r\nAUTH LOGIN\r\n",
      EHR_AUTH AUTH_OK "503 5.5.1 Already authenticated\r\n", EV_ALICE("PLAIN")}},
    {ATLS,
     {"auth in a transaction", 0, 0, EH MF "AUTH PLAIN " PLAIN_OK "\r\n",
      EHR_AUTH OK_MAIL "503 5.5.1 AUTH not allowed during a mail transaction\r\n", "M a@b.test;"}},
    {AREQ,
     {"auth before ehlo", 0, 0, "AUTH PLAIN " PLAIN_OK "\r\n", "503 5.5.1 Send EHLO first\r\n",
      ""}},
    {AREQ,
     {"unknown mechanism", 0, 0, EH "AUTH CRAM-MD5\r\n",
      EHR_AUTH "504 5.5.4 Unrecognized authentication type\r\n", ""}},
    {AREQ,
     {"three failures close", 0, 0,
      EH "AUTH PLAIN " PLAIN_BAD "\r\nAUTH LOGIN " LOGIN_USER
         "\r\nd3Jvbmc=\r\nAUTH PLAIN " PLAIN_BAD "\r\nAUTH PLAIN " PLAIN_OK "\r\n",
      EHR_AUTH AUTH_BAD "334 UGFzc3dvcmQ6\r\n" AUTH_BAD AUTH_BAD
                        "421 4.7.0 Too many authentication failures, closing connection\r\n",
      EV_ALICE("PLAIN") EV_ALICE("LOGIN") EV_ALICE("PLAIN")}},
    {AREQ,
     {"temporary failures do not count", 0, 0,
      EH "AUTH PLAIN " PLAIN_TEMP "\r\nAUTH PLAIN " PLAIN_TEMP "\r\nAUTH PLAIN " PLAIN_TEMP
         "\r\nAUTH PLAIN " PLAIN_BAD "\r\nAUTH PLAIN " PLAIN_OK "\r\n",
      EHR_AUTH AUTH_TEMP AUTH_TEMP AUTH_TEMP AUTH_BAD AUTH_OK,
      "A PLAIN;U temp@b.test;A PLAIN;U temp@b.test;A PLAIN;U temp@b.test;" EV_ALICE("PLAIN")
          EV_ALICE("PLAIN")}},
    {AREQ,
     {"rset keeps the authentication", 0, 0, EH "AUTH PLAIN " PLAIN_OK "\r\nRSET\r\n" EH MF,
      EHR_AUTH AUTH_OK "250 2.0.0 Ok\r\n" EHR_AUTH OK_MAIL, EV_ALICE("PLAIN") "M a@b.test;"}},
    {A_AVAIL | A_REQ,
     {"auth in clear text", 1, 0, EH "AUTH PLAIN " PLAIN_OK "\r\n" MF,
      G EHR_TLS "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
                "530 5.7.0 Authentication required\r\n",
      ""}},
    {0,
     {"auth off", 1, 0, EH "AUTH PLAIN " PLAIN_OK "\r\n" MF,
      G EHR_TLS "502 5.5.1 Command not implemented\r\n" OK_MAIL, "M a@b.test;"}},
    {A_TLS,
     {"auth off after tls", 0, 0, EH "AUTH PLAIN " PLAIN_OK "\r\n",
      EHR_TLSON "502 5.5.1 Command not implemented\r\n", ""}},
};

/* Replay input in chunks: chunk 0 = all at once, else `first` bytes then the rest by `chunk`. */
/* Greet, EHLO, STARTTLS and the handshake; what it said is forgotten. */
static void tls_prelude(struct smtp_session *s, struct capture *cap)
{
	const char *pre = "EHLO c.test\r\nSTARTTLS\r\n";

	smtp_session_greet(s, NULL);
	feed_all(s, cap, pre, strlen(pre));
	assert_int_equal(smtp_session_starttls_done(s), 0);
	cap->out_len = cap->ev_len = 0;
	cap->out[0] = cap->ev[0] = '\0';
}

static void replay_auth(const struct conv *c, int auth, const char *in, size_t len, size_t first,
                        size_t chunk, struct capture *cap)
{
	struct smtp_session *s = session_auth(cap, c->tls || (auth & A_TLS), auth);
	size_t off = 0;

	if (auth & A_TLS)
		tls_prelude(s, cap);
	else if (!c->nogreet)
		smtp_session_greet(s, NULL);
	while (off < len) {
		size_t n = off == 0 && first ? first : chunk ? chunk : len;

		if (n > len - off)
			n = len - off;
		feed_all(s, cap, in + off, n);
		off += n;
	}
	drain(s, cap);
	smtp_session_free(s);
}

static void check_conv_auth(const struct conv *c, int auth, const char *in, size_t len,
                            const char *out, const char *ev)
{
	struct capture *cap = malloc(sizeof(*cap));
	size_t k;

	assert_non_null(cap);
	replay_auth(c, auth, in, len, 0, 0, cap);
	if (strcmp(cap->out, out) != 0 || strcmp(cap->ev, ev) != 0)
		fail_msg("%s (whole): got\n%s\nevents %s", c->name, cap->out, cap->ev);
	replay_auth(c, auth, in, len, 0, 1, cap);
	if (strcmp(cap->out, out) != 0 || strcmp(cap->ev, ev) != 0)
		fail_msg("%s (bytewise): got\n%s\nevents %s", c->name, cap->out, cap->ev);
	for (k = 1; k < len; k++) {
		replay_auth(c, auth, in, len, k, 0, cap);
		if (strcmp(cap->out, out) != 0 || strcmp(cap->ev, ev) != 0)
			fail_msg("%s (split at %zu): got\n%s\nevents %s", c->name, k, cap->out,
			         cap->ev);
	}
	free(cap);
}

static void check_conv(const struct conv *c, const char *in, size_t len, const char *out,
                       const char *ev)
{
	check_conv_auth(c, 0, in, len, out, ev);
}

static void test_conversations(void **state)
{
	for (size_t i = 0; i < sizeof(convs) / sizeof(convs[0]); i++)
		check_conv(&convs[i], convs[i].in, strlen(convs[i].in), convs[i].out, convs[i].ev);
}

static void test_auth_conversations(void **state)
{
	for (size_t i = 0; i < sizeof(auth_convs) / sizeof(auth_convs[0]); i++)
		check_conv_auth(&auth_convs[i].c, auth_convs[i].auth, auth_convs[i].c.in,
		                strlen(auth_convs[i].c.in), auth_convs[i].c.out,
		                auth_convs[i].c.ev);
}

/* Build "prefix" + n times ch + "suffix" into a malloc'd string. */
static char *repeat(const char *prefix, char ch, size_t n, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	char *p = malloc(pl + n + sl + 1);

	assert_non_null(p);
	memcpy(p, prefix, pl);
	memset(p + pl, ch, n);
	memcpy(p + pl + n, suffix, sl + 1);
	return p;
}

static void test_command_line_limit(void **state)
{
	const struct conv c = {"long lines", 0, 0, NULL, NULL, NULL};
	/* "NOOP " + 505 = 510 octets + CRLF: accepted; one more: refused */
	char *ok = repeat("NOOP ", 'x', 505, "\r\n");
	char *bad = repeat("NOOP ", 'x', 506, "\r\nNOOP\r\n");
	char *huge = repeat("NOOP ", 'x', 5000, "\r\nNOOP\r\n");

	check_conv(&c, ok, strlen(ok), G "250 2.0.0 Ok\r\n", "");
	check_conv(&c, bad, strlen(bad), G "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n", "");
	check_conv(&c, huge, strlen(huge), G "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n", "");
	free(ok);
	free(bad);
	free(huge);
}

static void test_data_limits(void **state)
{
	const struct conv c = {"data limits", 0, 0, NULL, NULL, NULL};
	char *in, *ev;

	/* a 998-octet line is fine, 999 is refused at the end of DATA */
	in = repeat(EH MF RT "DATA\r\n", 'y', 998, "\r\n.\r\n");
	ev = repeat(EV_TXN "D ", 'y', 998, "\r\n;");
	check_conv(&c, in, strlen(in), G EHR OK_MAIL OK_RCPT GO QUEUED, ev);
	free(in);
	free(ev);
	in = repeat(EH MF RT "DATA\r\n", 'y', 999, "\r\n.\r\n" MF);
	check_conv(&c, in, strlen(in),
	           G EHR OK_MAIL OK_RCPT GO
	           "550 5.6.0 Message has a line longer than 1000 octets\r\n" OK_MAIL,
	           EV_TXN "M a@b.test;");
	free(in);
	/* a stuffed dot counts toward the line length */
	in = repeat(EH MF RT "DATA\r\n.", '.', 998, "\r\n.\r\n");
	check_conv(&c, in, strlen(in),
	           G EHR OK_MAIL OK_RCPT GO
	           "550 5.6.0 Message has a line longer than 1000 octets\r\n",
	           EV_TXN);
	free(in);
	/* over SIZE (2000): 552 after the terminator, then the session goes on */
	{
		char body[2800];
		size_t i, n = 0;

		for (i = 0; i < 40; i++)
			n += (size_t)snprintf(body + n, sizeof(body) - n, "%060zu\r\n", i);
		in = malloc(strlen(EH MF RT "DATA\r\n") + n + 32);
		assert_non_null(in);
		sprintf(in, "%s%s.\r\nNOOP\r\n", EH MF RT "DATA\r\n", body);
		check_conv(&c, in, strlen(in),
		           G EHR OK_MAIL OK_RCPT GO
		           "552 5.3.4 Message size exceeds fixed limit\r\n250 2.0.0 Ok\r\n",
		           EV_TXN);
		free(in);
	}
}

/* BDAT against SIZE (2000): the refused chunk is read to its end, the transaction is over. */
static void test_bdat_limits(void **state)
{
	const struct conv c = {"bdat limits", 0, 0, NULL, NULL, NULL};
	char *in, *ev;

	in = repeat(EH MF RT "BDAT 1990\r\n", 'y', 1990, "BDAT 11 LAST\r\nzzzzzzzzzzz" MF);
	check_conv(&c, in, strlen(in),
	           G EHR OK_MAIL OK_RCPT BDAT_OK(
	               1990) "552 5.3.4 Message size exceeds fixed limit\r\n" OK_MAIL,
	           EV_TXN "X;M a@b.test;");
	free(in);
	in = repeat(EH MF RT "BDAT 2001 LAST\r\n", 'y', 2001, "NOOP\r\n");
	check_conv(&c, in, strlen(in),
	           G EHR OK_MAIL OK_RCPT "552 5.3.4 Message size exceeds fixed limit\r\n"
	                                 "250 2.0.0 Ok\r\n",
	           EV_TXN "X;");
	free(in);
	/* a 998-octet line across two chunks is fine, 999 is not */
	in = repeat(EH MF RT "BDAT 500\r\n", 'y', 500, "BDAT 500 LAST\r\n");
	ev = repeat(in, 'y', 498, "\r\n");
	free(in);
	in = ev;
	ev = repeat(EV_TXN "D ", 'y', 998, "\r\n;");
	check_conv(&c, in, strlen(in), G EHR OK_MAIL OK_RCPT BDAT_OK(500) QUEUED, ev);
	free(ev);
	free(in);
	in = repeat(EH MF RT "BDAT 999 LAST\r\n", 'y', 999, "");
	check_conv(&c, in, strlen(in),
	           G EHR OK_MAIL OK_RCPT "550 5.6.0 Message has a line longer than 1000 octets\r\n",
	           EV_TXN);
	free(in);
}

static void test_starttls_done(void **state)
{
	struct capture *cap = malloc(sizeof(*cap));
	struct smtp_session *s = session(cap, 1);
	const char *in = EH "STARTTLS\r\n" MF;

	smtp_session_greet(s, NULL);
	assert_int_equal(smtp_session_starttls_done(s), -1);
	feed_all(s, cap, in, strlen(in));
	assert_string_equal(cap->out, G EHR_TLS "220 2.0.0 Ready to start TLS\r\n");
	/* the injected MAIL was discarded; after the handshake HELO is forgotten */
	assert_int_equal(smtp_session_starttls_done(s), 0);
	assert_true(smtp_session_tls_active(s));
	assert_string_equal(smtp_session_helo(s), "");
	cap->out_len = 0;
	in = MF EH "STARTTLS\r\nMAIL FROM:<a@b.test> REQUIRETLS\r\n";
	feed_all(s, cap, in, strlen(in));
	/* REQUIRETLS (RFC 8689) is offered, and taken, on the TLS session only */
	assert_string_equal(cap->out,
	                    "503 5.5.1 Send HELO/EHLO first\r\n"
	                    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 2000\r\n250-8BITMIME\r\n"
	                    "250-CHUNKING\r\n250-SMTPUTF8\r\n250-DSN\r\n250-REQUIRETLS\r\n"
	                    "250 ENHANCEDSTATUSCODES\r\n"
	                    "503 5.5.1 TLS already active\r\n" OK_MAIL);
	assert_string_equal(cap->ev, "T;M a@b.test;");
	smtp_session_free(s);
	free(cap);
}

static int cb_ext(void *ctx, struct smtp_session *s, const char *line, size_t len, int phase,
                  struct smtp_reply *r)
{
	r->code = 250;
	snprintf(r->status, sizeof(r->status), "2.0.0");
	snprintf(r->text, sizeof(r->text), "%.*s in phase %d", (int)len, line, phase);
	return SMTP_DECIDED;
}

/* Extensions added to a session (smtp_session_add_ext): offered from the next EHLO, every
 * verb of each to the one hook on_ext, others still unknown; the same keyword once; at most
 * SMTP_EXT_MAX. */
static void test_added_extensions(void **state)
{
	struct capture *cap = malloc(sizeof(*cap));
	struct smtp_callbacks cb = callbacks;
	struct smtp_config cfg = {.hostname = "mx.test", .max_size = 2000};
	struct err e;
	struct smtp_session *s;
	const char *in = "ONE-A x\r\nEHLO c.test\r\nONE-A x\r\nTWO y\r\nONE-B\r\nTHREE\r\n";

	memset(cap, 0, sizeof(*cap));
	cb.on_ext = cb_ext;
	s = smtp_session_new(&cfg, &cb, cap, &e);
	assert_non_null(s);
	smtp_session_greet(s, NULL);
	assert_int_equal(smtp_session_add_ext(s, "X-ONE", "ONE-A ONE-B"), 0);
	assert_int_equal(smtp_session_add_ext(s, "X-TWO", "TWO"), 0);
	assert_int_equal(smtp_session_add_ext(s, "X-ONE", "ONE-A ONE-B"), 0); /* once */
	assert_int_equal(smtp_session_add_ext(s, "X-3", "C"), 0);
	assert_int_equal(smtp_session_add_ext(s, "X-4", "D"), 0);
	assert_int_equal(smtp_session_add_ext(s, "X-5", "E"), -1);
	feed_all(s, cap, in, strlen(in));
	assert_string_equal(cap->out,
	                    "220 mx.test ESMTP\r\n"
	                    "503 5.5.1 Send EHLO first\r\n"
	                    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 2000\r\n250-8BITMIME\r\n"
	                    "250-CHUNKING\r\n250-SMTPUTF8\r\n250-DSN\r\n250-X-ONE\r\n250-X-TWO\r\n"
	                    "250-X-3\r\n250-X-4\r\n250 ENHANCEDSTATUSCODES\r\n"
	                    "250 2.0.0 ONE-A x in phase 0\r\n250 2.0.0 TWO y in phase 0\r\n"
	                    "250 2.0.0 ONE-B in phase 0\r\n"
	                    "500 5.5.2 Syntax error, command unrecognized\r\n");
	smtp_session_free(s);
	free(cap);
}

static void test_async_decisions(void **state)
{
	struct capture *cap = malloc(sizeof(*cap));
	struct smtp_session *s = session(cap, 0);
	const char *in = EH MF RT "DATA\r\nx\r\n.\r\n";
	struct smtp_reply ok = {250, "2.1.0", "Sender ok"};
	struct smtp_reply no = {550, "5.1.1", "Unknown"};
	struct smtp_reply fine = {250, "2.0.0", "Stored"};
	size_t n, off = 0, len = strlen(in);

	cap->async = 1;
	smtp_session_greet(s, NULL);
	assert_int_equal(smtp_session_decide(s, &ok), -1);
	n = smtp_session_feed(s, in, len);
	/* consumption stops right after MAIL, which awaits its decision */
	assert_int_equal(n, strlen(EH MF));
	assert_true(smtp_session_pending(s));
	assert_int_equal(smtp_session_feed(s, in + n, len - n), 0);
	drain(s, cap);
	assert_string_equal(cap->out, G EHR);
	assert_int_equal(smtp_session_decide(s, &ok), 0);
	off = n;
	off += smtp_session_feed(s, in + off, len - off);
	assert_int_equal(off, strlen(EH MF RT));
	assert_int_equal(smtp_session_decide(s, &no), 0);
	drain(s, cap);
	/* the refused recipient leaves no recipient: DATA is out of sequence */
	assert_string_equal(cap->out, G EHR "250 2.1.0 Sender ok\r\n550 5.1.1 Unknown\r\n");
	cap->out_len = 0;
	in = RT "DATA\r\nx\r\n.\r\nNOOP\r\n";
	len = strlen(in);
	off = smtp_session_feed(s, in, len);
	assert_int_equal(smtp_session_decide(s, &ok), 0);
	off += smtp_session_feed(s, in + off, len - off);
	assert_int_equal(off, strlen(RT "DATA\r\nx\r\n.\r\n"));
	assert_true(smtp_session_pending(s));
	assert_int_equal(smtp_session_decide(s, &fine), 0);
	off += smtp_session_feed(s, in + off, len - off);
	assert_int_equal(off, len);
	drain(s, cap);
	assert_string_equal(cap->out, "250 2.1.0 Sender ok\r\n" GO "250 2.0.0 Stored\r\n"
	                              "250 2.0.0 Ok\r\n");
	assert_string_equal(cap->ev, "M a@b.test;R c@d.test;R c@d.test;D x\r\n;");
	smtp_session_free(s);
	free(cap);
}

static void test_output_bound(void **state)
{
	struct capture *cap = malloc(sizeof(*cap));
	struct smtp_session *s = session(cap, 0);
	size_t n, len, out, i;
	char *in = malloc(100000 * 6);

	assert_non_null(in);
	for (i = 0; i < 100000; i++)
		memcpy(in + 6 * i, "NOOP\r\n", 6);
	len = 6 * 100000;
	smtp_session_greet(s, NULL);
	/* a client that never reads: the session stops consuming */
	n = smtp_session_feed(s, in, len);
	assert_true(n < len);
	smtp_session_output(s, &out);
	assert_true(out <= SMTP_OUT_HIGH + 64);
	assert_int_equal(smtp_session_feed(s, in + n, len - n), 0);
	smtp_session_drain(s, out);
	assert_true(smtp_session_feed(s, in + n, len - n) > 0);
	free(in);
	smtp_session_free(s);
	free(cap);
}

static void test_greet_refused(void **state)
{
	struct capture *cap = malloc(sizeof(*cap));
	struct smtp_session *s = session(cap, 0);
	struct smtp_reply r = {554, "5.7.1", "Blocked by reputation\r\nINJECT"};

	smtp_session_greet(s, &r);
	drain(s, cap);
	assert_string_equal(cap->out, "554 5.7.1 Blocked by reputation  INJECT\r\n");
	assert_true(smtp_session_closed(s));
	smtp_session_free(s);
	smtp_session_free(NULL);
	free(cap);
}

static void test_in_data(void **state)
{
	struct capture *cap = malloc(sizeof(*cap));
	struct smtp_session *s = session(cap, 0);
	const char *in = EH MF RT "DATA\r\npartial";

	smtp_session_greet(s, NULL);
	feed_all(s, cap, in, strlen(in));
	/* the connection closing now must deliver nothing */
	assert_true(smtp_session_in_data(s));
	assert_null(strstr(cap->ev, "D "));
	smtp_session_free(s);
	free(cap);
}

/* An AUTH response line may be 12288 octets with its CRLF (RFC 4954 §4), the command 512. */
static void test_auth_line_limits(void **state)
{
	const struct conv c = {"auth limits", 0, 0, NULL, NULL, NULL};
	/* 12284 'A's: valid base64 of NULs, so a PLAIN message with an empty user: 535 */
	char *ok = repeat(EH "AUTH PLAIN\r\n", 'A', 12284, "\r\nNOOP\r\n");
	char *bad = repeat(EH "AUTH PLAIN\r\n", 'A', 12287, "\r\nNOOP\r\n");
	char *cmd = repeat(EH "AUTH PLAIN ", 'A', 600, "\r\nNOOP\r\n");

	check_conv_auth(&c, AREQ, ok, strlen(ok), EHR_AUTH "334 \r\n" AUTH_BAD "250 2.0.0 Ok\r\n",
	                "");
	check_conv_auth(&c, AREQ, bad, strlen(bad),
	                EHR_AUTH "334 \r\n500 5.5.6 Authentication Exchange line is too long\r\n"
	                         "250 2.0.0 Ok\r\n",
	                "");
	check_conv_auth(&c, AREQ, cmd, strlen(cmd),
	                EHR_AUTH "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n", "");
	free(ok);
	free(bad);
	free(cmd);
}

/* The check runs elsewhere (SMTP_PENDING): MAIL pipelined after AUTH waits for it. */
static void test_auth_async(void **state)
{
	struct capture *cap = malloc(sizeof(*cap));
	struct smtp_session *s = session_auth(cap, 1, AREQ);
	const char *in = EH "AUTH PLAIN " PLAIN_BAD "\r\nAUTH PLAIN " PLAIN_OK "\r\n" MF;
	struct smtp_reply no = {535, "5.7.8", "Authentication credentials invalid"};
	struct smtp_reply yes = {235, "2.7.0", "Welcome"};
	struct smtp_reply ok = {250, "2.1.0", "Ok"};
	size_t off, len = strlen(in);

	tls_prelude(s, cap);
	cap->async = 1;
	off = smtp_session_feed(s, in, len);
	assert_int_equal(off, strlen(EH "AUTH PLAIN " PLAIN_BAD "\r\n"));
	assert_true(smtp_session_pending(s));
	assert_int_equal(smtp_session_feed(s, in + off, len - off), 0);
	assert_int_equal(smtp_session_decide(s, &no), 0);
	assert_null(smtp_session_auth_user(s));
	off += smtp_session_feed(s, in + off, len - off);
	assert_int_equal(off, len - strlen(MF));
	assert_int_equal(smtp_session_decide(s, &yes), 0);
	assert_string_equal(smtp_session_auth_user(s), "alice@b.test");
	off += smtp_session_feed(s, in + off, len - off);
	assert_int_equal(off, len);
	assert_int_equal(smtp_session_decide(s, &ok), 0);
	drain(s, cap);
	assert_string_equal(cap->out, EHR_AUTH AUTH_BAD "235 2.7.0 Welcome\r\n" OK_MAIL);
	assert_string_equal(cap->ev, EV_ALICE("PLAIN") EV_ALICE("PLAIN") "M a@b.test;");
	smtp_session_free(s);
	free(cap);
}

static void test_auth_user(void **state)
{
	struct capture *cap = malloc(sizeof(*cap));
	struct smtp_session *s = session_auth(cap, 1, ATLS);
	const char *bad = EH "AUTH PLAIN " PLAIN_BAD "\r\n";
	const char *good = "AUTH LOGIN " LOGIN_USER "\r\n" LOGIN_PASS "\r\n";

	tls_prelude(s, cap);
	assert_null(smtp_session_auth_user(s));
	feed_all(s, cap, bad, strlen(bad));
	assert_null(smtp_session_auth_user(s));
	feed_all(s, cap, good, strlen(good));
	assert_string_equal(smtp_session_auth_user(s), "alice@b.test");
	assert_string_equal(cap->out, EHR_AUTH AUTH_BAD "334 UGFzc3dvcmQ6\r\n" AUTH_OK);
	smtp_session_free(s);
	/* without an on_auth callback nobody gets in */
	{
		struct smtp_config cfg = {
		    .hostname = "mx.test", .tls_available = 1, .auth_available = 1};
		struct smtp_callbacks none = {0};
		struct err e;
		const char *in = "EHLO c.test\r\nSTARTTLS\r\n";
		size_t n;
		const char *out;

		s = smtp_session_new(&cfg, &none, NULL, &e);
		assert_non_null(s);
		smtp_session_greet(s, NULL);
		smtp_session_feed(s, in, strlen(in));
		assert_int_equal(smtp_session_starttls_done(s), 0);
		smtp_session_drain(s, 1 << 20);
		in = "EHLO c.test\r\nAUTH PLAIN " PLAIN_OK "\r\n";
		smtp_session_feed(s, in, strlen(in));
		out = smtp_session_output(s, &n);
		assert_non_null(memmem(out, n, AUTH_BAD, strlen(AUTH_BAD)));
		assert_null(smtp_session_auth_user(s));
		smtp_session_free(s);
	}
	free(cap);
}

/* Whatever happens to the credentials, no reply carries the password, in clear or base64. */
static void test_auth_password_never_echoed(void **state)
{
	static const char *const flows[] = {
	    EH "AUTH PLAIN AGFsaWNlQGIudGVzdABzM2NyM3QtUGE1NQ==\r\n" MF,
	    EH "AUTH LOGIN\r\n" LOGIN_USER "\r\nczNjcjN0LVBhNTU=\r\n" MF,
	    EH "AUTH LOGIN " LOGIN_USER "\r\nczNjcjN0LVBhNTU=\r\nAUTH PLAIN\r\n*\r\n",
	    /* refused: an unknown user with that password, then a malformed response */
	    EH "AUTH PLAIN AGJvYkBiLnRlc3QAczNjcjN0LVBhNTU=\r\nAUTH PLAIN czNjcjN0LVBhNTU=\r\n"
	       "AUTH LOGIN czNjcjN0LVBhNTU=\r\nczNjcjN0LVBhNTU\r\n",
	    /* in clear text */
	    "EHLO c.test\r\nAUTH PLAIN AGFsaWNlQGIudGVzdABzM2NyM3QtUGE1NQ==\r\n",
	};
	static const char *const secrets[] = {"s3cr3t", "czNjcjN0", "zM2NyM3Qt",
	                                      "AGFsaWNlQGIudGVzdABz"};

	for (size_t i = 0; i < sizeof(flows) / sizeof(flows[0]); i++) {
		const struct conv c = {"secret", 1, 0, NULL, NULL, NULL};
		struct capture *cap = malloc(sizeof(*cap));

		assert_non_null(cap);
		replay_auth(&c, i < 4 ? AREQ : A_AVAIL, flows[i], strlen(flows[i]), 0, 1, cap);
		for (size_t k = 0; k < sizeof(secrets) / sizeof(secrets[0]); k++)
			if (strstr(cap->out, secrets[k]) != NULL)
				fail_msg("flow %zu: '%s' in the replies:\n%s", i, secrets[k],
				         cap->out);
		/* and each flow did exercise the credentials as intended */
		assert_true(strstr(cap->out, i < 2 ? "235 " : i < 4 ? "50" : "538 ") != NULL);
		free(cap);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),
	    cmocka_unit_test(test_parse_values),
	    cmocka_unit_test(test_parse_limits),
	    cmocka_unit_test(test_parse_auth),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_conversations),
	    cmocka_unit_test(test_command_line_limit),
	    cmocka_unit_test(test_data_limits),
	    cmocka_unit_test(test_bdat_limits),
	    cmocka_unit_test(test_starttls_done),
	    cmocka_unit_test(test_async_decisions),
	    cmocka_unit_test(test_output_bound),
	    cmocka_unit_test(test_greet_refused),
	    cmocka_unit_test(test_added_extensions),
	    cmocka_unit_test(test_in_data),
	    cmocka_unit_test(test_auth_conversations),
	    cmocka_unit_test(test_auth_line_limits),
	    cmocka_unit_test(test_auth_async),
	    cmocka_unit_test(test_auth_user),
	    cmocka_unit_test(test_auth_password_never_echoed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
