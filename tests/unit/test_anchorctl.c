/* Unit tests of anchorctl's pure helpers: arguments, names, files, tokens,
 * the conf reader and the client's error mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "bulk.h"
#include "client.h"
#include "files.h"
#include "names.h"
#include "progress.h"

/* ---- args ---- */

struct parsed {
	const char *dir, *server;
	int json, force;
	struct ctl_args a;
	char msg[128];
};

static int parse(struct parsed *p, int stop, int argc, char **argv)
{
	const struct ctl_opt opts[] = {
	    {"--dir", &p->dir, NULL},     {"-s", &p->server, NULL}, {"--json", NULL, &p->json},
	    {"--force", NULL, &p->force}, {NULL, NULL, NULL},
	};

	memset(p, 0, sizeof(*p));
	return ctl_args_parse(opts, argc, argv, stop, &p->a, p->msg, sizeof(p->msg));
}

static void test_args_interleaved(void **state)
{
	char *argv[] = {"a@b.example", "--json", "--dir", "out", "second", "-s", "https://x"};
	struct parsed p;

	assert_int_equal(parse(&p, 0, 7, argv), 0);
	assert_int_equal(p.a.npos, 2);
	assert_string_equal(p.a.pos[0], "a@b.example");
	assert_string_equal(p.a.pos[1], "second");
	assert_string_equal(p.dir, "out");
	assert_string_equal(p.server, "https://x");
	assert_int_equal(p.json, 1);
	assert_int_equal(p.force, 0);
	assert_int_equal(p.a.help, 0);
}

static void test_args_equals_and_dashdash(void **state)
{
	char *argv[] = {"--dir=a=b", "--", "--json", "-"};
	struct parsed p;

	assert_int_equal(parse(&p, 0, 4, argv), 0);
	assert_string_equal(p.dir, "a=b");
	assert_int_equal(p.json, 0);
	assert_int_equal(p.a.npos, 2);
	assert_string_equal(p.a.pos[0], "--json");
	assert_string_equal(p.a.pos[1], "-");
}

static void test_args_errors(void **state)
{
	char *unknown[] = {"--frob"};
	char *missing[] = {"x", "--dir"};
	char *flagval[] = {"--json=1"};
	char *empty[] = {"--dir="};
	struct parsed p;

	assert_int_equal(parse(&p, 0, 1, unknown), -1);
	assert_non_null(strstr(p.msg, "--frob"));
	assert_int_equal(parse(&p, 0, 2, missing), -1);
	assert_non_null(strstr(p.msg, "needs a value"));
	assert_int_equal(parse(&p, 0, 1, flagval), -1);
	assert_int_equal(parse(&p, 0, 1, empty), -1);
}

static void test_args_stop_and_help(void **state)
{
	char *argv[] = {"-s", "https://k", "--json", "lookup", "--dir", "x"};
	char *help[] = {"x", "--help"};
	struct parsed p;

	assert_int_equal(parse(&p, 1, 6, argv), 0);
	assert_int_equal(p.a.next, 3);
	assert_null(p.dir); /* not parsed: it belongs to the command */
	assert_int_equal(p.json, 1);
	assert_int_equal(parse(&p, 0, 2, help), 0);
	assert_int_equal(p.a.help, 1);
}

static void test_args_int(void **state)
{
	long long v = 0;

	assert_int_equal(ctl_args_int("3650", 1, 36500, &v), 0);
	assert_int_equal(v, 3650);
	assert_int_equal(ctl_args_int("0", 1, 10, &v), -1);
	assert_int_equal(ctl_args_int("11", 1, 10, &v), -1);
	assert_int_equal(ctl_args_int("5x", 1, 10, &v), -1);
	assert_int_equal(ctl_args_int("", 1, 10, &v), -1);
	assert_int_equal(ctl_args_int("99999999999999999999", 1, 10, &v), -1);
}

static void test_args_duration(void **state)
{
	long long v = 0;

	assert_int_equal(ctl_args_duration("3600", &v), 0);
	assert_int_equal(v, 3600);
	assert_int_equal(ctl_args_duration("30d", &v), 0);
	assert_int_equal(v, 30 * 86400);
	assert_int_equal(ctl_args_duration("12h", &v), 0);
	assert_int_equal(v, 12 * 3600);
	assert_int_equal(ctl_args_duration("5m", &v), 0);
	assert_int_equal(v, 300);
	assert_int_equal(ctl_args_duration("2w", &v), 0);
	assert_int_equal(v, 14 * 86400);
	assert_int_equal(ctl_args_duration("0s", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(ctl_args_duration("", &v), -1);
	assert_int_equal(ctl_args_duration("d", &v), -1);
	assert_int_equal(ctl_args_duration("-1d", &v), -1);
	assert_int_equal(ctl_args_duration("1dd", &v), -1);
	assert_int_equal(ctl_args_duration("1y", &v), -1);
	assert_int_equal(ctl_args_duration("3660d", &v), 0);
	assert_int_equal(ctl_args_duration("3661d", &v), -1); /* beyond ten years */
	assert_int_equal(ctl_args_duration("3661w", &v), -1);
	assert_int_equal(ctl_args_duration("99999999999999999999", &v), -1);
	assert_int_equal(ctl_args_duration(NULL, &v), -1);
}

/* ---- names ---- */

static void test_name_domain_of(void **state)
{
	char mixed[] = "Alice@Example.COM";

	assert_string_equal(ctl_name_domain_of("alice@example.com"), "example.com");
	assert_null(ctl_name_domain_of("example.com"));
	assert_null(ctl_name_domain_of("@example.com"));
	assert_null(ctl_name_domain_of("alice@"));
	assert_string_equal(ctl_name_lower(mixed), "alice@example.com");
}

static void test_name_fingerprint(void **state)
{
	char out[CERT_FPR_LEN];
	const char *hex = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789ABCDEF";

	assert_int_equal(ctl_name_fingerprint(hex, out), 0);
	assert_string_equal(
	    out, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	assert_int_equal(ctl_name_fingerprint(out, out), 0); /* idempotent, in place */
	assert_int_equal(ctl_name_fingerprint("sha256:0123", out), -1);
	assert_int_equal(
	    ctl_name_fingerprint(
	        "sha256:g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", out),
	    -1);
}

static void test_name_path_escape(void **state)
{
	char *s = ctl_name_path_escape("a+b/c d@example.com");

	assert_string_equal(s, "a%2Bb%2Fc%20d@example.com");
	free(s);
	s = ctl_name_path_escape("sha256:ab~_.-");
	assert_string_equal(s, "sha256:ab~_.-");
	free(s);
	s = ctl_name_path_escape("..%");
	assert_string_equal(s, "..%25");
	free(s);
}

static void test_name_file(void **state)
{
	char *p;

	p = ctl_name_file(NULL, "alice@example.com", ".key");
	assert_string_equal(p, "./alice@example.com.key");
	free(p);
	p = ctl_name_file("keys//", "mx.example.com.mta", ".chain.pem");
	assert_string_equal(p, "keys/mx.example.com.mta.chain.pem");
	free(p);
	p = ctl_name_file("/", "root.pem", NULL);
	assert_string_equal(p, "/root.pem");
	free(p);
}

static int fake_exists(const char *path, void *arg)
{
	const char *const *have = arg;

	for (; *have != NULL; have++)
		if (strcmp(path, *have) == 0)
			return 1;
	return 0;
}

static void test_name_admin_domain(void **state)
{
	/* Paths as ctl_name_file() makes them, relative to the current directory. */
	const char *have[] = {"example.com/admin.token", "sub.example.com/admin.token", NULL};
	const char *parent_only[] = {"example.com/admin.token", NULL};
	const char *none[] = {NULL};

	assert_string_equal(ctl_name_admin_domain("mx.sub.example.com", fake_exists, have),
	                    "sub.example.com");
	assert_string_equal(ctl_name_admin_domain("mx.sub.example.com", fake_exists, parent_only),
	                    "example.com");
	assert_string_equal(ctl_name_admin_domain("example.com", fake_exists, parent_only),
	                    "example.com");
	assert_null(ctl_name_admin_domain("mx.example.org", fake_exists, parent_only));
	assert_null(ctl_name_admin_domain("mx.example.com", fake_exists, none));
}

/* ---- tokens and conf ---- */

static void test_token_strip(void **state)
{
	char a[] = "abc-DEF_123\r\n";
	char b[] = "\n";
	char c[] = "two words\n";
	char d[] = "tab\tinside";

	assert_int_equal(ctl_token_strip(a), 11);
	assert_string_equal(a, "abc-DEF_123");
	assert_int_equal(ctl_token_strip(b), -1);
	assert_int_equal(ctl_token_strip(c), -1);
	assert_int_equal(ctl_token_strip(d), -1);
}

static void test_conf_pick(void **state)
{
	const char *text = "# db_conninfo = commented\n"
	                   "db_conninfo_extra = no\n"
	                   "listen_port = 8443\n"
	                   "db_conninfo=host=/tmp\n"
	                   "   dbname=anchor\n"
	                   "sql_dir = /first\n"
	                   "sql_dir = /srv/sql  \n"
	                   "  # a comment inside a continuation is skipped\n"
	                   "unknown_key = tolerated";
	char *v;

	v = ctl_conf_pick(text, "db_conninfo");
	assert_string_equal(v, "host=/tmp dbname=anchor");
	free(v);
	v = ctl_conf_pick(text, "sql_dir");
	assert_string_equal(v, "/srv/sql");
	free(v);
	v = ctl_conf_pick(text, "unknown_key");
	assert_string_equal(v, "tolerated");
	free(v);
	assert_null(ctl_conf_pick(text, "port_file"));
	assert_null(ctl_conf_pick("", "sql_dir"));
}

/* ---- files ---- */

static void test_file_write_modes(void **state)
{
	char dir[] = "/tmp/test_anchorctl.XXXXXX";
	char path[64], *back;
	struct err e = {0};
	struct stat st;
	size_t len = 0;
	mode_t old = umask(077);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/tok", dir);
	assert_int_equal(ctl_file_write(path, "secret\n", 7, 0600, 0, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Never overwrite unless asked. */
	assert_int_equal(ctl_file_write(path, "other\n", 6, 0600, 0, &e), -1);
	assert_string_equal(e.code, "exists");
	/* Replace, and a public file gets its mode despite the umask. */
	assert_int_equal(ctl_file_write(path, "new", 3, 0644, 1, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	back = ctl_file_read(path, &len, &e);
	assert_non_null(back);
	assert_int_equal(len, 3);
	assert_string_equal(back, "new");
	free(back);
	umask(old);

	{
		char tok[CTL_TOKEN_MAX];

		assert_int_equal(ctl_file_write(path, "tok-123\n\n", 9, 0600, 1, &e), 0);
		assert_int_equal(ctl_token_read(path, tok, &e), 0);
		assert_string_equal(tok, "tok-123");
	}
	unlink(path);
	assert_null(ctl_file_read(path, NULL, &e));
	rmdir(dir);
}

/* ---- client ---- */

static void test_client_url(void **state)
{
	struct err e = {0};

	assert_int_equal(ctl_client_check_url("https://keys.example.com:8443", &e), 0);
	assert_int_equal(ctl_client_check_url("https://[::1]:8443/", &e), 0);
	assert_int_equal(ctl_client_check_url("http://127.0.0.1:8080", &e), 0);
	assert_int_equal(ctl_client_check_url("http://localhost", &e), 0);
	assert_int_equal(ctl_client_check_url("http://keys.example.com", &e), -1);
	assert_int_equal(ctl_client_check_url("http://127.0.0.1.evil.example", &e), -1);
	assert_int_equal(ctl_client_check_url("ftp://keys.example.com", &e), -1);
	assert_int_equal(ctl_client_check_url("https://", &e), -1);
	assert_int_equal(ctl_client_check_url("https://user@host", &e), -1);
}

static void test_client_error_body(void **state)
{
	const char *body = "{\"error\":\"token_used\",\"message\":\"already used\\u001b[31m\"}";
	struct err e = {0};

	ctl_client_error_from_body(409, body, strlen(body), "abc", &e);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_string_equal(e.code, "token_used");
	assert_string_equal(e.msg, "already used?[31m"); /* escape byte neutralised */

	ctl_client_error_from_body(502, "<html>bad gateway</html>", 24, NULL, &e);
	assert_int_equal(e.kind, ERR_TEMP);
	assert_string_equal(e.code, "http_502");

	body = "{\"error\":\"internal\",\"message\":\"a bug\"}";
	ctl_client_error_from_body(500, body, strlen(body), "00ff", &e);
	assert_int_equal(e.kind, ERR_INTERNAL);
	assert_string_equal(e.msg, "a bug (request id 00ff)");

	ctl_client_error_from_body(404, NULL, 0, NULL, &e);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_string_equal(e.code, "http_404");
}

static void test_bulk_formats(void **state)
{
	struct ctl_bulk_fmt f;
	struct err e = {0};
	char h1[] = "Name, Address ,team", h2[] = "address", h3[] = "a@b.example", h4[] = "x,y";
	char l1[] = "\"Doe, \"\"J\"\"\",  \"a@b.example\" ,ops", l2[] = "only";
	char l3[] = "\"open,a@b", l4[] = "\"x\"y,a@b";
	int header;

	(void)state;
	assert_int_equal(ctl_bulk_detect(h1, &f, &header, &e), 0);
	assert_true(f.csv && header && f.col == 1);
	assert_string_equal(ctl_bulk_address(l1, &f, &e), "a@b.example");
	assert_null(ctl_bulk_address(l2, &f, &e)); /* no second column */
	assert_null(ctl_bulk_address(l3, &f, &e));
	assert_string_equal(e.msg, "a quoted field is not closed");
	assert_null(ctl_bulk_address(l4, &f, &e));
	assert_int_equal(ctl_bulk_detect(h2, &f, &header, &e), 0);
	assert_true(!f.csv && header);
	assert_int_equal(ctl_bulk_detect(h3, &f, &header, &e), 0);
	assert_true(!f.csv && !header);
	assert_int_equal(ctl_bulk_detect(h4, &f, &header, &e), -1);
	assert_string_equal(e.code, "no_address_column");
}

static void test_progress_bar(void **state)
{
	char bar[11];

	(void)state;
	ctl_progress_bar(0, 100, 10, bar, sizeof(bar));
	assert_string_equal(bar, "..........");
	ctl_progress_bar(55, 100, 10, bar, sizeof(bar));
	assert_string_equal(bar, "#####.....");
	ctl_progress_bar(100, 100, 10, bar, sizeof(bar));
	assert_string_equal(bar, "##########");
	ctl_progress_bar(7, 0, 10, bar, sizeof(bar)); /* unknown total: empty */
	assert_string_equal(bar, "..........");
	ctl_progress_bar(5, 10, 10, bar, 4); /* cut to the buffer */
	assert_string_equal(bar, "###");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_args_interleaved),
	    cmocka_unit_test(test_args_equals_and_dashdash),
	    cmocka_unit_test(test_args_errors),
	    cmocka_unit_test(test_args_stop_and_help),
	    cmocka_unit_test(test_args_int),
	    cmocka_unit_test(test_args_duration),
	    cmocka_unit_test(test_name_domain_of),
	    cmocka_unit_test(test_name_fingerprint),
	    cmocka_unit_test(test_name_path_escape),
	    cmocka_unit_test(test_name_file),
	    cmocka_unit_test(test_name_admin_domain),
	    cmocka_unit_test(test_token_strip),
	    cmocka_unit_test(test_conf_pick),
	    cmocka_unit_test(test_file_write_modes),
	    cmocka_unit_test(test_client_url),
	    cmocka_unit_test(test_client_error_body),
	    cmocka_unit_test(test_bulk_formats),
	    cmocka_unit_test(test_progress_bar),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
