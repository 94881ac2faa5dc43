/* test_http_gate.c - the request gate (lib/http_gate.c) and log escaping (lib/log.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_gate.h"
#include "core/utf8.h"
#include "core/log.h"

#define U(s) ((const unsigned char *)(s))

static void test_utf8(void **state)
{
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
	    {"", 1},
	    {"plain ascii", 1},
	    {"caf\xc3\xa9", 1},      /* U+00E9 */
	    {"\xe2\x82\xac", 1},     /* U+20AC */
	    {"\xf0\x9f\x98\x80", 1}, /* U+1F600 */
	    {"\xf4\x8f\xbf\xbf", 1}, /* U+10FFFF, the last */
	    {"\xef\xbf\xbd", 1},     /* U+FFFD */
	    {"\xff\xfe", 0},         /* never in UTF-8 */
	    {"\xc0\xaf", 0},         /* overlong '/' */
	    {"\xc1\xbf", 0},         /* overlong */
	    {"\xe0\x80\xaf", 0},     /* overlong '/' in three bytes */
	    {"\xf0\x80\x80\xaf", 0}, /* overlong in four bytes */
	    {"\xed\xa0\x80", 0},     /* U+D800, a surrogate */
	    {"\xed\xbf\xbf", 0},     /* U+DFFF */
	    {"\xf4\x90\x80\x80", 0}, /* U+110000 */
	    {"\xf5\x80\x80\x80", 0},
	    {"\xc3", 0}, /* cut short */
	    {"\xe2\x82", 0},
	    {"\xc3(", 0}, /* ASCII where a continuation belongs */
	    {"\x80", 0},  /* a lone continuation byte */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (utf8_valid(U(cases[i].s), strlen(cases[i].s)) != cases[i].ok)
			fail_msg("case %zu: expected %d", i, cases[i].ok);
	}
	assert_int_equal(utf8_seq(U("\xc3\xa9x"), 3), 2);
	assert_int_equal(utf8_seq(U("\xc3\xa9"), 1), 0); /* cut by len */
	assert_int_equal(utf8_seq(U("\n"), 1), 1);
	assert_int_equal(utf8_seq(U("\xff"), 1), 0);
	assert_int_equal(utf8_seq(U(""), 0), 0);
}

static void test_utf8_sanitize(void **state)
{
	char s1[] = "ok caf\xc3\xa9 \xff\xfe \xed\xa0\x80 \xc3";
	char s2[] = "unchanged \xf0\x9f\x98\x80";

	(void)state;
	utf8_sanitize(s1);
	assert_string_equal(s1, "ok caf\xc3\xa9 ?? ??? ?");
	assert_true(utf8_valid(U(s1), strlen(s1)));
	utf8_sanitize(s2);
	assert_string_equal(s2, "unchanged \xf0\x9f\x98\x80");
}

static void test_target(void **state)
{
	static const struct {
		const char *t;
		enum http_gate_verdict v;
	} cases[] = {
	    {"/", HTTP_GATE_OK},
	    {"/v1/domains/demo.example", HTTP_GATE_OK},
	    {"/v1/query?helo=ok.csa.test&ip=192.0.2.1", HTTP_GATE_OK},
	    {"/v1/addresses/alice%40demo.example", HTTP_GATE_OK},
	    {"/v1/caf%C3%A9?q=caf%c3%a9+x", HTTP_GATE_OK},
	    {"/v1/caf\xc3\xa9", HTTP_GATE_OK}, /* raw UTF-8: decoded it is the same */
	    {"/v1/domains/demo.example%00.evil.example", HTTP_GATE_NUL},
	    {"/v1/addresses/alice@demo.example%00junk", HTTP_GATE_NUL},
	    {"/v1/query?helo=ok.csa.test%00junk", HTTP_GATE_NUL},
	    {"/v1/query?h%00=x", HTTP_GATE_NUL}, /* in a key too */
	    {"/%ff%00", HTTP_GATE_NUL},          /* a NUL is named even after bad UTF-8 */
	    {"/healthz/%ff%fe", HTTP_GATE_BAD_UTF8},
	    {"/v1/domains/demo.example/%ff%fe", HTTP_GATE_BAD_UTF8},
	    {"/%c0%af", HTTP_GATE_BAD_UTF8},
	    {"/%ed%a0%80", HTTP_GATE_BAD_UTF8},
	    {"/x?a=%c3", HTTP_GATE_BAD_UTF8},    /* cut at the end */
	    {"/x%c3?a=%a9", HTTP_GATE_BAD_UTF8}, /* '?' ends a sequence */
	    {"/\xff", HTTP_GATE_BAD_UTF8},
	    {"/a%zzb", HTTP_GATE_BAD_ESCAPE},
	    {"/a%4", HTTP_GATE_BAD_ESCAPE},
	    {"/a%", HTTP_GATE_BAD_ESCAPE},
	    {"/a%%00", HTTP_GATE_BAD_ESCAPE}, /* no second decoding pass to hide %00 */
	    {"/a%2500", HTTP_GATE_OK},        /* "%00" as text, decoded once */
	    {"/a\x01", HTTP_GATE_RAW_CONTROL},
	    {"/a\x7f", HTTP_GATE_RAW_CONTROL},
	    {"/a%0a", HTTP_GATE_OK}, /* a decoded control byte is the handlers' (and logs') */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum http_gate_verdict v = http_gate_target(cases[i].t, strlen(cases[i].t));

		if (v != cases[i].v)
			fail_msg("%s: verdict %d, expected %d", cases[i].t, v, cases[i].v);
	}
	/* the length given is what counts, not a NUL in the buffer */
	assert_int_equal(http_gate_target("/a\0b", 4), HTTP_GATE_NUL);
	assert_int_equal(http_gate_target("/a%00", 2), HTTP_GATE_OK);
	assert_int_equal(http_gate_target("/a%00", 4), HTTP_GATE_BAD_ESCAPE);
}

struct field {
	const char *name, *value;
};

static enum http_gate_verdict framing(const struct field *f, size_t n, int http10, int *has_body,
                                      int *chunked, uint64_t *length)
{
	struct http_gate_framing st;

	http_gate_framing_init(&st, http10);
	for (size_t i = 0; i < n; i++)
		http_gate_framing_field(&st, f[i].name, strlen(f[i].name), f[i].value,
		                        strlen(f[i].value));
	*length = st.length;
	return http_gate_framing_end(&st, has_body, chunked);
}

#define FRAMING(http10, ...)                                                                       \
	__extension__({                                                                            \
		static const struct field f_[] = {__VA_ARGS__};                                    \
		framing(f_, sizeof(f_) / sizeof(f_[0]), (http10), &body, &chunked, &len);          \
	})

static void test_framing(void **state)
{
	int body, chunked;
	uint64_t len;

	(void)state;
	assert_int_equal(FRAMING(0, {"Host", "x"}), HTTP_GATE_OK);
	assert_false(body);
	assert_int_equal(FRAMING(0, {"Content-Length", "0"}), HTTP_GATE_OK);
	assert_false(body);
	assert_int_equal(FRAMING(0, {"content-length", " 42 "}), HTTP_GATE_OK);
	assert_true(body);
	assert_false(chunked);
	assert_int_equal(len, 42);
	assert_int_equal(FRAMING(0, {"Content-Length", "99999999999999999999999"}), HTTP_GATE_OK);
	assert_true(len == UINT64_MAX); /* too large, not wrapped: the layer answers 413 */
	assert_int_equal(FRAMING(0, {"Transfer-Encoding", "Chunked"}), HTTP_GATE_OK);
	assert_true(body);
	assert_true(chunked);

	/* two lengths, equal or not */
	assert_int_equal(FRAMING(0, {"Content-Length", "0"}, {"Content-Length", "37"}),
	                 HTTP_GATE_CL_REPEATED);
	assert_int_equal(FRAMING(0, {"Content-Length", "2"}, {"CONTENT-LENGTH", "2"}),
	                 HTTP_GATE_CL_REPEATED);
	assert_false(body);
	/* not a plain decimal */
	static const char *const bad_lengths[] = {"", " ", "+5", "-1", "0x5", "5,5", "5 5", "1e3"};
	for (size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
		struct field f = {"Content-Length", bad_lengths[i]};

		if (framing(&f, 1, 0, &body, &chunked, &len) != HTTP_GATE_CL_INVALID)
			fail_msg("Content-Length \"%s\" accepted", bad_lengths[i]);
	}
	/* length and encoding, in either order */
	assert_int_equal(FRAMING(0, {"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}),
	                 HTTP_GATE_CL_AND_TE);
	assert_int_equal(FRAMING(0, {"Transfer-Encoding", "chunked"}, {"Content-Length", "0"}),
	                 HTTP_GATE_CL_AND_TE);
	assert_int_equal(
	    FRAMING(0, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}),
	    HTTP_GATE_TE_REPEATED);
	assert_int_equal(FRAMING(0, {"Transfer-Encoding", "gzip"}), HTTP_GATE_TE_UNSUPPORTED);
	assert_int_equal(FRAMING(0, {"Transfer-Encoding", "gzip, chunked"}),
	                 HTTP_GATE_TE_UNSUPPORTED);
	assert_int_equal(FRAMING(0, {"Transfer-Encoding", ""}), HTTP_GATE_TE_UNSUPPORTED);
	assert_int_equal(FRAMING(1, {"Transfer-Encoding", "chunked"}), HTTP_GATE_TE_HTTP10);
	assert_int_equal(FRAMING(1, {"Content-Length", "3"}), HTTP_GATE_OK);
	/* field names are tokens */
	assert_int_equal(FRAMING(0, {"Content-Length ", "37"}), HTTP_GATE_BAD_FIELD);
	assert_int_equal(FRAMING(0, {"X\tY", "1"}), HTTP_GATE_BAD_FIELD);
	assert_int_equal(FRAMING(0, {"", "1"}), HTTP_GATE_BAD_FIELD);
	assert_int_equal(FRAMING(0, {"X-Ok!#$%&'*+-.^_`|~", "1"}), HTTP_GATE_OK);
	/* the first refusal stays */
	assert_int_equal(FRAMING(0, {"Transfer-Encoding", "gzip"}, {"Content-Length", "1"},
	                         {"Content-Length", "2"}),
	                 HTTP_GATE_TE_UNSUPPORTED);
	{
		struct http_gate_framing st;

		http_gate_framing_init(&st, 0);
		assert_int_equal(http_gate_framing_field(&st, "X", 1, "a\0b", 3),
		                 HTTP_GATE_BAD_FIELD);
	}
}

static void test_refusals(void **state)
{
	(void)state;
	assert_null(http_gate_refusal(HTTP_GATE_OK));
	assert_null(http_gate_refusal(HTTP_GATE_NVERDICTS));
	assert_int_equal(http_gate_refusal_verdict(NULL), HTTP_GATE_OK);
	assert_int_equal(http_gate_refusal_verdict(&state), HTTP_GATE_OK);
	for (int v = HTTP_GATE_OK + 1; v < HTTP_GATE_NVERDICTS; v++) {
		const struct http_gate_refusal *r = http_gate_refusal((enum http_gate_verdict)v);

		assert_non_null(r);
		assert_true(r->status == 400 || r->status == 501);
		assert_non_null(r->code);
		assert_non_null(r->message);
		assert_int_equal(http_gate_refusal_verdict(r), v);
	}
	assert_string_equal(http_gate_refusal(HTTP_GATE_NUL)->code, "nul_byte");
	assert_string_equal(http_gate_refusal(HTTP_GATE_BAD_UTF8)->code, "invalid_utf8");
	assert_false(http_gate_refusal(HTTP_GATE_NUL)->close);
	assert_true(http_gate_refusal(HTTP_GATE_CL_REPEATED)->close);
	assert_int_equal(http_gate_refusal(HTTP_GATE_TE_UNSUPPORTED)->status, 501);
}

static void test_log_escape(void **state)
{
	char out[64];

	(void)state;
	log_escape(out, sizeof(out), "GET /a\nreq=forged 200", 21);
	assert_string_equal(out, "GET /a\\x0areq=forged 200");
	log_escape(out, sizeof(out), "/healthz/\xff\xfe caf\xc3\xa9 \x1b[31m", 23);
	assert_string_equal(out, "/healthz/\\xff\\xfe caf\xc3\xa9 \\x1b[31m");
	log_escape(out, sizeof(out), "a\0b", 3);
	assert_string_equal(out, "a\\x00b");
	/* cut whole: never half an escape or half a character */
	assert_int_equal(log_escape(out, 6, "ab\xff", 3), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(log_escape(out, 4, "a\xc3\xa9", 3), 3);
	assert_int_equal(log_escape(out, 3, "a\xc3\xa9", 3), 1);
	assert_int_equal(log_escape(out, 0, "a", 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8),     cmocka_unit_test(test_utf8_sanitize),
	    cmocka_unit_test(test_target),   cmocka_unit_test(test_framing),
	    cmocka_unit_test(test_refusals), cmocka_unit_test(test_log_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
