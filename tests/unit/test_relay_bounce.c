/*
 * Tests of the relay's delivery status notifications (relay/bounce.c): the
 * DSN is taken apart again with a small MIME reader (CRLF lines of at most
 * 998 octets, the boundary from the top Content-Type, three parts of the
 * right types) and its fields are checked per failed recipient.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay.h"

static const char original[] = "Received: from a.example by b.example; Tue, 1 Jan 2030\r\n"
                               "From: Alice <alice@example.org>\r\n"
                               "To: bob@x.example, carol@x.example\r\n"
                               "Subject: hello\r\n"
                               "Message-ID: <m1@example.org>\r\n"
                               "\r\n"
                               "SECRET BODY\r\n";

/* ------------------------------------------------------------------ a small MIME reader */

/* Every line ends in CRLF, none is longer than 998 octets, no bare CR or LF. */
static void assert_lines_ok(const char *m, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\r') {
			assert_true(i + 1 < len && m[i + 1] == '\n');
		} else if (m[i] == '\n') {
			assert_true(i > 0 && m[i - 1] == '\r');
			if (i - 1 - start > 998)
				fail_msg("a line of %zu octets", i - 1 - start);
			start = i + 1;
		}
	}
	assert_int_equal(start, len); /* ends with CRLF */
}

/* The unfolded value of the first field called name in the header section hdrs
 * (which ends at the first empty line); malloc'd, NULL when absent. */
static char *field(const char *hdrs, const char *name)
{
	size_t n = strlen(name);
	const char *p = hdrs;

	while (*p && !(p[0] == '\r' && p[1] == '\n')) {
		const char *eol = strstr(p, "\r\n");

		if (eol == NULL)
			return NULL;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *end = eol;
			char *out, *w;

			while (end[2] == ' ' || end[2] == '\t')
				end = strstr(end + 2, "\r\n");
			out = malloc((size_t)(end - v) + 1);
			for (w = out; v < end; v++)
				if (*v != '\r' && *v != '\n')
					*w++ = *v;
			*w = '\0';
			for (w = out; *w == ' ' || *w == '\t'; w++)
				;
			memmove(out, w, strlen(w) + 1);
			return out;
		}
		p = eol + 2;
	}
	return NULL;
}

static void assert_field(const char *hdrs, const char *name, const char *want)
{
	char *v = field(hdrs, name);

	if (v == NULL)
		fail_msg("no %s field", name);
	if (strcmp(v, want) != 0)
		fail_msg("%s: \"%s\", wanted \"%s\"", name, v, want);
	free(v);
}

/* The body of a header-then-body block. */
static const char *body_of(const char *block)
{
	const char *p = strstr(block, "\r\n\r\n");

	return p != NULL ? p + 4 : NULL;
}

struct parts {
	char boundary[128];
	char *part[4]; /* malloc'd: each part's headers and body */
	int n;
	int closed;
};

static void split(const char *msg, struct parts *out)
{
	char *ct = field(msg, "Content-Type"), *b, delim[140];
	const char *p, *next;

	memset(out, 0, sizeof(*out));
	assert_non_null(ct);
	assert_non_null(strstr(ct, "multipart/report"));
	assert_non_null(strstr(ct, "report-type=delivery-status"));
	b = strstr(ct, "boundary=\"");
	assert_non_null(b);
	b += 10;
	*strchr(b, '"') = '\0';
	snprintf(out->boundary, sizeof(out->boundary), "%s", b);
	free(ct);
	snprintf(delim, sizeof(delim), "\r\n--%s", out->boundary);
	p = strstr(msg, delim);
	assert_non_null(p);
	while (p != NULL) {
		p += strlen(delim);
		if (strncmp(p, "--\r\n", 4) == 0) {
			out->closed = 1;
			assert_string_equal(p + 4, ""); /* nothing after the closing delimiter */
			break;
		}
		assert_int_equal(strncmp(p, "\r\n", 2), 0);
		p += 2;
		next = strstr(p, delim);
		assert_non_null(next);
		assert_true(out->n < 4);
		out->part[out->n] = strndup(p, (size_t)(next - p) + 2);
		out->n++;
		p = next;
	}
}

static void parts_free(struct parts *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->part[i]);
}

/* The per-recipient group of the delivery-status body naming addr. */
static char *group_of(const char *status_body, const char *addr)
{
	char want[600];
	const char *g = status_body;

	snprintf(want, sizeof(want), "Final-Recipient: rfc822; %s\r\n", addr);
	while (g != NULL && *g) {
		const char *end = strstr(g, "\r\n\r\n");
		size_t n = end != NULL ? (size_t)(end - g) + 4 : strlen(g);

		if (strncmp(g, want, strlen(want)) == 0)
			return strndup(g, n);
		g = end != NULL ? end + 4 : NULL;
	}
	return NULL;
}

/* ------------------------------------------------------------------ fixtures */

static struct queue_rcpt rcpts[6];
static struct queue_msg msg;
static char longreply[1001];

static void setup_msg(void)
{
	static char sender[] = "alice@example.org";
	static char *addrs[] = {"bob@x.example", "carol@x.example", "dave@y.example",
	                        "eve@z.example", "frank@w.example", "gina@v.example"};
	static char *replies[] = {"550 5.1.1 <bob@x.example>: Recipient address rejected",
	                          "250 2.0.0 Ok: queued",
	                          "expired in queue; last reply: 451 4.4.1 connection timed out",
	                          "cannot connect to z.example: Connection refused",
	                          NULL,
	                          "554 not today\x01\xff"};

	memset(longreply, 0, sizeof(longreply));
	memcpy(longreply, "552 5.3.4 ", 10);
	for (size_t i = 10; i < 1000; i++)
		longreply[i] = i % 9 == 0 ? ' ' : 'w';
	for (size_t i = 600; i < 990; i++)
		longreply[i] = 'L'; /* one word longer than a line should be */
	replies[4] = longreply;
	memset(&msg, 0, sizeof(msg));
	snprintf(msg.id, sizeof(msg.id), "0123456789abcdef0123456789abcdef");
	msg.sender = sender;
	msg.arrival = 1893456000; /* Tue, 1 Jan 2030 00:00:00 +0000 */
	msg.nrcpt = 6;
	msg.rcpts = rcpts;
	for (int i = 0; i < 6; i++) {
		rcpts[i].addr = addrs[i];
		rcpts[i].reply = replies[i];
		rcpts[i].status = i == 1 ? QUEUE_DELIVERED : QUEUE_FAILED;
	}
}

static struct relay_settings settings(void)
{
	struct relay_settings s;

	memset(&s, 0, sizeof(s));
	s.hostname = "mx.relay.example";
	return s;
}

/* ------------------------------------------------------------------ tests */

static void test_dsn(void **state)
{
	struct relay_settings s = settings();
	const size_t failed[] = {0, 2, 3, 4, 5};
	struct err e = {0};
	struct parts p;
	size_t len = 0;
	char *dsn, *g;
	const char *body;

	setup_msg();
	dsn = relay_bounce_build(&s, &msg, original, strlen(original), failed, 5, &len, &e);
	if (dsn == NULL)
		fail_msg("bounce: %s", e.msg);
	assert_int_equal(strlen(dsn), len);
	assert_lines_ok(dsn, len);

	/* the top */
	assert_field(dsn, "From", "Mail Delivery System <MAILER-DAEMON@mx.relay.example>");
	assert_field(dsn, "To", "<alice@example.org>");
	assert_field(dsn, "MIME-Version", "1.0");
	assert_field(dsn, "Auto-Submitted", "auto-replied");
	g = field(dsn, "Date");
	assert_non_null(g);
	free(g);
	g = field(dsn, "Message-ID");
	assert_non_null(g);
	assert_non_null(strstr(g, "@mx.relay.example>"));
	free(g);

	split(dsn, &p);
	assert_int_equal(p.n, 3);
	assert_true(p.closed);

	/* 1: the human part lists each failed recipient with its reply, not the delivered one */
	g = field(p.part[0], "Content-Type");
	assert_string_equal(g, "text/plain; charset=us-ascii");
	free(g);
	body = body_of(p.part[0]);
	assert_non_null(strstr(body, "<bob@x.example>: 550 5.1.1 <bob@x.example>: Recipient"));
	assert_non_null(strstr(body, "<dave@y.example>: expired in queue; last reply: 451 4.4.1"));
	assert_non_null(strstr(body, "<eve@z.example>: cannot connect to z.example"));
	assert_non_null(strstr(body, "<frank@w.example>: 552 5.3.4"));
	assert_non_null(strstr(body, "<gina@v.example>: 554 not today ?"));
	assert_null(strstr(body, "carol"));

	/* 2: the delivery-status */
	g = field(p.part[1], "Content-Type");
	assert_string_equal(g, "message/delivery-status");
	free(g);
	body = body_of(p.part[1]);
	assert_field(body, "Reporting-MTA", "dns; mx.relay.example");
	assert_field(body, "Arrival-Date", "Tue, 1 Jan 2030 00:00:00 +0000");
	assert_null(group_of(body, "carol@x.example"));

	g = group_of(body, "bob@x.example");
	assert_non_null(g);
	assert_field(g, "Action", "failed");
	assert_field(g, "Status", "5.1.1");
	assert_field(g, "Diagnostic-Code",
	             "smtp; 550 5.1.1 <bob@x.example>: Recipient address rejected");
	free(g);

	g = group_of(body, "dave@y.example");
	assert_non_null(g);
	assert_field(g, "Action", "failed");
	assert_field(g, "Status", "4.4.7");
	assert_field(g, "Diagnostic-Code", "smtp; 451 4.4.1 connection timed out");
	free(g);

	g = group_of(body, "eve@z.example");
	assert_non_null(g);
	assert_field(g, "Status", "5.0.0");
	assert_field(g, "Diagnostic-Code",
	             "X-Anchor-Relay; cannot connect to z.example: Connection refused");
	free(g);

	g = group_of(body, "frank@w.example");
	assert_non_null(g);
	assert_field(g, "Status", "5.3.4");
	free(g);

	g = group_of(body, "gina@v.example");
	assert_non_null(g);
	assert_field(g, "Status", "5.0.0"); /* a 5xx without an enhanced code */
	free(g);

	/* 3: the original's header section, without its body */
	g = field(p.part[2], "Content-Type");
	assert_string_equal(g, "text/rfc822-headers");
	free(g);
	body = body_of(p.part[2]);
	assert_non_null(strstr(body, "Subject: hello\r\n"));
	assert_non_null(strstr(body, "Message-ID: <m1@example.org>\r\n"));
	assert_null(strstr(dsn, "SECRET BODY"));

	parts_free(&p);
	free(dsn);
}

/* DSN (RFC 3461): ENVID and ORCPT shown decoded, the action and its status class, the
 * whole message for a failure with RET=FULL, headers only for any other report. */
static void test_dsn_reports(void **state)
{
	struct relay_settings s = settings();
	const size_t one[] = {0}, relayed[] = {1};
	static char envid[] = "QQ+2B314159", orcpt[] = "rfc822;Bob+2Bx@x.example";
	struct err e = {0};
	struct parts p;
	size_t len = 0;
	char *dsn, *g;

	setup_msg();
	msg.dsn_envid = envid;
	msg.dsn_ret = DSN_RET_FULL;
	rcpts[0].dsn_orcpt = orcpt;
	dsn = relay_report_build(&s, &msg, original, strlen(original), one, 1, RELAY_DSN_FAILED,
	                         &len, &e);
	assert_non_null(dsn);
	assert_lines_ok(dsn, len);
	split(dsn, &p);
	assert_int_equal(p.n, 3);
	assert_non_null(strstr(p.part[1], "Original-Envelope-Id: QQ+314159\r\n"));
	assert_non_null(strstr(p.part[1], "Original-Recipient: rfc822; Bob+x@x.example\r\n"));
	assert_non_null(strstr(p.part[1], "Action: failed\r\n"));
	g = field(p.part[2], "Content-Type");
	assert_string_equal(g, "message/rfc822");
	free(g);
	assert_non_null(strstr(p.part[2], "SECRET BODY"));
	parts_free(&p);
	free(dsn);

	/* a success report never carries the body, whatever RET says */
	dsn = relay_report_build(&s, &msg, original, strlen(original), relayed, 1,
	                         RELAY_DSN_RELAYED, &len, &e);
	assert_non_null(dsn);
	assert_field(dsn, "Subject", "Mail Relayed to a Server without Delivery Reports");
	split(dsn, &p);
	assert_non_null(strstr(p.part[1], "Action: relayed\r\n"));
	assert_non_null(strstr(p.part[1], "Status: 2.0.0\r\n"));
	assert_null(strstr(dsn, "SECRET BODY"));
	parts_free(&p);
	free(dsn);
	rcpts[0].dsn_orcpt = NULL;
	msg.dsn_envid = NULL;
	msg.dsn_ret = DSN_RET_NONE;
}

/* Bare LF originals, over-long header lines and 8-bit headers still give a clean DSN. */
static void test_awkward_original(void **state)
{
	struct relay_settings s = settings();
	const size_t failed[] = {0};
	struct err e = {0};
	struct parts p;
	size_t len = 0, n;
	char *orig, *dsn, *g;

	setup_msg();
	orig = malloc(3000);
	n = (size_t)snprintf(orig, 3000, "From: a@example.org\nX-Long: ");
	memset(orig + n, 'x', 2000);
	n += 2000;
	n += (size_t)snprintf(orig + n, 3000 - n, "\nSubject: h\xc3\xa9llo\n\nbody\n");
	dsn = relay_bounce_build(&s, &msg, orig, n, failed, 1, &len, &e);
	if (dsn == NULL)
		fail_msg("bounce: %s", e.msg);
	assert_lines_ok(dsn, len);
	split(dsn, &p);
	assert_int_equal(p.n, 3);
	g = field(p.part[2], "Content-Transfer-Encoding");
	assert_string_equal(g, "8bit");
	free(g);
	assert_non_null(strstr(p.part[2], "From: a@example.org\r\n"));
	assert_non_null(strstr(p.part[2], "Subject: h\xc3\xa9llo\r\n"));
	assert_null(strstr(dsn, "body"));
	parts_free(&p);
	free(dsn);
	free(orig);
}

static void test_refusals(void **state)
{
	struct relay_settings s = settings();
	const size_t failed[] = {0}, outside[] = {6};
	struct err e = {0};
	size_t len = 0;
	char empty[] = "";

	setup_msg();
	assert_null(relay_bounce_build(&s, &msg, original, strlen(original), outside, 1, &len, &e));
	assert_string_equal(e.code, "bad_request");
	assert_null(relay_bounce_build(&s, &msg, original, strlen(original), failed, 0, &len, &e));
	assert_string_equal(e.code, "bad_request");
	msg.sender = empty;
	assert_null(relay_bounce_build(&s, &msg, original, strlen(original), failed, 1, &len, &e));
	assert_string_equal(e.code, "null_sender");
	assert_int_equal(e.kind, ERR_INPUT);
}

/* Two bounces never share a boundary or a Message-ID. */
static void test_unique(void **state)
{
	struct relay_settings s = settings();
	const size_t failed[] = {0};
	struct err e = {0};
	struct parts a, b;
	size_t len;
	char *d1, *d2, *m1, *m2;

	setup_msg();
	d1 = relay_bounce_build(&s, &msg, original, strlen(original), failed, 1, &len, &e);
	d2 = relay_bounce_build(&s, &msg, original, strlen(original), failed, 1, &len, &e);
	assert_non_null(d1);
	assert_non_null(d2);
	split(d1, &a);
	split(d2, &b);
	assert_string_not_equal(a.boundary, b.boundary);
	m1 = field(d1, "Message-ID");
	m2 = field(d2, "Message-ID");
	assert_string_not_equal(m1, m2);
	free(m1);
	free(m2);
	parts_free(&a);
	parts_free(&b);
	free(d1);
	free(d2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dsn),         cmocka_unit_test(test_awkward_original),
	    cmocka_unit_test(test_dsn_reports), cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_unique),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
