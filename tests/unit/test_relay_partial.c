/*
 * test_relay_partial.c - receiver-chosen transfer: the views of lib/mail/mime_view (the
 * text part found at any depth, the attachment left out, signed fields kept byte for
 * byte, unreadable MIME giving less, never more) and the Anchor-Partial field of
 * relay/partial_view.c (accepted forms, every refused one, the writer read back), and the
 * peer list both relay-to-relay extensions share (relay/peers.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/mime_view.h"
#include "partial.h"
#include "peers.h"

#define HEAD                                                                                       \
	"DKIM-Signature: v=1; d=x.test; s=s; h=from:subject; bh=AAA=; b=BBB=\r\n"                  \
	"From: Alice <alice@x.test>\r\nTo: bob@dest.test\r\nSubject: report\r\n"                   \
	"Message-ID: <1@x.test>\r\n"

static char *view(const char *msg, enum mail_view v)
{
	struct err e = {0};
	size_t n = 0;
	char *out = mail_view_build(msg, strlen(msg), v, &n, &e);

	assert_non_null(out);
	assert_int_equal(strlen(out), n);
	return out;
}

static void test_text_view_keeps_one_text_part(void **state)
{
	const char *msg =
	    HEAD "Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
	         "preamble\r\n--XX\r\nContent-Type: application/pdf\r\n\r\nPDFDATA\r\n"
	         "--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
	         "--XX\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--XX--\r\n";
	char *v = view(msg, MAIL_VIEW_TEXT);

	(void)state;
	/* the header section byte for byte, then the first text part alone */
	assert_memory_equal(v, msg, strlen(HEAD));
	assert_non_null(strstr(v, "boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain; "
	                          "charset=utf-8\r\n\r\nhello\r\n--XX--\r\n"));
	assert_null(strstr(v, "PDFDATA"));
	assert_null(strstr(v, "second"));
	assert_null(strstr(v, "preamble"));
	free(v);
}

static void test_text_view_nested_and_defaults(void **state)
{
	const char *nested =
	    HEAD "Content-Type: multipart/mixed; boundary=o\r\n\r\n"
	         "--o\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n"
	         "--i\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n"
	         "--i\r\nContent-Type: TEXT/Plain\r\n\r\nplain\r\n--i--\r\n"
	         "--o\r\nContent-Type: image/png\r\n\r\nPNG\r\n--o--\r\n";
	const char *plain = HEAD "\r\nthe whole body\r\n";
	const char *pdf = HEAD "Content-Type: application/pdf\r\n\r\nPDF\r\n";
	const char *unterminated =
	    HEAD "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\r\ntext, no end\r\n";
	char *v;

	(void)state;
	v = view(nested, MAIL_VIEW_TEXT);
	assert_non_null(strstr(v, "\r\n\r\n--o\r\nContent-Type: TEXT/Plain\r\n\r\nplain\r\n--o--"));
	assert_null(strstr(v, "<p>x</p>"));
	assert_null(strstr(v, "PNG"));
	free(v);
	v = view(plain, MAIL_VIEW_TEXT); /* no Content-Type: text/plain, whole */
	assert_string_equal(v, plain);
	free(v);
	v = view(pdf, MAIL_VIEW_TEXT); /* no text at all: the header only */
	assert_null(strstr(v, "PDF\r\n"));
	assert_true(strlen(v) == strlen(pdf) - strlen("PDF\r\n"));
	free(v);
	v = view(unterminated, MAIL_VIEW_TEXT); /* a part without its end is not taken */
	assert_null(strstr(v, "text, no end"));
	free(v);
}

static void test_headers_signers_hash(void **state)
{
	const char *msg = HEAD "Received: from a by b\r\n\r\nbody\r\n";
	char *v;

	(void)state;
	v = view(msg, MAIL_VIEW_HEADERS);
	assert_string_equal(v, HEAD "Received: from a by b\r\n\r\n");
	free(v);
	v = view(msg, MAIL_VIEW_SIGNERS);
	assert_string_equal(v, "DKIM-Signature: v=1; d=x.test; s=s; h=from:subject; bh=AAA=; "
	                       "b=BBB=\r\nFrom: Alice <alice@x.test>\r\nSubject: report\r\n"
	                       "Message-ID: <1@x.test>\r\n\r\n");
	free(v);
	v = view(msg, MAIL_VIEW_HASH);
	assert_string_equal(v, "From: Alice <alice@x.test>\r\nMessage-ID: <1@x.test>\r\n\r\n");
	free(v);
	v = view(msg, MAIL_VIEW_FULL);
	assert_string_equal(v, msg);
	free(v);
}

static void test_view_names(void **state)
{
	enum mail_view v;
	struct err e = {0};
	size_t n;

	(void)state;
	assert_int_equal(mail_view_parse("TEXT", 4, &v), 0);
	assert_int_equal(v, MAIL_VIEW_TEXT);
	assert_int_equal(mail_view_parse("texts", 5, &v), -1);
	assert_int_equal(mail_view_parse("", 0, &v), -1);
	assert_string_equal(mail_view_name(MAIL_VIEW_SIGNERS), "signers");
	assert_null(mail_view_build("x", 1, MAIL_VIEW_NONE, &n, &e));
	assert_string_equal(e.code, "bad_view");
}

#define H64A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define H64B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int parse(const char *v, struct relay_partial_meta *m, struct err *e)
{
	return relay_partial_meta_parse(v, strlen(v), m, e);
}

static void test_meta_accepted_and_written_back(void **state)
{
	struct relay_partial_meta m, again;
	struct err e = {0};
	char *field;

	(void)state;
	assert_int_equal(parse("view=text; size=123; sha256=" H64A ";\r\n\ttoken=" H64B
	                       "; fetch=127.0.0.1:2525",
	                       &m, &e),
	                 0);
	assert_int_equal(m.view, MAIL_VIEW_TEXT);
	assert_int_equal(m.size, 123);
	assert_string_equal(m.host, "127.0.0.1");
	assert_int_equal(m.port, 2525);
	assert_int_equal(
	    parse("fetch=[::1]:25;token=" H64B ";sha256=" H64A ";size=0;view=headers", &m, &e), 0);
	assert_string_equal(m.host, "::1");
	field = relay_partial_meta_field(&m);
	assert_non_null(field);
	assert_int_equal(strncmp(field, "Anchor-Partial: ", 16), 0);
	assert_int_equal(parse(field + 15, &again, &e), 0);
	assert_memory_equal(&again, &m, sizeof(m));
	free(field);
}

static void test_meta_refused(void **state)
{
	static const char *const bad[] = {
	    "",
	    "view=full; size=1; sha256=" H64A "; token=" H64B "; fetch=127.0.0.1:25",
	    "view=text; size=1; sha256=" H64A "; token=" H64B,
	    "view=text; size=1; size=2; sha256=" H64A "; token=" H64B "; fetch=127.0.0.1:25",
	    "view=text; size=-1; sha256=" H64A "; token=" H64B "; fetch=127.0.0.1:25",
	    "view=text; size=1; sha256=" H64A "A; token=" H64B "; fetch=127.0.0.1:25",
	    "view=text; size=1; sha256=" H64A "; token=" H64B "; fetch=mx.x.test:25",
	    "view=text; size=1; sha256=" H64A "; token=" H64B "; fetch=127.0.0.1:0",
	    "view=text; size=1; sha256=" H64A "; token=" H64B "; fetch=127.0.0.1:65536",
	    "view=text; size=1; sha256=" H64A "; token=" H64B "; fetch=127.0.0.1:25; x=1",
	    "view=text size=1; sha256=" H64A "; token=" H64B "; fetch=127.0.0.1:25",
	};
	struct relay_partial_meta m;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err e = {0};

		assert_int_equal(parse(bad[i], &m, &e), -1);
		assert_string_equal(e.code, "bad_partial");
	}
}

/* anchored_peers: one name per key pin, exact matches only; malformed lists refused. */
static void test_peer_list(void **state)
{
	const char *list = " mx.a.test=sha256:AAAA ,b=sha256:BBBB,\tc=sha256:AAAAB";
	char name[RELAY_PEER_NAME_MAX];
	struct err e = {0};

	(void)state;
	assert_int_equal(relay_peers_check(list, &e), 0);
	assert_int_equal(relay_peers_check("", &e), 0);
	assert_int_equal(relay_peer_of_pin(list, "sha256:AAAA", name, sizeof(name)), 1);
	assert_string_equal(name, "mx.a.test");
	assert_int_equal(relay_peer_of_pin(list, "sha256:AAAAB", name, sizeof(name)), 1);
	assert_string_equal(name, "c");
	assert_int_equal(relay_peer_of_pin(list, "sha256:AAA", name, sizeof(name)), 0);
	assert_int_equal(relay_peer_of_pin(list, "sha256:BBBB ", name, sizeof(name)), 0);
	assert_int_equal(relay_peer_of_pin("", "sha256:AAAA", name, sizeof(name)), 0);
	/* a name that does not fit is no match, never a truncated one */
	assert_int_equal(relay_peer_of_pin(list, "sha256:AAAA", name, 4), 0);
	const char *bad[] = {"127.0.0.1", "a=",      "=sha256:x",   "a b=sha256:x",
	                     "a=sha256:", "a=pin:x", "a=sha256:x,b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(relay_peers_check(bad[i], &e), -1);
		assert_string_equal(e.code, "bad_config");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_text_view_keeps_one_text_part),
	    cmocka_unit_test(test_text_view_nested_and_defaults),
	    cmocka_unit_test(test_headers_signers_hash),
	    cmocka_unit_test(test_view_names),
	    cmocka_unit_test(test_meta_accepted_and_written_back),
	    cmocka_unit_test(test_meta_refused),
	    cmocka_unit_test(test_peer_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
