/*
 * test_mail_header.c - lib/mail/header: fields as exact bytes, every kind of
 * line end, folding, obs-fields, the end of the section, malformed lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/dkim.h"
#include "mail/header.h"

/* Every field's raw bytes joined with '|', "!" before a malformed one; the body offset. */
static void fields(const char *msg, char *out, size_t size, size_t *body)
{
	struct mail_header h;
	struct mail_field f;
	size_t o = 0;

	out[0] = '\0';
	mail_header_init(&h, msg, strlen(msg));
	while (mail_header_next(&h, &f) == 1) {
		assert_true(o + f.rawlen + 3 < size);
		if (o > 0)
			out[o++] = '|';
		if (f.bad != NULL)
			out[o++] = '!';
		memcpy(out + o, f.raw, f.rawlen);
		o += f.rawlen;
		out[o] = '\0';
	}
	*body = h.body;
}

static void test_fields_and_body(void **state)
{
	static const struct {
		const char *msg, *want;
		size_t body;
	} cases[] = {
	    {"From: a\r\nTo: b\r\n\r\nbody", "From: a|To: b", 18},
	    {"From: a\nSubject: x\n y\n\nbody", "From: a|Subject: x\n y", 23},
	    {"From: a\rTo: b\r\rbody", "From: a|To: b", 15},
	    {"Subject: x\r\n\ty\r\n z\r\n\r\n", "Subject: x\r\n\ty\r\n z", 22},
	    {"From: a", "From: a", 7},
	    {"From: a\r\n", "From: a", 9},
	    {"\r\nFrom: a\r\n", "", 2},
	    {"", "", 0},
	    {" lead: x\r\n\r\n", "! lead: x", 12},
	    {"no colon\r\nFrom: a\r\n\r\n", "!no colon|From: a", 21},
	    {": empty\r\n\r\n", "!: empty", 11},
	};
	char got[256];
	size_t body;

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		fields(cases[k].msg, got, sizeof(got), &body);
		if (strcmp(got, cases[k].want) != 0 || body != cases[k].body)
			fail_msg("case %zu: [%s] body %zu", k, got, body);
	}
}

static void test_name_value_find(void **state)
{
	const char *m =
	    "X-A: 1\r\nfrom \t: Alice\r\n <a@example.com>\r\nFROM: b\r\n\r\nFrom: body\r\n";
	struct mail_field f;
	size_t n;
	char *v;

	(void)state;
	assert_int_equal(mail_header_find(m, strlen(m), "From", &f), 1);
	assert_int_equal(f.nlen, 4); /* the blanks before the colon are not the name */
	assert_true(mail_field_is(&f, "FROM"));
	assert_false(mail_field_is(&f, "Fro"));
	assert_int_equal(f.vlen, strlen(" Alice\r\n <a@example.com>"));
	assert_memory_equal(f.raw, "from \t: Alice\r\n <a@example.com>", f.rawlen);
	v = mail_field_unfold(&f, &n);
	assert_string_equal(v, " Alice <a@example.com>");
	assert_int_equal(n, strlen(v));
	free(v);
	assert_int_equal(mail_header_find(m, strlen(m), "Subject", &f), 0);
	/* a field in the body is not a header field */
	assert_int_equal(mail_header_find("\r\nFrom: x\r\n", 11, "From", &f), 0);
}

/* dkim_msg_parse (which normalises line ends) and a raw read see the same fields. */
static void test_same_fields_as_dkim(void **state)
{
	const char *msgs[] = {
	    "From: a\rX: b\n c\r\n\r\nbody",
	    "A: 1\n\nB: 2\r\n",
	    "A: 1\r\r\nB: 2",
	};
	struct err e = {0};

	(void)state;
	for (size_t k = 0; k < sizeof(msgs) / sizeof(msgs[0]); k++) {
		struct dkim_msg m;
		struct mail_header h;
		struct mail_field f;
		size_t j = 0;

		assert_int_equal(dkim_msg_parse(msgs[k], strlen(msgs[k]), &m, &e), 0);
		mail_header_init(&h, msgs[k], strlen(msgs[k]));
		while (mail_header_next(&h, &f) == 1) {
			assert_true(j < m.nhdrs);
			assert_int_equal(f.nlen, m.hdrs[j].nlen);
			assert_memory_equal(f.name, m.hdrs[j].name, f.nlen);
			j++;
		}
		assert_int_equal(j, m.nhdrs);
		dkim_msg_free(&m);
	}
	assert_int_equal(dkim_msg_parse(" x: 1\r\n\r\n", 9, &(struct dkim_msg){0}, &e), -1);
	assert_string_equal(e.code, "dkim_bad_header");
	assert_string_equal(e.msg, "a continuation line has no header field before it");
}

/* A message cut anywhere: no field reaches past the end. */
static void test_cut_anywhere(void **state)
{
	const char *m = "From: a\r\nSubject: x\r\n y\r\n\r\nbody\r\n";

	(void)state;
	for (size_t n = 0; n <= strlen(m); n++) {
		char *cut = malloc(n ? n : 1);
		struct mail_header h;
		struct mail_field f;

		memcpy(cut, m, n);
		mail_header_init(&h, cut, n);
		while (mail_header_next(&h, &f) == 1)
			assert_true(f.raw + f.rawlen <= cut + n && f.end <= n);
		assert_true(h.body <= n);
		free(cut);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fields_and_body),
	    cmocka_unit_test(test_name_value_find),
	    cmocka_unit_test(test_same_fields_as_dkim),
	    cmocka_unit_test(test_cut_anywhere),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
