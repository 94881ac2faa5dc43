/*
 * Tests of lib/mail/csa.c: the pure parts (names, record evaluation, address
 * match), then every weight/port/target case against a real NSD started on
 * a random loopback port with zones written here (skipped when nsd is not
 * installed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mail/csa.h"

/* ------------------------------------------------------------------ pure parts */

static void test_reverse_names(void **state)
{
	char out[128];

	assert_int_equal(csa_reverse_name("192.0.2.1", out, sizeof(out)), 0);
	assert_string_equal(out, "1.2.0.192.in-addr.arpa");
	assert_int_equal(csa_reverse_name("2001:db8::1", out, sizeof(out)), 0);
	assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."
	                         "ip6.arpa");
	assert_int_equal(csa_reverse_name("mx.example", out, sizeof(out)), -1);
	assert_int_equal(csa_reverse_name("192.0.2.1", out, 8), -1);
}

struct form_case {
	const char *helo;
	enum csa_helo_form form;
	const char *canon; /* NAME/LITERAL: the canonical form; INVALID: part of why */
};

static void test_helo_classify(void **state)
{
	static char longlabel[80], longname[300], dot254[300];
	const struct form_case cases[] = {
	    {"mx.example.com", CSA_HELO_NAME, "mx.example.com"},
	    {"MX.Example.COM.", CSA_HELO_NAME, "mx.example.com"},
	    {"xn--bcher-kva.example", CSA_HELO_NAME, "xn--bcher-kva.example"},
	    {dot254, CSA_HELO_NAME, NULL}, /* 253 octets and the root dot */
	    {"[127.0.0.1]", CSA_HELO_LITERAL, "[127.0.0.1]"},
	    {"[IPv6:::1]", CSA_HELO_LITERAL, "[IPv6:::1]"},
	    {"[ipv6:2001:DB8:0::1]", CSA_HELO_LITERAL, "[IPv6:2001:db8::1]"},
	    {"[IPv6:::ffff:192.0.2.1]", CSA_HELO_LITERAL, "[192.0.2.1]"},
	    {"192.0.2.7", CSA_HELO_LITERAL, "[192.0.2.7]"},
	    {"2001:db8::7", CSA_HELO_LITERAL, "[IPv6:2001:db8::7]"},
	    {"", CSA_HELO_INVALID, "empty"},
	    {"vm", CSA_HELO_INVALID, "two labels"},
	    {"localhost.", CSA_HELO_INVALID, "two labels"},
	    {".", CSA_HELO_INVALID, "empty"},
	    {"mx.example.com..", CSA_HELO_INVALID, "trailing dot"},
	    {"mx..example.com", CSA_HELO_INVALID, "empty label"},
	    {".mx.example.com", CSA_HELO_INVALID, "empty label"},
	    {"mx_1.example.com", CSA_HELO_INVALID, "'_'"},
	    {"mx example.com", CSA_HELO_INVALID, "' '"},
	    {"mx.example.com\xff", CSA_HELO_INVALID, "0xff"},
	    {"b\xc3\xbc"
	     "cher.example",
	     CSA_HELO_INVALID, "0xc3"},
	    {"mx.example.com;", CSA_HELO_INVALID, "';'"},
	    {"-mx.example.com", CSA_HELO_INVALID, "hyphen"},
	    {"mx.123", CSA_HELO_INVALID, "all digits"},
	    {"1.2.3", CSA_HELO_INVALID, "all digits"},
	    {longlabel, CSA_HELO_INVALID, "label of 70 octets"},
	    {longname, CSA_HELO_INVALID, "at most 253"},
	    {"[127.0.0.1", CSA_HELO_INVALID, "not an address literal"},
	    {"[300.1.1.1]", CSA_HELO_INVALID, "IPv4 address literal"},
	    {"[::1]", CSA_HELO_INVALID, "IPv4 address literal"},
	    {"[IPv6:127.0.0.1]", CSA_HELO_INVALID, "IPv6 address literal"},
	    {"[x:192.0.2.1]", CSA_HELO_INVALID, "IPv4 address literal"},
	    {"[]", CSA_HELO_INVALID, "not an address literal"},
	    {"[127.0.0.1] ", CSA_HELO_INVALID, "not an address literal"},
	};
	char canon[DNS_NAME_MAX];
	struct err why;

	memset(longlabel, 'a', 70);
	memcpy(longlabel + 70, ".example", 9);
	for (int i = 0; i < 4; i++)
		memcpy(longname + 64 * i,
		       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.", 64);
	memcpy(longname + 256, "example", 8); /* 263 octets */
	for (int i = 0; i < 4; i++) {         /* 4 x (62 + '.') + "a" = 253, then the root dot */
		memset(dot254 + 63 * i, 'a', 62);
		dot254[63 * i + 62] = '.';
	}
	memcpy(dot254 + 252, "a.", 3);
	assert_int_equal(strlen(dot254), 254);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct form_case *c = &cases[i];
		enum csa_helo_form f;

		memset(&why, 0, sizeof(why));
		f = csa_helo_classify(c->helo, strlen(c->helo), canon, sizeof(canon), &why);
		if (f != c->form)
			fail_msg("%zu \"%s\": form %d, want %d (%s)", i, c->helo, f, c->form,
			         why.msg);
		if (f != CSA_HELO_INVALID && c->canon != NULL)
			assert_string_equal(canon, c->canon);
		if (f == CSA_HELO_INVALID) {
			assert_string_equal(canon, "");
			assert_string_equal(why.code, "csa_bad_helo");
			if (strstr(why.msg, c->canon) == NULL)
				fail_msg("%zu: \"%s\" does not say \"%s\"", i, why.msg, c->canon);
		}
	}
	/* a NUL inside is seen, not read as the end */
	assert_int_equal(csa_helo_classify("mx.example.com\0.evil", 20, canon, sizeof(canon), &why),
	                 CSA_HELO_INVALID);
	assert_non_null(strstr(why.msg, "NUL"));
}

static void test_helo_show(void **state)
{
	char out[80], big[200];

	csa_helo_show("vm", 2, out, sizeof(out));
	assert_string_equal(out, "\"vm\"");
	csa_helo_show("a\"b\\c\n\xc3\xbc", 8, out, sizeof(out));
	assert_string_equal(out, "\"a?b?c???\"");
	memset(big, 'x', sizeof(big));
	csa_helo_show(big, sizeof(big), out, sizeof(out));
	assert_int_equal(strlen(out), 64 + 5);
	assert_non_null(strstr(out, "x...\""));
}

static void test_domain_for(void **state)
{
	char out[DNS_NAME_MAX];
	struct err e;
	int rev;

	assert_int_equal(csa_domain_for("MX.Example.COM.", "192.0.2.1", out, sizeof(out), &rev, &e),
	                 0);
	assert_string_equal(out, "mx.example.com");
	assert_int_equal(rev, 0);
	assert_int_equal(csa_domain_for("[192.0.2.9]", "192.0.2.1", out, sizeof(out), &rev, &e), 0);
	assert_string_equal(out, "9.2.0.192.in-addr.arpa");
	assert_int_equal(rev, 1);
	assert_int_equal(csa_domain_for("[IPv6:::1]", "::1", out, sizeof(out), &rev, &e), 0);
	assert_true(strncmp(out, "1.0.0.0.", 8) == 0);
	assert_int_equal(csa_domain_for("192.0.2.7", "192.0.2.1", out, sizeof(out), &rev, &e), 0);
	assert_string_equal(out, "7.2.0.192.in-addr.arpa");
	/* No HELO: the client address itself. */
	assert_int_equal(csa_domain_for("", "198.51.100.3", out, sizeof(out), &rev, &e), 0);
	assert_string_equal(out, "3.100.51.198.in-addr.arpa");
	assert_int_equal(csa_domain_for(NULL, "198.51.100.3", out, sizeof(out), &rev, &e), 0);

	assert_int_equal(csa_domain_for("mx.example", "not-an-ip", out, sizeof(out), &rev, &e), -1);
	assert_string_equal(e.code, "csa_bad_ip");
	assert_int_equal(csa_domain_for("[999.1.1.1]", "192.0.2.1", out, sizeof(out), &rev, &e),
	                 -1);
	assert_string_equal(e.code, "csa_bad_helo");
	assert_int_equal(csa_domain_for("bad name;", "192.0.2.1", out, sizeof(out), &rev, &e), -1);
	assert_string_equal(e.code, "csa_bad_helo");
	assert_int_equal(csa_domain_for("vm", "192.0.2.1", out, sizeof(out), &rev, &e), -1);
	assert_string_equal(e.code, "csa_bad_helo");
	assert_int_equal(csa_domain_for("mx_1.example", "192.0.2.1", out, sizeof(out), &rev, &e),
	                 -1);
	assert_int_equal(csa_domain_for("[]", "192.0.2.1", out, sizeof(out), &rev, &e), -1);
}

static void test_parent_names(void **state)
{
	char p[CSA_SEARCH_LIMIT][DNS_NAME_MAX];

	assert_int_equal(csa_parent_names("a.b.example.com", p, CSA_SEARCH_LIMIT), 2);
	assert_string_equal(p[0], "example.com"); /* top-down, TLD and the name itself excluded */
	assert_string_equal(p[1], "b.example.com");
	assert_int_equal(csa_parent_names("example.com", p, CSA_SEARCH_LIMIT), 0);
	assert_int_equal(csa_parent_names("com", p, CSA_SEARCH_LIMIT), 0);
	assert_int_equal(csa_parent_names("1.2.3.4.5.6.7.8.example.com", p, CSA_SEARCH_LIMIT), 5);
	assert_string_equal(p[4], "5.6.7.8.example.com");
	assert_int_equal(csa_parent_names("7.0.0.127.in-addr.arpa", p, CSA_SEARCH_LIMIT), 3);
	assert_string_equal(p[0], "127.in-addr.arpa");
	assert_string_equal(p[1], "0.127.in-addr.arpa");
	assert_string_equal(p[2], "0.0.127.in-addr.arpa");
	{
		char rev[128];

		assert_int_equal(csa_reverse_name("2001:db8::1", rev, sizeof(rev)), 0);
		assert_int_equal(csa_parent_names(rev, p, CSA_SEARCH_LIMIT), 3);
		assert_string_equal(p[0], "1.0.0.2.ip6.arpa");
		assert_string_equal(p[1], "8.b.d.0.1.0.0.2.ip6.arpa");
	}
}

static struct dns_srv srv(uint16_t prio, uint16_t weight, uint16_t port, const char *target)
{
	struct dns_srv s;

	memset(&s, 0, sizeof(s));
	s.priority = prio;
	s.weight = weight;
	s.port = port;
	snprintf(s.target, sizeof(s.target), "%s", target);
	return s;
}

static void test_evaluate_own(void **state)
{
	struct dns_srv r[3];
	size_t which = 99;

	r[0] = srv(1, 2, 0, "mx.example");
	assert_int_equal(csa_evaluate_own(r, 1, &which), CSA_OWN_CHECK);
	assert_int_equal(which, 0);
	r[0] = srv(1, 0, 0, "mx.example");
	assert_int_equal(csa_evaluate_own(r, 1, &which), CSA_OWN_UNAUTH);
	r[0] = srv(1, 1, 0, "mx.example");
	assert_int_equal(csa_evaluate_own(r, 1, &which), CSA_OWN_UNAUTH);
	r[0] = srv(1, 3, 0, "mx.example");
	assert_int_equal(csa_evaluate_own(r, 1, &which), CSA_OWN_UNVERIFIED);
	r[0] = srv(1, 7, 0, "mx.example");
	assert_int_equal(csa_evaluate_own(r, 1, &which), CSA_OWN_UNDEFINED);
	r[0] = srv(1, 2, 0, ".");
	assert_int_equal(csa_evaluate_own(r, 1, &which), CSA_OWN_NOADDR);
	/* Priority other than 1 is another CSA version: ignored. */
	r[0] = srv(2, 2, 0, "mx.example");
	assert_int_equal(csa_evaluate_own(r, 1, &which), CSA_OWN_NONE);
	r[1] = srv(1, 2, 0, "other.example");
	assert_int_equal(csa_evaluate_own(r, 2, &which), CSA_OWN_CHECK);
	assert_int_equal(which, 1);
	/* Exim scans in answer order: weight 3 is skipped, a later weight 2 decides. */
	r[0] = srv(1, 3, 0, "a.example");
	r[1] = srv(1, 2, 0, "b.example");
	assert_int_equal(csa_evaluate_own(r, 2, &which), CSA_OWN_CHECK);
	assert_int_equal(which, 1);
	/* ... and an unauthorising record first wins. */
	r[0] = srv(1, 0, 0, "a.example");
	assert_int_equal(csa_evaluate_own(r, 2, &which), CSA_OWN_UNAUTH);
}

static void test_parent_explicit(void **state)
{
	struct dns_srv r[2];

	r[0] = srv(1, 2, 0, "x.example");
	assert_false(csa_parent_requires_explicit(r, 1));
	r[0] = srv(1, 0, 1, ".");
	assert_true(csa_parent_requires_explicit(r, 1));
	r[0] = srv(1, 0, 3, ".");
	assert_true(csa_parent_requires_explicit(r, 1));
	r[0] = srv(2, 0, 1, "."); /* wrong version */
	assert_false(csa_parent_requires_explicit(r, 1));
	r[1] = srv(1, 0, 1, ".");
	assert_true(csa_parent_requires_explicit(r, 2));
}

static void test_ip_listed(void **state)
{
	ldns_rr_list *l = ldns_rr_list_new();
	ldns_rr *rr = NULL;

	assert_int_equal(ldns_rr_new_frm_str(&rr, "h.example. 60 IN A 192.0.2.5", 0, NULL, NULL),
	                 LDNS_STATUS_OK);
	ldns_rr_list_push_rr(l, rr);
	assert_int_equal(
	    ldns_rr_new_frm_str(&rr, "h.example. 60 IN AAAA 2001:db8::5", 0, NULL, NULL),
	    LDNS_STATUS_OK);
	ldns_rr_list_push_rr(l, rr);
	assert_true(csa_ip_listed("192.0.2.5", l));
	assert_false(csa_ip_listed("192.0.2.6", l));
	assert_true(csa_ip_listed("2001:0db8:0:0::5", l)); /* binary comparison */
	assert_false(csa_ip_listed("2001:db8::6", l));
	assert_false(csa_ip_listed("garbage", l));
	ldns_rr_list_deep_free(l);
}

static void test_status_names(void **state)
{
	assert_string_equal(csa_status_name(CSA_PASS), "pass");
	assert_string_equal(csa_status_name(CSA_FAIL), "fail");
	assert_string_equal(csa_status_name(CSA_NONE), "none");
	assert_string_equal(csa_status_name(CSA_UNKNOWN), "unknown");
}

/* ------------------------------------------------------------------ against NSD */

struct nsd {
	char dir[64];
	pid_t pid;
	int port;
	struct dns_resolver *res;
};

static const char SOA[] = "$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n"
                          "@ IN NS ns\n";

static const char ZONE_CSA[] = "$ORIGIN csa.test.\n"
                               "ns IN A 127.0.0.1\n"
                               "good IN A 127.0.0.5\n"
                               "good IN AAAA ::1\n"
                               "lit IN A 127.0.0.7\n"
                               "noaddr IN TXT \"a host without addresses\"\n"
                               "_client._smtp.good IN SRV 1 2 0 good.csa.test.\n"
                               "_client._smtp.unauth0 IN SRV 1 0 0 good.csa.test.\n"
                               "_client._smtp.unauth1 IN SRV 1 1 0 good.csa.test.\n"
                               "_client._smtp.unverif IN SRV 1 3 0 good.csa.test.\n"
                               "_client._smtp.undef IN SRV 1 6 0 good.csa.test.\n"
                               "_client._smtp.dot IN SRV 1 2 0 .\n"
                               "_client._smtp.prio IN SRV 2 2 0 good.csa.test.\n"
                               "_client._smtp.prio IN SRV 10 2 0 good.csa.test.\n"
                               "_client._smtp.hostless IN SRV 1 2 0 noaddr.csa.test.\n"
                               "_client._smtp.alias IN CNAME _client._smtp.good.csa.test.\n";

/* The apex says: every client below is listed explicitly (port bit 1). */
static const char ZONE_STRICT[] = "$ORIGIN strict.test.\n"
                                  "ns IN A 127.0.0.1\n"
                                  "_client._smtp IN SRV 1 0 1 .\n"
                                  "_client._smtp.mx1 IN SRV 1 2 0 mx1.strict.test.\n"
                                  "mx1 IN A 127.0.0.5\n";

/* A parent record without port bit 1: says nothing about unlisted subdomains. */
static const char ZONE_LAX[] = "$ORIGIN lax.test.\n"
                               "ns IN A 127.0.0.1\n"
                               "_client._smtp IN SRV 1 2 2 mail.lax.test.\n"
                               "mail IN A 127.0.0.5\n";

/* Reverse tree: 127.0.0.7 is listed; every other client under 127.0.0/24 must be. */
static const char ZONE_REV[] = "$ORIGIN 127.in-addr.arpa.\n"
                               "ns IN A 127.0.0.1\n"
                               "_client._smtp.7.0.0 IN SRV 1 2 0 lit.csa.test.\n"
                               "_client._smtp.9.0.0 IN SRV 1 2 0 lit.csa.test.\n"
                               "_client._smtp.0.0 IN SRV 1 0 1 .\n";

static void write_file(const char *dir, const char *name, const char *head, const char *body)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(head, f);
	fputs(body, f);
	fclose(f);
}

static int free_udp_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int have_nsd(void)
{
	return access("/usr/sbin/nsd", X_OK) == 0;
}

static int nsd_start(void **state)
{
	struct nsd *n = calloc(1, sizeof(*n));
	char conf[2048], path[128], server[32];
	struct err e;
	int i;

	*state = n;
	if (!have_nsd())
		return 0;
	snprintf(n->dir, sizeof(n->dir), "/tmp/anchor-csa-XXXXXX");
	assert_non_null(mkdtemp(n->dir));
	n->port = free_udp_port();
	assert_true(n->port > 0);
	/* Every zone file starts with $ORIGIN, so the SOA lines follow it. */
	{
		struct {
			const char *name, *file, *body;
		} z[] = {{"csa.test", "csa.zone", ZONE_CSA},
		         {"strict.test", "strict.zone", ZONE_STRICT},
		         {"lax.test", "lax.zone", ZONE_LAX},
		         {"127.in-addr.arpa", "rev.zone", ZONE_REV}};
		size_t k, off;

		off = (size_t)snprintf(
		    conf, sizeof(conf),
		    "server:\n ip-address: 127.0.0.1@%d\n port: %d\n zonesdir: \"%s\"\n"
		    " pidfile: \"%s/nsd.pid\"\n username: \"\"\n chroot: \"\"\n database: \"\"\n"
		    " zonelistfile: \"%s/zone.list\"\n xfrdfile: \"%s/xfrd.state\"\n"
		    " xfrdir: \"%s\"\n logfile: \"%s/nsd.log\"\n verbosity: 1\n"
		    " server-count: 1\n reuseport: no\nremote-control:\n control-enable: no\n"
		    /* configured, but its file is missing: NSD answers SERVFAIL */
		    "zone:\n name: \"broken.test\"\n zonefile: \"%s/missing.zone\"\n",
		    n->port, n->port, n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, n->dir);
		for (k = 0; k < sizeof(z) / sizeof(z[0]); k++) {
			char head[512];
			const char *nl = strchr(z[k].body, '\n');

			/* $ORIGIN line first, then the SOA boilerplate, then the rest. */
			snprintf(head, sizeof(head), "%.*s%s", (int)(nl - z[k].body + 1), z[k].body,
			         SOA);
			write_file(n->dir, z[k].file, head, nl + 1);
			off += (size_t)snprintf(conf + off, sizeof(conf) - off,
			                        "zone:\n name: \"%s\"\n zonefile: \"%s/%s\"\n",
			                        z[k].name, n->dir, z[k].file);
		}
	}
	write_file(n->dir, "nsd.conf", conf, "");
	n->pid = fork();
	assert_true(n->pid >= 0);
	if (n->pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		snprintf(path, sizeof(path), "%s/nsd.conf", n->dir);
		execl("/usr/sbin/nsd", "nsd", "-d", "-c", path, (char *)NULL);
		_exit(127);
	}
	snprintf(server, sizeof(server), "127.0.0.1:%d", n->port);
	n->res = dns_resolver_new(server, NULL, 1000, &e);
	assert_non_null(n->res);
	for (i = 0; i < 100; i++) {
		struct dns_answer a;

		if (dns_query(n->res, "csa.test", LDNS_RR_TYPE_SOA, &a, &e) == 0 &&
		    ldns_rr_list_rr_count(a.rrs) > 0) {
			dns_answer_clear(&a);
			return 0;
		}
		usleep(100 * 1000);
	}
	fail_msg("nsd did not answer on port %d (see %s/nsd.log)", n->port, n->dir);
	return -1;
}

static int nsd_stop(void **state)
{
	struct nsd *n = *state;
	char cmd[128];

	if (n == NULL)
		return 0;
	if (n->pid > 0) {
		kill(n->pid, SIGTERM);
		waitpid(n->pid, NULL, 0);
	}
	dns_resolver_free(n->res);
	if (n->dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", n->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", n->dir);
	}
	free(n);
	return 0;
}

/* One CSA check against NSD; returns the result for more assertions. */
static struct csa_result check(void **state, const char *helo, const char *ip, enum csa_status want,
                               const char *want_code)
{
	struct nsd *n = *state;
	struct csa_result r;
	struct err e;

	assert_int_equal(csa_check(n->res, helo, ip, &r, &e), 0);
	if (r.status != want || strcmp(r.code, want_code) != 0)
		fail_msg("CSA %s from %s: got %s/%s (%s), want %s/%s", helo, ip,
		         csa_status_name(r.status), r.code, r.reason, csa_status_name(want),
		         want_code);
	assert_true(strlen(r.reason) > 10);
	return r;
}

#define NEED_NSD()                                                                                 \
	do {                                                                                       \
		if (!have_nsd())                                                                   \
			skip();                                                                    \
	} while (0)

static void test_nsd_authorised_pass(void **state)
{
	struct csa_result r;

	NEED_NSD();
	r = check(state, "good.csa.test", "127.0.0.5", CSA_PASS, "ok");
	assert_string_equal(r.target, "good.csa.test");
	assert_string_equal(r.found, "good.csa.test");
	check(state, "GOOD.csa.test.", "127.0.0.5", CSA_PASS, "ok");
	check(state, "good.csa.test", "::1", CSA_PASS, "ok");        /* AAAA for an IPv6 client */
	check(state, "alias.csa.test", "127.0.0.5", CSA_PASS, "ok"); /* SRV through a CNAME */
}

static void test_nsd_ip_not_among_targets(void **state)
{
	NEED_NSD();
	check(state, "good.csa.test", "127.0.0.6", CSA_FAIL, "fail_mismatch");
	check(state, "good.csa.test", "::2", CSA_FAIL, "fail_mismatch");
}

static void test_nsd_weight_without_bit2(void **state)
{
	NEED_NSD();
	check(state, "unauth0.csa.test", "127.0.0.5", CSA_FAIL, "fail_domain");
	check(state, "unauth1.csa.test", "127.0.0.5", CSA_FAIL, "fail_domain");
}

static void test_nsd_weight_bit1_unknown(void **state)
{
	NEED_NSD();
	check(state, "unverif.csa.test", "127.0.0.5", CSA_UNKNOWN, "unverifiable");
	check(state, "undef.csa.test", "127.0.0.5", CSA_UNKNOWN, "undefined_weight");
}

static void test_nsd_target_dot(void **state)
{
	NEED_NSD();
	check(state, "dot.csa.test", "127.0.0.5", CSA_FAIL, "fail_noaddr");
	check(state, "hostless.csa.test", "127.0.0.5", CSA_FAIL, "fail_noaddr");
}

static void test_nsd_parent_explicit(void **state)
{
	struct csa_result r;

	NEED_NSD();
	check(state, "mx1.strict.test", "127.0.0.5", CSA_PASS, "ok"); /* listed */
	r = check(state, "rogue.strict.test", "127.0.0.5", CSA_FAIL, "fail_explicit");
	assert_string_equal(r.found, "strict.test");
	check(state, "a.b.strict.test", "127.0.0.5", CSA_FAIL, "fail_explicit");
	/* The parent without port bit 1 says nothing about its subdomains. */
	check(state, "other.lax.test", "127.0.0.5", CSA_NONE, "none");
}

static void test_nsd_no_record(void **state)
{
	NEED_NSD();
	check(state, "nothing.csa.test", "127.0.0.5", CSA_NONE, "none");
	check(state, "deep.er.nothing.csa.test", "127.0.0.5", CSA_NONE, "none");
}

static void test_nsd_priority_not_1_ignored(void **state)
{
	NEED_NSD();
	check(state, "prio.csa.test", "127.0.0.5", CSA_NONE, "none");
}

static void test_nsd_servfail_unknown(void **state)
{
	struct csa_result r;

	NEED_NSD();
	r = check(state, "mx.broken.test", "127.0.0.5", CSA_UNKNOWN, "defer_srv");
	assert_non_null(strstr(r.reason, "SERVFAIL"));
}

static void test_nsd_ip_literal_reverse(void **state)
{
	struct csa_result r;

	NEED_NSD();
	r = check(state, "[127.0.0.7]", "127.0.0.7", CSA_PASS, "ok");
	assert_string_equal(r.domain, "7.0.0.127.in-addr.arpa");
	assert_string_equal(r.target, "lit.csa.test");
	check(state, "", "127.0.0.7", CSA_PASS, "ok"); /* no HELO: the client address */
	/* 127.0.0.9 is listed in the reverse tree, but lit's address is .7 */
	check(state, "[127.0.0.9]", "127.0.0.9", CSA_FAIL, "fail_mismatch");
	/* Unlisted under 0.0.127.in-addr.arpa, whose record has port bit 1. */
	r = check(state, "[127.0.0.8]", "127.0.0.8", CSA_FAIL, "fail_explicit");
	assert_string_equal(r.found, "0.0.127.in-addr.arpa");
}

static void test_nsd_bad_arguments(void **state)
{
	struct nsd *n = *state;
	struct csa_result r;
	struct err e;

	NEED_NSD();
	assert_int_equal(csa_check(n->res, "good.csa.test", "nope", &r, &e), -1);
	assert_int_equal(e.kind, ERR_INPUT);
	assert_string_equal(e.code, "csa_bad_ip");
	assert_int_equal(r.status, CSA_UNKNOWN);
	/* A HELO that is no host name is the client's claim: a finding (fail), not an error,
	 * and nothing is looked up for it. */
	static const char *const claims[] = {"a b",
	                                     "vm",
	                                     "[127.0.0.1",
	                                     "mx_1.good.csa.test",
	                                     "good.csa.test\xff",
	                                     "[IPv6:127.0.0.1]"};
	for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(csa_check(n->res, claims[i], "127.0.0.1", &r, &e), 0);
		assert_int_equal(r.status, CSA_FAIL);
		assert_string_equal(r.code, "fail_helo");
		assert_string_equal(r.domain, "");
		assert_non_null(strstr(r.reason, "no CSA record can authorise it"));
		for (const char *p = r.reason; *p; p++) /* printable ASCII, for JSON and logs */
			assert_true(*p >= 0x20 && *p < 0x7f);
	}
}

int main(void)
{
	const struct CMUnitTest pure[] = {
	    cmocka_unit_test(test_reverse_names),   cmocka_unit_test(test_domain_for),
	    cmocka_unit_test(test_parent_names),    cmocka_unit_test(test_evaluate_own),
	    cmocka_unit_test(test_parent_explicit), cmocka_unit_test(test_ip_listed),
	    cmocka_unit_test(test_status_names),    cmocka_unit_test(test_helo_classify),
	    cmocka_unit_test(test_helo_show),
	};
	const struct CMUnitTest live[] = {
	    cmocka_unit_test(test_nsd_authorised_pass),
	    cmocka_unit_test(test_nsd_ip_not_among_targets),
	    cmocka_unit_test(test_nsd_weight_without_bit2),
	    cmocka_unit_test(test_nsd_weight_bit1_unknown),
	    cmocka_unit_test(test_nsd_target_dot),
	    cmocka_unit_test(test_nsd_parent_explicit),
	    cmocka_unit_test(test_nsd_no_record),
	    cmocka_unit_test(test_nsd_priority_not_1_ignored),
	    cmocka_unit_test(test_nsd_servfail_unknown),
	    cmocka_unit_test(test_nsd_ip_literal_reverse),
	    cmocka_unit_test(test_nsd_bad_arguments),
	};
	int rc = cmocka_run_group_tests_name("csa", pure, NULL, NULL);

	return rc + cmocka_run_group_tests_name("csa_nsd", live, nsd_start, nsd_stop);
}
