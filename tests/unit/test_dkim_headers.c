/*
 * test_dkim_headers.c - dkim_verify_headers: a signature checked over the header fields
 * alone (a reputation report quotes the offending message's header section, never its
 * body).  The body hash is taken as signed; every header field the signature covers is
 * checked, and the signature's id names it however often it is quoted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/dkim.h"
#include "pki/crypto.h"

static EVP_PKEY *key;
static char *rec;

static const char head[] = "From: Alice <alice@example.org>\r\n"
                           "To: bob@example.net\r\n"
                           "Subject: offer\r\n"
                           "Message-ID: <1@example.org>\r\n";

static int lookup(const char *sel, const char *dom, void *ctx, char **out, struct err *e)
{
	(void)sel;
	(void)dom;
	(void)ctx;
	(void)e;
	*out = strdup(rec);
	return 0;
}

static int setup(void **state)
{
	struct err e;

	(void)state;
	key = crypto_key_generate(KEY_ED25519, 0, &e);
	rec = key != NULL ? dkim_key_record(key, &e) : NULL;
	return rec != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(key);
	free(rec);
	return 0;
}

/* The DKIM-Signature field of head + body, then head alone (no body, no blank line). */
static char *quoted_headers(const char *the_head)
{
	struct dkim_sign_opts o = {.d = "example.org", .s = "s1"};
	char *msg = NULL, *field, *out = NULL;
	struct err e;

	assert_true(asprintf(&msg, "%s\r\nthe body\r\n", head) > 0);
	field = dkim_sign(msg, strlen(msg), &o, key, &e);
	assert_non_null(field);
	assert_true(asprintf(&out, "%s\r\n%s", field, the_head) > 0);
	free(field);
	free(msg);
	return out;
}

static enum dkim_status status_of(const char *text, int headers_only, char sig_id[65])
{
	struct dkim_result *r = NULL;
	enum dkim_status st;
	struct err e = {0};
	size_t n = 0;

	if (headers_only)
		assert_int_equal(dkim_verify_headers(text, strlen(text), lookup, NULL, &r, &n, &e),
		                 0);
	else
		assert_int_equal(dkim_verify_all(text, strlen(text), lookup, NULL, &r, &n, &e), 0);
	assert_int_equal(n, 1);
	st = r[0].status;
	if (sig_id != NULL)
		memcpy(sig_id, r[0].sig_id, 65);
	free(r);
	return st;
}

static void test_headers_alone_verify(void **state)
{
	char *q = quoted_headers(head), id1[65], id2[65];

	(void)state;
	assert_int_equal(status_of(q, 1, id1), DKIM_PASS);
	assert_int_equal(strlen(id1), 64);
	/* the same quote again: the same id (what counts a signature once) */
	assert_int_equal(status_of(q, 1, id2), DKIM_PASS);
	assert_string_equal(id1, id2);
	/* the full check wants the body the signature's bh= covers */
	assert_int_equal(status_of(q, 0, NULL), DKIM_FAIL);
	free(q);
}

static void test_changed_header_fails(void **state)
{
	char *q = quoted_headers("From: Mallory <mallory@example.org>\r\n"
	                         "To: bob@example.net\r\n"
	                         "Subject: offer\r\n"
	                         "Message-ID: <1@example.org>\r\n");
	char id[65] = "x";

	(void)state;
	assert_int_equal(status_of(q, 1, id), DKIM_FAIL);
	assert_string_equal(id, ""); /* no id without a pass */
	free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_headers_alone_verify),
	    cmocka_unit_test(test_changed_header_fails),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
