/* test_relay_authres.c - the Authentication-Results field (RFC 8601): every field
 * made here is unfolded and parsed back by an independent reader of the RFC's
 * grammar, and what a sender controls can neither break the field nor add a result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay.h"

#define MAXRES 8
#define MAXPROPS 8

struct resinfo {
	char method[32], result[32], reason[512];
	int nprops;
	char pname[MAXPROPS][32], pvalue[MAXPROPS][512];
	char comments[512];
};

struct parsed {
	char authserv[256];
	int nres;
	struct resinfo res[MAXRES];
};

/* Unfold: every CRLF must be followed by a blank, lines are short, nothing else
 * breaks a line, and only printable ASCII and tabs appear. */
static char *unfold(const char *field, size_t maxline)
{
	char *out = malloc(strlen(field) + 1), *o = out;
	size_t col = 0;

	assert_non_null(out);
	for (const char *p = field; *p; p++) {
		if (p[0] == '\r') {
			assert_int_equal(p[1], '\n');
			assert_true(p[2] == ' ' || p[2] == '\t');
			assert_true(col <= maxline);
			col = 0;
			p++;
			continue;
		}
		assert_true(*p != '\n');
		assert_true((*p >= 0x20 && *p < 0x7f) || *p == '\t');
		*o++ = *p;
		col++;
	}
	assert_true(col <= maxline);
	*o = '\0';
	return out;
}

static void skip_cfws(const char **p, char *comments, size_t size)
{
	for (;;) {
		while (**p == ' ' || **p == '\t')
			(*p)++;
		if (**p != '(')
			return;
		int depth = 0;
		const char *start = *p;
		do {
			if (**p == '\\')
				(*p)++;
			else if (**p == '(')
				depth++;
			else if (**p == ')')
				depth--;
			assert_true(**p != '\0');
			(*p)++;
		} while (depth > 0);
		if (comments != NULL)
			snprintf(comments + strlen(comments), size - strlen(comments), "%.*s",
			         (int)(*p - start), start);
	}
}

static int tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL || c <= ' ' || c >= 0x7f;
}

/* value = token / quoted-string; with_at: a pvalue that may be local@domain */
static void read_value(const char **p, char *out, size_t size, int with_at)
{
	size_t n = 0;

	if (**p == '"') {
		(*p)++;
		while (**p != '"') {
			assert_true(**p != '\0');
			if (**p == '\\')
				(*p)++;
			assert_true(n + 1 < size);
			out[n++] = *(*p)++;
		}
		(*p)++;
	} else {
		while (**p && (!tspecial(**p) || (with_at && **p == '@'))) {
			assert_true(n + 1 < size);
			out[n++] = *(*p)++;
		}
		assert_true(n > 0);
	}
	out[n] = '\0';
}

static void read_word(const char **p, char *out, size_t size, char stop)
{
	size_t n = 0;

	while (**p && **p != stop && !tspecial(**p)) {
		assert_true(n + 1 < size);
		out[n++] = *(*p)++;
	}
	out[n] = '\0';
	assert_true(n > 0);
}

static void parse(const char *field, struct parsed *pa)
{
	char *text = unfold(field, 77);
	const char *p = text;

	memset(pa, 0, sizeof(*pa));
	assert_memory_equal(p, "Authentication-Results:", 23);
	p += 23;
	skip_cfws(&p, NULL, 0);
	read_value(&p, pa->authserv, sizeof(pa->authserv), 0);
	skip_cfws(&p, NULL, 0);
	while (*p == ';') {
		struct resinfo *r = &pa->res[pa->nres++];

		assert_true(pa->nres <= MAXRES);
		p++;
		skip_cfws(&p, r->comments, sizeof(r->comments));
		read_word(&p, r->method, sizeof(r->method), '=');
		assert_int_equal(*p++, '=');
		read_word(&p, r->result, sizeof(r->result), ';');
		skip_cfws(&p, r->comments, sizeof(r->comments));
		if (strncmp(p, "reason=", 7) == 0) {
			p += 7;
			read_value(&p, r->reason, sizeof(r->reason), 0);
			skip_cfws(&p, r->comments, sizeof(r->comments));
		}
		while (*p && *p != ';') {
			assert_true(r->nprops < MAXPROPS);
			read_word(&p, r->pname[r->nprops], sizeof(r->pname[0]), '=');
			assert_int_equal(*p++, '=');
			read_value(&p, r->pvalue[r->nprops], sizeof(r->pvalue[0]), 1);
			r->nprops++;
			skip_cfws(&p, r->comments, sizeof(r->comments));
		}
	}
	assert_int_equal(*p, '\0');
	free(text);
}

static const char *prop(const struct resinfo *r, const char *name)
{
	for (int k = 0; k < r->nprops; k++)
		if (strcmp(r->pname[k], name) == 0)
			return r->pvalue[k];
	return NULL;
}

static void set_sig(struct relay_sig *s, enum dkim_status st, const char *d, const char *i,
                    const char *sel, const char *a, const char *b, const char *reason,
                    enum relay_key_source src)
{
	memset(s, 0, sizeof(*s));
	s->r.status = st;
	snprintf(s->r.d, sizeof(s->r.d), "%s", d);
	snprintf(s->r.i, sizeof(s->r.i), "%s", i);
	snprintf(s->r.s, sizeof(s->r.s), "%s", sel);
	snprintf(s->r.a, sizeof(s->r.a), "%s", a);
	snprintf(s->r.b, sizeof(s->r.b), "%s", b);
	snprintf(s->r.reason, sizeof(s->r.reason), "%s", reason);
	s->source = src;
}

static void test_no_signature(void **state)
{
	struct relay_auth a = {0};
	struct parsed pa;
	struct err e = {0};
	char *f = relay_authres_field("mx.example.net", &a, "192.0.2.1", "mx.test", "", &e);

	assert_non_null(f);
	assert_string_equal(f, "Authentication-Results: mx.example.net;\r\n\tdkim=none");
	parse(f, &pa);
	assert_string_equal(pa.authserv, "mx.example.net");
	assert_int_equal(pa.nres, 1);
	assert_string_equal(pa.res[0].method, "dkim");
	assert_string_equal(pa.res[0].result, "none");
	free(f);
	/* no auth at all, no authserv-id: still a valid field */
	f = relay_authres_field(NULL, NULL, NULL, NULL, NULL, &e);
	parse(f, &pa);
	assert_string_equal(pa.authserv, "localhost");
	assert_string_equal(pa.res[0].result, "none");
	free(f);
}

static void test_results_and_properties(void **state)
{
	struct relay_sig sigs[3];
	struct relay_auth a = {.sigs = sigs, .nsigs = 3};
	struct parsed pa;
	struct err e = {0};
	char *f;

	set_sig(&sigs[0], DKIM_PASS, "example.com", "alice@example.com", "anchor-user",
	        "ed25519-sha256", "Jq2b7hUuXwZs", "signature verified", RELAY_KEY_USER);
	set_sig(&sigs[1], DKIM_PASS, "example.com", "@example.com", "s2026", "rsa-sha256",
	        "ab/c+d=", "signature verified", RELAY_KEY_ANCHOR);
	set_sig(&sigs[2], DKIM_TEMPERROR, "slow.example", "@slow.example", "sel", "ed25519-sha256",
	        "xyz", "the key server timed out", RELAY_KEY_NONE);
	f = relay_authres_field("mx.example.net", &a, "2001:db8::1", "mail.example.com", "pass",
	                        &e);
	assert_non_null(f);
	parse(f, &pa);
	assert_int_equal(pa.nres, 4);
	assert_string_equal(pa.res[0].result, "pass");
	assert_string_equal(prop(&pa.res[0], "header.d"), "example.com");
	assert_string_equal(prop(&pa.res[0], "header.i"), "alice@example.com");
	assert_string_equal(prop(&pa.res[0], "header.s"), "anchor-user");
	assert_string_equal(prop(&pa.res[0], "header.a"), "ed25519-sha256");
	assert_string_equal(prop(&pa.res[0], "header.b"), "Jq2b7hUuXwZs");
	assert_non_null(strstr(pa.res[0].comments, "user key"));
	assert_string_equal(pa.res[0].reason, ""); /* a pass needs no reason */
	assert_non_null(strstr(pa.res[1].comments, "anchored key"));
	assert_string_equal(prop(&pa.res[1], "header.i"), "@example.com");
	assert_string_equal(prop(&pa.res[1], "header.b"), "ab/c+d="); /* quoted: tspecials */
	assert_non_null(strstr(f, "header.b=\"ab/c+d=\""));
	assert_string_equal(pa.res[2].result, "temperror");
	assert_string_equal(pa.res[2].reason, "the key server timed out");
	assert_string_equal(pa.res[3].method, "csa");
	assert_string_equal(pa.res[3].result, "pass");
	assert_string_equal(prop(&pa.res[3], "smtp.helo"), "mail.example.com");
	assert_non_null(strstr(pa.res[3].comments, "2001:db8::1"));
	free(f);
}

/* A partial view (PROTOCOL.md §12.12): a signature verified on everything but bh= is not a
 * pass (RFC 8601 §2.7.1) but neutral with a reason; a failure stays a failure. */
static void test_view_signatures_are_neutral(void **state)
{
	struct relay_sig sigs[2];
	struct relay_auth a = {.sigs = sigs, .nsigs = 2, .headers_only = 1};
	struct parsed pa;
	struct err e = {0};
	char *f;

	set_sig(&sigs[0], DKIM_PASS, "example.com", "@example.com", "s2026", "ed25519-sha256",
	        "Jq2b", "signature verified", RELAY_KEY_ANCHOR);
	set_sig(&sigs[1], DKIM_FAIL, "other.example", "@other.example", "s", "rsa-sha256", "xy",
	        "signature did not verify", RELAY_KEY_DNS);
	f = relay_authres_field("mx.example.net", &a, NULL, NULL, NULL, &e);
	assert_non_null(f);
	parse(f, &pa);
	assert_int_equal(pa.nres, 2);
	assert_string_equal(pa.res[0].result, "neutral");
	assert_string_equal(pa.res[0].reason, "body hash not checked: partial view");
	assert_string_equal(prop(&pa.res[0], "header.d"), "example.com");
	assert_null(strstr(f, "dkim=pass"));
	assert_string_equal(pa.res[1].result, "fail");
	assert_string_equal(pa.res[1].reason, "signature did not verify");
	free(f);
}

static void test_hostile_values_are_escaped(void **state)
{
	struct relay_sig sigs[2];
	struct relay_auth a = {.sigs = sigs, .nsigs = 2};
	struct parsed pa;
	struct err e = {0};
	char reason[200];
	char *f;

	snprintf(reason, sizeof(reason),
	         "bad \"quote\" and \\back\\slash;\r\n dkim=pass\x01\x7f"
	         "\tend \xc3\xa9");
	set_sig(&sigs[0], DKIM_FAIL, "evil.example; dkim=pass", "\"a b\"@evil.example", "s (x)",
	        "rsa-sha256", "AAAA", reason, RELAY_KEY_DNS);
	set_sig(&sigs[1], DKIM_PERMERROR, "", "", "", "", "", "", RELAY_KEY_NONE);
	f = relay_authres_field("mx \"id\";", &a, "1.2.3.4) (x", "[192.0.2.1]; csa=pass",
	                        "pass; dkim=pass", &e);
	assert_non_null(f);
	parse(f, &pa);
	assert_string_equal(pa.authserv, "mx \"id\";");
	/* exactly the two signatures: no CSA (not a keyword), nothing injected */
	assert_int_equal(pa.nres, 2);
	assert_string_equal(pa.res[0].result, "fail");
	assert_string_equal(pa.res[0].reason,
	                    "bad \"quote\" and \\back\\slash;   dkim=pass end ??");
	assert_string_equal(prop(&pa.res[0], "header.d"), "evil.example; dkim=pass");
	assert_string_equal(prop(&pa.res[0], "header.i"), "\"a b\"@evil.example");
	assert_string_equal(prop(&pa.res[0], "header.s"), "s (x)");
	assert_string_equal(pa.res[1].result, "permerror");
	assert_int_equal(pa.res[1].nprops, 0);
	free(f);

	/* a CSA result with a hostile HELO: quoted; a bad address left out */
	a.nsigs = 0;
	f = relay_authres_field("mx", &a, "1.2.3.4) (x", "[192.0.2.1]; x=\"y\"", "fail", &e);
	parse(f, &pa);
	assert_int_equal(pa.nres, 2);
	assert_string_equal(pa.res[1].method, "csa");
	assert_string_equal(prop(&pa.res[1], "smtp.helo"), "[192.0.2.1]; x=\"y\"");
	assert_null(strstr(f, "1.2.3.4"));
	free(f);
}

static void test_long_values_fold(void **state)
{
	struct relay_sig sigs[4];
	struct relay_auth a = {.sigs = sigs, .nsigs = 4};
	struct parsed pa;
	struct err e = {0};
	char reason[240] = "";
	char *f;

	for (int k = 0; strlen(reason) < 200; k++)
		snprintf(reason + strlen(reason), sizeof(reason) - strlen(reason), "word%d ", k);
	reason[strlen(reason) - 1] = '\0';
	for (int k = 0; k < 4; k++)
		set_sig(&sigs[k], k ? DKIM_FAIL : DKIM_PASS,
		        "a-rather-long-subdomain.of-an-example-domain.example.com",
		        "someone@a-rather-long-subdomain.of-an-example-domain.example.com",
		        "selector2026", "ed25519-sha256", "Jq2b7hUuXwZs", reason, RELAY_KEY_ANCHOR);
	f = relay_authres_field("mx.example.net", &a, "192.0.2.1", "mx.example.com", "pass", &e);
	parse(f, &pa); /* checks every physical line is under 78 */
	assert_int_equal(pa.nres, 5);
	for (int k = 1; k < 4; k++)
		assert_string_equal(pa.res[k].reason, reason);
	assert_string_equal(prop(&pa.res[3], "header.i"),
	                    "someone@a-rather-long-subdomain.of-an-example-domain.example.com");
	assert_non_null(strstr(f, "\r\n ")); /* folded inside a quoted reason too */
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_signature),
	    cmocka_unit_test(test_results_and_properties),
	    cmocka_unit_test(test_view_signatures_are_neutral),
	    cmocka_unit_test(test_hostile_values_are_escaped),
	    cmocka_unit_test(test_long_values_fold),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
