/*
 * test_relay_pow.c - hashcash stamps (relay/pow.c).  Stamps are minted here by
 * brute force at low difficulty; the integration test uses the real
 * `hashcash` tool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "relay.h"

#define BITS 10
#define WINDOW (2 * 86400)

static char dir[64];
static time_t now;

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_relay_pow_XXXXXX");
	now = time(NULL);
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static unsigned zeros(const char *text)
{
	uint8_t h[20];
	unsigned n = 0, z = 0;

	EVP_Digest(text, strlen(text), h, &n, EVP_sha1(), NULL);
	for (int i = 0; i < 20; i++) {
		if (h[i] == 0) {
			z += 8;
			continue;
		}
		for (uint8_t m = 0x80; (h[i] & m) == 0; m >>= 1)
			z++;
		break;
	}
	return z;
}

/* A stamp claiming claim bits that really has at least real bits (and, when exact is set,
 * fewer than claim: a liar). */
static void mint(char *out, size_t len, unsigned claim, unsigned real, const char *date,
                 const char *resource, int exact)
{
	static unsigned salt;

	salt++;
	for (unsigned long c = 0;; c++) {
		snprintf(out, len, "1:%u:%s:%s::t%us%u:%lx", claim, date, resource,
		         (unsigned)getpid(), salt, c);
		unsigned z = zeros(out);
		if (z >= real && (!exact || z < claim))
			return;
	}
}

/* YYMMDDhhmmss cut to ndigits (6, 10 or 12). */
static void date_of(time_t t, size_t ndigits, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, len, "%02d%02d%02d%02d%02d%02d", tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday,
	         tm.tm_hour, tm.tm_min, tm.tm_sec);
	out[ndigits] = '\0';
}

static struct relay_pow *open_pow(void)
{
	struct err e = {0};
	struct relay_pow *p = relay_pow_open(dir, BITS, WINDOW, &e);

	if (p == NULL)
		fail_msg("open: %s", e.msg);
	return p;
}

static char *message(const char *fields, const char *body)
{
	char *m = NULL;

	assert_true(
	    asprintf(&m, "From: x@example.org\r\n%sSubject: hi\r\n\r\n%s\r\n", fields, body) > 0);
	return m;
}

static int check(struct relay_pow *p, const char *fields, const char *body, const char *rcpt,
                 char *why, size_t whylen)
{
	char *m = message(fields, body);
	int rc = relay_pow_check(p, m, strlen(m), rcpt, now, why, whylen);

	free(m);
	return rc;
}

static void test_valid_then_spent(void **state)
{
	struct relay_pow *p = open_pow();
	char stamp[256], date[16], field[320], why[160];

	date_of(now, 6, date, sizeof(date));
	mint(stamp, sizeof(stamp), BITS, BITS, date, "bob@example.com", 0);
	snprintf(field, sizeof(field), "X-Hashcash: %s\r\n", stamp);
	assert_int_equal(check(p, field, "", "bob@example.com", why, sizeof(why)), 1);
	assert_non_null(strstr(why, "valid"));
	/* spent: once per relay */
	assert_int_equal(check(p, field, "", "bob@example.com", why, sizeof(why)), 0);
	assert_non_null(strstr(why, "spent"));
	relay_pow_free(p);

	/* durably: still spent after a restart */
	p = open_pow();
	assert_int_equal(check(p, field, "", "bob@example.com", why, sizeof(why)), 0);
	assert_non_null(strstr(why, "spent"));
	relay_pow_free(p);
}

static void test_refusals(void **state)
{
	struct relay_pow *p = open_pow();
	char stamp[256], date[16], field[320], why[160];

	date_of(now, 12, date, sizeof(date));
	/* no stamp at all */
	assert_int_equal(check(p, "", "", "bob@example.com", why, sizeof(why)), 0);
	assert_string_equal(why, "no stamp");
	/* another recipient's stamp */
	mint(stamp, sizeof(stamp), BITS, BITS, date, "carol@example.com", 0);
	snprintf(field, sizeof(field), "X-Hashcash: %s\r\n", stamp);
	assert_int_equal(check(p, field, "", "bob@example.com", why, sizeof(why)), 0);
	assert_non_null(strstr(why, "another resource"));
	/* fewer bits than configured */
	mint(stamp, sizeof(stamp), BITS - 2, BITS - 2, date, "bob@example.com", 0);
	snprintf(field, sizeof(field), "X-Hashcash: %s\r\n", stamp);
	assert_int_equal(check(p, field, "", "bob@example.com", why, sizeof(why)), 0);
	assert_non_null(strstr(why, "too few bits"));
	/* claims more than its hash has */
	mint(stamp, sizeof(stamp), BITS + 4, BITS, date, "bob@example.com", 1);
	snprintf(field, sizeof(field), "X-Hashcash: %s\r\n", stamp);
	assert_int_equal(check(p, field, "", "bob@example.com", why, sizeof(why)), 0);
	assert_non_null(strstr(why, "too few bits"));
	/* too old */
	date_of(now - WINDOW - 2 * 86400, 6, date, sizeof(date));
	mint(stamp, sizeof(stamp), BITS, BITS, date, "bob@example.com", 0);
	snprintf(field, sizeof(field), "X-Hashcash: %s\r\n", stamp);
	assert_int_equal(check(p, field, "", "bob@example.com", why, sizeof(why)), 0);
	assert_non_null(strstr(why, "expired"));
	/* too far ahead */
	date_of(now + 3 * 86400, 6, date, sizeof(date));
	mint(stamp, sizeof(stamp), BITS, BITS, date, "bob@example.com", 0);
	snprintf(field, sizeof(field), "X-Hashcash: %s\r\n", stamp);
	assert_int_equal(check(p, field, "", "bob@example.com", why, sizeof(why)), 0);
	assert_non_null(strstr(why, "future"));
	/* malformed ones */
	assert_int_equal(check(p, "X-Hashcash: 0:10:261123:bob@example.com::a:b\r\n", "",
	                       "bob@example.com", why, sizeof(why)),
	                 0);
	assert_string_equal(why, "malformed stamp");
	assert_int_equal(check(p, "X-Hashcash: 1:10:261332:bob@example.com::a:b\r\n", "",
	                       "bob@example.com", why, sizeof(why)),
	                 0);
	assert_string_equal(why, "malformed stamp");
	assert_int_equal(check(p, "X-Hashcash: 1:10:260230:bob@example.com::a:b\r\n", "",
	                       "bob@example.com", why, sizeof(why)),
	                 0);
	assert_string_equal(why, "malformed stamp");
	assert_int_equal(check(p, "X-Hashcash: 1:10:260101:bob@example.com::a:b:c\r\n", "",
	                       "bob@example.com", why, sizeof(why)),
	                 0);
	assert_string_equal(why, "malformed stamp");
	relay_pow_free(p);
}

static void test_forms(void **state)
{
	struct relay_pow *p = open_pow();
	char stamp[256], date[16], field[400], body[400], why[160];

	/* "Hashcash:" too, resource in any case, date with minutes */
	date_of(now, 10, date, sizeof(date));
	mint(stamp, sizeof(stamp), BITS, BITS, date, "Bob@Example.COM", 0);
	snprintf(field, sizeof(field), "hashcash:   %s  \r\n", stamp);
	assert_int_equal(check(p, field, "", "bob@example.com", why, sizeof(why)), 1);

	/* folded over two lines, LF only, among other recipients' stamps */
	mint(stamp, sizeof(stamp), BITS, BITS, date, "bob@example.com", 0);
	{
		char other[256];
		size_t half = strlen(stamp) / 2;
		mint(other, sizeof(other), BITS, BITS, date, "carol@example.com", 0);
		snprintf(field, sizeof(field), "X-Hashcash: %s\nX-Hashcash: %.*s\n %s\n", other,
		         (int)half, stamp, stamp + half);
		assert_int_equal(check(p, field, "", "bob@example.com", why, sizeof(why)), 1);
		/* carol's stamp is still hers to spend */
		assert_int_equal(check(p, field, "", "carol@example.com", why, sizeof(why)), 1);
	}

	/* a stamp in the body is no stamp */
	mint(stamp, sizeof(stamp), BITS, BITS, date, "bob@example.com", 0);
	snprintf(body, sizeof(body), "X-Hashcash: %s", stamp);
	assert_int_equal(check(p, "", body, "bob@example.com", why, sizeof(why)), 0);
	assert_string_equal(why, "no stamp");
	relay_pow_free(p);
}

static void test_spent_file_pruned(void **state)
{
	char path[128], line[128];
	struct relay_pow *p;
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/spent", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%lld 00000000000000000000000000000000000000aa\n", (long long)now - 10);
	fprintf(f, "%lld 00000000000000000000000000000000000000bb\n", (long long)now + 1000);
	fprintf(f, "garbage\n%lld 00", (long long)now + 1000); /* a torn last line */
	fclose(f);
	p = open_pow();
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		n++;
		assert_non_null(strstr(line, "bb\n"));
	}
	fclose(f);
	assert_int_equal(n, 1);
	relay_pow_free(p);
}

static void test_open_errors(void **state)
{
	struct err e = {0};

	assert_null(relay_pow_open("", 20, 3600, &e));
	assert_null(relay_pow_open(dir, 161, 3600, &e));
	assert_null(relay_pow_open(dir, 20, 0, &e));
	assert_null(relay_pow_open("/nonexistent/a/b", 20, 3600, &e));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_then_spent),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_forms),
	    cmocka_unit_test(test_spent_file_pruned),
	    cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
