/* test_defer_proto.c - ANCHOR-DEFER's wire format (lib/mail/defer_proto.c): tokens bound
 * to (id, recipient, peer), the commands, the offer and status lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/defer_proto.h"

static const unsigned char key[DEFER_SECRET_LEN] = "0123456789abcdef0123456789abcdef";
static const char id[] = "00112233445566778899aabbccddeeff";

static void test_token_round_trip(void **state)
{
	char tok[DEFER_TOKEN_MAX], got[DEFER_ID_LEN + 1];
	struct err e = {0};

	(void)state;
	assert_int_equal(defer_token_make(key, id, "bob@dest.test", "peer-a", tok, &e), 0);
	assert_int_equal(strlen(tok), DEFER_TOKEN_MAX - 1);
	assert_int_equal(defer_token_split(tok, got), 1);
	assert_string_equal(got, id);
	assert_int_equal(defer_token_verify(key, tok, "bob@dest.test", "peer-a"), 1);
}

static void test_token_is_bound(void **state)
{
	char tok[DEFER_TOKEN_MAX], other[DEFER_TOKEN_MAX];
	unsigned char key2[DEFER_SECRET_LEN];
	struct err e = {0};

	(void)state;
	assert_int_equal(defer_token_make(key, id, "bob@dest.test", "peer-a", tok, &e), 0);
	/* another peer, recipient, key or id: no */
	assert_int_equal(defer_token_verify(key, tok, "bob@dest.test", "peer-b"), 0);
	assert_int_equal(defer_token_verify(key, tok, "eve@dest.test", "peer-a"), 0);
	memcpy(key2, key, sizeof(key2));
	key2[0] ^= 1;
	assert_int_equal(defer_token_verify(key2, tok, "bob@dest.test", "peer-a"), 0);
	snprintf(other, sizeof(other), "%s", tok);
	other[0] = other[0] == '0' ? '1' : '0';
	assert_int_equal(defer_token_verify(key, other, "bob@dest.test", "peer-a"), 0);
	/* the separators: ("bob@dest.test", "peer-a") is not ("bob@dest.testp", "eer-a") */
	assert_int_equal(defer_token_verify(key, tok, "bob@dest.testp", "eer-a"), 0);
	/* a flipped MAC digit */
	snprintf(other, sizeof(other), "%s", tok);
	other[DEFER_TOKEN_MAX - 2] = other[DEFER_TOKEN_MAX - 2] == 'a' ? 'b' : 'a';
	assert_int_equal(defer_token_verify(key, other, "bob@dest.test", "peer-a"), 0);
}

static void test_token_shapes(void **state)
{
	char tok[DEFER_TOKEN_MAX];
	struct err e = {0};

	(void)state;
	assert_int_equal(defer_token_make(key, "xyz", "bob@dest.test", "peer-a", tok, &e), -1);
	assert_int_equal(defer_token_split("", NULL), 0);
	assert_int_equal(defer_token_split("../../secret", NULL), 0);
	assert_int_equal(defer_token_make(key, id, "b@d.test", "p", tok, &e), 0);
	tok[DEFER_ID_LEN] = '-';
	assert_int_equal(defer_token_split(tok, NULL), 0);
	tok[DEFER_ID_LEN] = '.';
	tok[3] = 'A'; /* lowercase only */
	assert_int_equal(defer_token_split(tok, NULL), 0);
}

static void test_commands(void **state)
{
	char tok[DEFER_TOKEN_MAX], line[300], got[DEFER_TOKEN_MAX];
	enum defer_op op;
	struct err e = {0};

	(void)state;
	assert_int_equal(defer_token_make(key, id, "b@d.test", "p", tok, &e), 0);
	snprintf(line, sizeof(line), "defer-status %s", tok);
	assert_int_equal(defer_parse_command(line, strlen(line), &op, got, &e), 1);
	assert_int_equal(op, DEFER_OP_STATUS);
	assert_string_equal(got, tok);
	snprintf(line, sizeof(line), "DEFER-WITHDRAW %s", tok);
	assert_int_equal(defer_parse_command(line, strlen(line), &op, got, &e), 1);
	assert_int_equal(op, DEFER_OP_WITHDRAW);
	assert_int_equal(defer_parse_command("NOOP", 4, &op, got, &e), 0);
	assert_int_equal(defer_parse_command("DEFER-STATUS", 12, &op, got, &e), -1);
	assert_string_equal(e.code, "defer_syntax");
	snprintf(line, sizeof(line), "DEFER-STATUS %s extra", tok);
	assert_int_equal(defer_parse_command(line, strlen(line), &op, got, &e), -1);
	assert_int_equal(defer_parse_command("DEFER-STATUS abc", 16, &op, got, &e), -1);
}

static void test_offer_lines(void **state)
{
	struct defer_offer o = {0}, p;
	char text[400];
	struct err e = {0};

	(void)state;
	snprintf(o.rcpt, sizeof(o.rcpt), "bob@dest.test");
	assert_int_equal(defer_token_make(key, id, o.rcpt, "p", o.token, &e), 0);
	o.min = 60;
	o.max = 3600;
	assert_int_equal(defer_offer_format(&o, text, sizeof(text)), 0);
	assert_int_equal(defer_offer_parse(text, strlen(text), &p, &e), 0);
	assert_string_equal(p.rcpt, "bob@dest.test");
	assert_string_equal(p.token, o.token);
	assert_int_equal(p.min, 60);
	assert_int_equal(p.max, 3600);
	/* min over max, zero, too large, signs, missing parts: refused */
	assert_int_equal(defer_offer_parse("<b@d> DEFERRED x 1 2", 20, &p, &e), -1);
	snprintf(text, sizeof(text), "<b@d> DEFERRED %s 9 2", o.token);
	assert_int_equal(defer_offer_parse(text, strlen(text), &p, &e), -1);
	snprintf(text, sizeof(text), "<b@d> DEFERRED %s 0 2", o.token);
	assert_int_equal(defer_offer_parse(text, strlen(text), &p, &e), -1);
	snprintf(text, sizeof(text), "<b@d> DEFERRED %s 1 999999", o.token);
	assert_int_equal(defer_offer_parse(text, strlen(text), &p, &e), -1);
	snprintf(text, sizeof(text), "<b@d> DEFERRED %s +1 2", o.token);
	assert_int_equal(defer_offer_parse(text, strlen(text), &p, &e), -1);
	snprintf(text, sizeof(text), "b@d DEFERRED %s 1 2", o.token);
	assert_int_equal(defer_offer_parse(text, strlen(text), &p, &e), -1);
	assert_string_equal(e.code, "defer_offer");
}

static void test_status_lines(void **state)
{
	struct defer_status st = {0}, got;
	char text[300];
	struct err e = {0};

	(void)state;
	st.state = DEFER_PENDING;
	st.min = 2;
	st.max = 30;
	assert_int_equal(defer_status_format(&st, text, sizeof(text)), 0);
	assert_string_equal(text, "PENDING 2 30");
	assert_int_equal(defer_status_parse(text, strlen(text), &got, &e), 0);
	assert_int_equal(got.state, DEFER_PENDING);
	assert_int_equal(got.max, 30);
	assert_int_equal(defer_status_parse("REFUSED not wanted here", 23, &got, &e), 0);
	assert_int_equal(got.state, DEFER_REFUSED);
	assert_string_equal(got.reason, "not wanted here");
	assert_int_equal(defer_status_parse("ACCEPTED", 8, &got, &e), 0);
	assert_int_equal(got.state, DEFER_ACCEPTED);
	assert_int_equal(defer_status_parse("ACCEPTED now", 12, &got, &e), -1);
	assert_int_equal(defer_status_parse("accepted", 8, &got, &e), -1);
	assert_int_equal(defer_status_parse("PENDING 2", 9, &got, &e), -1);
	assert_int_equal(defer_status_parse("MAYBE", 5, &got, &e), -1);
	assert_string_equal(e.code, "defer_status");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_token_round_trip), cmocka_unit_test(test_token_is_bound),
	    cmocka_unit_test(test_token_shapes),     cmocka_unit_test(test_commands),
	    cmocka_unit_test(test_offer_lines),      cmocka_unit_test(test_status_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
