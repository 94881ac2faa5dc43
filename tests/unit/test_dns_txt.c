/* test_dns_txt.c - the _anchor TXT parser: good records, every rejection, forward compat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns/dns.h"

#define PIN_A "sha256:9GgajhnWPOAqku0rjqivw3viOa5MdXIdM6z0dGMsJfo="
#define PIN_B "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

static int parse(const char *text, struct dns_anchor_txt *t, struct err *e)
{
	err_clear(e);
	return dns_txt_parse(text, strlen(text), t, e);
}

static void expect_error(const char *text, const char *code)
{
	struct dns_anchor_txt t;
	struct err e;

	assert_int_equal(parse(text, &t, &e), -1);
	assert_string_equal(e.code, code);
	assert_true(e.msg[0] != '\0');
}

static void test_minimal(void **state)
{
	struct dns_anchor_txt t;
	struct err e;

	(void)state;
	assert_int_equal(parse("v=ANCHOR1; pin=" PIN_A "; mode=enforce", &t, &e), 0);
	assert_int_equal(t.npins, 1);
	assert_string_equal(t.pins[0], PIN_A);
	assert_int_equal(t.mode, DNS_MODE_ENFORCE);
	assert_string_equal(t.id, "");
}

static void test_full_and_rollover(void **state)
{
	struct dns_anchor_txt t;
	struct err e;

	(void)state;
	assert_int_equal(
	    parse("v=ANCHOR1;pin=" PIN_A ";  pin=" PIN_B " ; mode=testing; id=abc_-1;", &t, &e), 0);
	assert_int_equal(t.npins, 2);
	assert_string_equal(t.pins[1], PIN_B);
	assert_int_equal(t.mode, DNS_MODE_TESTING);
	assert_string_equal(t.id, "abc_-1");
	/* The same pin twice is kept once. */
	assert_int_equal(parse("v=ANCHOR1; pin=" PIN_A "; pin=" PIN_A, &t, &e), 0);
	assert_int_equal(t.npins, 1);
	/* mode= absent means enforce. */
	assert_int_equal(t.mode, DNS_MODE_ENFORCE);
}

static void test_unknown_tags_tolerated(void **state)
{
	struct dns_anchor_txt t;
	struct err e;

	(void)state;
	assert_int_equal(parse("v=ANCHOR1; pin=" PIN_A "; future=1; x-y=z; mode=enforce", &t, &e),
	                 0);
	assert_int_equal(t.unknown_tags, 2);
}

static void test_rejections(void **state)
{
	(void)state;
	expect_error("v=ANCHOR2; pin=" PIN_A, "txt_version");
	expect_error("pin=" PIN_A "; v=ANCHOR1", "txt_version");
	expect_error("", "txt_version");
	expect_error("v=ANCHOR1; mode=enforce", "txt_no_pin");
	expect_error("v=ANCHOR1; pin=sha256:not*base64!", "txt_bad_pin");
	expect_error("v=ANCHOR1; pin=sha256:eHh4eHh4eHh4eHh4eHh4eHh4eHg=", "txt_bad_pin");
	expect_error("v=ANCHOR1; pin=9GgajhnWPOAqku0rjqivw3viOa5MdXIdM6z0dGMsJfo=", "txt_bad_pin");
	expect_error("v=ANCHOR1; pin=sha512:9GgajhnWPOAqku0rjqivw3viOa5MdXIdM6z0dGMsJfo=",
	             "pin_algorithm");
	expect_error("v=ANCHOR1; pin=" PIN_A "; mode=enforce; mode=testing", "txt_duplicate_tag");
	expect_error("v=ANCHOR1; v=ANCHOR1; pin=" PIN_A, "txt_duplicate_tag");
	expect_error("v=ANCHOR1; pin=" PIN_A "; foo=1; foo=2", "txt_duplicate_tag");
	expect_error("v=ANCHOR1; pin=" PIN_A "; mode=strict", "txt_bad_mode");
	expect_error("v=ANCHOR1; pin=" PIN_A "; id=", "txt_bad_id");
	expect_error("v=ANCHOR1; pin=" PIN_A "; id=a b", "txt_bad_id");
	expect_error("v=ANCHOR1; pin=" PIN_A "; garbage", "txt_syntax");
	expect_error("v=ANCHOR1; pin=" PIN_A "; =x", "txt_syntax");
}

static void test_nul_and_control_octets(void **state)
{
	static const char text[] = "v=ANCHOR1; pin=" PIN_A "\0; mode=enforce";
	struct dns_anchor_txt t;
	struct err e;

	(void)state;
	err_clear(&e);
	assert_int_equal(dns_txt_parse(text, sizeof(text) - 1, &t, &e), -1);
	assert_string_equal(e.code, "txt_syntax");
	expect_error("v=ANCHOR1;\tpin=" PIN_A "\n", "txt_syntax");
}

static void test_too_many_pins(void **state)
{
	char buf[2048] = "v=ANCHOR1";
	uint8_t digest[32];
	int i;

	(void)state;
	for (i = 0; i <= DNS_MAX_PINS; i++) {
		char *b64;

		memset(digest, i + 1, sizeof(digest));
		b64 = crypto_b64_encode(digest, sizeof(digest));
		strcat(buf, "; pin=sha256:");
		strcat(buf, b64);
		free(b64);
	}
	expect_error(buf, "txt_too_many_pins");
}

static void test_rr_text_concatenates_strings(void **state)
{
	ldns_rr *rr = NULL;
	char *text;
	size_t len;

	(void)state;
	assert_int_equal(ldns_rr_new_frm_str(&rr,
	                                     "_anchor.x.test. 300 IN TXT \"v=ANCHOR1; pin=sha\" "
	                                     "\"256:abc\" \"\"",
	                                     0, NULL, NULL),
	                 LDNS_STATUS_OK);
	text = dns_txt_rr_text(rr, &len);
	assert_non_null(text);
	assert_string_equal(text, "v=ANCHOR1; pin=sha256:abc");
	assert_int_equal(len, strlen(text));
	assert_true(dns_txt_is_anchor(text, len));
	assert_false(dns_txt_is_anchor("v=spf1 -all", 11));
	free(text);
	ldns_rr_free(rr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal),
	    cmocka_unit_test(test_full_and_rollover),
	    cmocka_unit_test(test_unknown_tags_tolerated),
	    cmocka_unit_test(test_rejections),
	    cmocka_unit_test(test_nul_and_control_octets),
	    cmocka_unit_test(test_too_many_pins),
	    cmocka_unit_test(test_rr_text_concatenates_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
