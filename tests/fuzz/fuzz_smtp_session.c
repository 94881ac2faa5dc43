/*
 * fuzz_smtp_session.c - arbitrary client bytes through the SMTP session
 * engine.  The first byte picks the chunk size and options; the rest is fed
 * once in chunks and once a byte at a time: both must give the same replies
 * and the same messages, every reply must be well formed, and the pending
 * output must stay bounded while the client does not read.  In AUTH mode the
 * TLS handshake completes at once after STARTTLS, AUTH is required, and no
 * MAIL may reach the caller before an AUTH succeeded.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	char *out;
	size_t out_len, out_cap;
	uint64_t msgs; /* a running hash of the messages delivered */
	int async;
	int auth; /* AUTH mode */
};

static void append(struct run *r, const char *p, size_t n)
{
	if (r->out_len + n > r->out_cap) {
		size_t cap = r->out_cap ? r->out_cap * 2 : 4096;

		while (cap < r->out_len + n)
			cap *= 2;
		r->out = realloc(r->out, cap);
		if (r->out == NULL)
			abort();
		r->out_cap = cap;
	}
	memcpy(r->out + r->out_len, p, n);
	r->out_len += n;
}

static int on_mail(void *ctx, struct smtp_session *s, const struct smtp_command *c,
                   struct smtp_reply *r)
{
	struct run *run = ctx;

	if (run->auth && smtp_session_auth_user(s) == NULL)
		__builtin_trap();
	return SMTP_DECIDED;
}

/* u@x / pw is good */
static int on_auth(void *ctx, struct smtp_session *s, const char *mech, const char *user,
                   const char *pass, struct smtp_reply *r)
{
	struct run *run = ctx;

	if (user[0] == '\0' || pass[0] == '\0' || smtp_session_auth_user(s) != NULL)
		__builtin_trap();
	if (strcmp(user, "u@x") != 0 || strcmp(pass, "pw") != 0) {
		r->code = 535;
		memcpy(r->status, "5.7.8", 6);
	}
	return run->async ? SMTP_PENDING : SMTP_DECIDED;
}

/* the handshake succeeds at once (in the callback, so that chunking does not matter) */
static void on_starttls(void *ctx, struct smtp_session *s)
{
	struct run *run = ctx;

	if (run->auth && smtp_session_starttls_done(s) != 0)
		__builtin_trap();
}

static int on_rcpt(void *ctx, struct smtp_session *s, const struct smtp_command *c,
                   struct smtp_reply *r)
{
	struct run *run = ctx;

	if (c->path[0] == 'x') {
		r->code = 550;
		memcpy(r->status, "5.1.1", 6);
	}
	return run->async ? SMTP_PENDING : SMTP_DECIDED;
}

static int on_data(void *ctx, struct smtp_session *s, const char *msg, size_t len,
                   struct smtp_reply *r)
{
	struct run *run = ctx;
	size_t i;

	/* a delivered message never holds a bare CR or LF */
	for (i = 0; i < len; i++)
		if ((msg[i] == '\r') != (i + 1 < len && msg[i + 1] == '\n') ||
		    (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r')))
			__builtin_trap();
	for (i = 0; i < len; i++)
		run->msgs = run->msgs * 1099511628211ULL + (unsigned char)msg[i];
	run->msgs = run->msgs * 31 + len + 1;
	return SMTP_DECIDED;
}

static const struct smtp_callbacks cbs = {.on_mail = on_mail,
                                          .on_rcpt = on_rcpt,
                                          .on_data = on_data,
                                          .on_starttls = on_starttls,
                                          .on_auth = on_auth};

static void drain(struct smtp_session *s, struct run *r)
{
	size_t n;
	const char *o = smtp_session_output(s, &n);

	if (n > SMTP_OUT_HIGH + 1024)
		__builtin_trap();
	append(r, o, n);
	smtp_session_drain(s, n);
}

static void run_once(const uint8_t *data, size_t size, size_t chunk, int tls, struct run *r)
{
	struct smtp_config cfg = {.hostname = "mx.fuzz",
	                          .max_size = 2048,
	                          .max_rcpts = 4,
	                          .tls_available = tls || r->auth,
	                          .auth_available = r->auth,
	                          .auth_required = r->auth};
	struct smtp_reply ok = {250, "2.1.5", "Ok"};
	struct err e;
	struct smtp_session *s = smtp_session_new(&cfg, &cbs, r, &e);
	size_t off = 0;

	if (s == NULL)
		abort();
	smtp_session_greet(s, NULL);
	while (off < size && !smtp_session_closed(s)) {
		size_t want = size - off < chunk ? size - off : chunk;
		size_t n = smtp_session_feed(s, (const char *)data + off, want);

		if (n > want)
			__builtin_trap();
		drain(s, r);
		if (smtp_session_pending(s))
			smtp_session_decide(s, &ok);
		else if (n == 0 && want > 0)
			__builtin_trap(); /* stuck with nothing to wait for */
		off += n;
	}
	drain(s, r);
	smtp_session_free(s);
}

static void check_replies(const struct run *r)
{
	size_t i = 0;

	while (i < r->out_len) {
		const char *p = r->out + i;
		const char *eol = memchr(p, '\n', r->out_len - i);

		if (eol == NULL || eol == p || eol[-1] != '\r' || eol - p < 5)
			__builtin_trap();
		if (p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' ||
		    p[2] > '9' || (p[3] != ' ' && p[3] != '-'))
			__builtin_trap();
		if (memchr(p, '\r', (size_t)(eol - p - 1)) != NULL)
			__builtin_trap();
		i = (size_t)(eol - r->out) + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run a = {0}, b = {0};
	size_t chunk;
	int tls;

	if (size < 1)
		return 0;
	chunk = (data[0] & 0x1f) + 1;
	a.auth = b.auth = (data[0] >> 5) & 1;
	tls = (data[0] >> 6) & 1;
	a.async = b.async = data[0] >> 7;
	run_once(data + 1, size - 1, chunk, tls, &a);
	run_once(data + 1, size - 1, 1, tls, &b);
	check_replies(&a);
	if (a.out_len != b.out_len || (a.out_len && memcmp(a.out, b.out, a.out_len) != 0) ||
	    a.msgs != b.msgs)
		__builtin_trap();
	free(a.out);
	free(b.out);
	return 0;
}
