/*
 * csa.c - the CSA check (draft-ietf-marid-csv-csa-02) with Exim's semantics:
 * the SRV record at _client._smtp.<helo>, else a subdomain assertion on a
 * parent, then the client address among the target's addresses.  See csa.h.
 */
#include "mail/csa.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pki/name.h"

const char *csa_status_name(enum csa_status s)
{
	switch (s) {
	case CSA_PASS:
		return "pass";
	case CSA_FAIL:
		return "fail";
	case CSA_UNKNOWN:
		return "unknown";
	default:
		return "none";
	}
}

/* ------------------------------------------------------------------ names */

int csa_reverse_name(const char *ip, char *out, size_t size)
{
	unsigned char a[16];
	static const char hex[] = "0123456789abcdef";
	size_t pos = 0;
	int i;

	if (inet_pton(AF_INET, ip, a) == 1) {
		int n = snprintf(out, size, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);

		return n > 0 && (size_t)n < size ? 0 : -1;
	}
	if (inet_pton(AF_INET6, ip, a) != 1 || size < 64 + sizeof("ip6.arpa"))
		return -1;
	for (i = 15; i >= 0; i--) {
		out[pos++] = hex[a[i] & 0xf];
		out[pos++] = '.';
		out[pos++] = hex[a[i] >> 4];
		out[pos++] = '.';
	}
	memcpy(out + pos, "ip6.arpa", sizeof("ip6.arpa"));
	return 0;
}

static int is_address(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

void csa_helo_show(const char *helo, size_t len, char *out, size_t size)
{
	size_t i, n = len > 64 ? 64 : len, o = 0;

	if (size < 8) {
		if (size > 0)
			out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (i = 0; i < n && o + 5 < size; i++) {
		unsigned char c = helo != NULL ? (unsigned char)helo[i] : 0;

		/* '"' and '\\' too: the text ends up inside JSON and log lines */
		out[o++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
	}
	if (i < len && o + 5 <= size) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* The address inside "[...]" (len octets with the brackets), as its canonical literal. */
static int literal_canon(const char *helo, size_t len, char *out, size_t size, struct err *why)
{
	char inner[64], text[INET6_ADDRSTRLEN];
	unsigned char a[16];
	int v6 = 0;

	if (len < 3 || helo[len - 1] != ']' || len - 2 >= sizeof(inner))
		return err_set(why, ERR_INPUT, "csa_bad_helo",
		               "it begins with '[' but is not an address literal");
	memcpy(inner, helo + 1, len - 2);
	inner[len - 2] = '\0';
	if (strncasecmp(inner, "IPv6:", 5) == 0) {
		v6 = 1;
		if (inet_pton(AF_INET6, inner + 5, a) != 1)
			return err_set(why, ERR_INPUT, "csa_bad_helo",
			               "it is not an IPv6 address literal");
	} else if (inet_pton(AF_INET, inner, a) != 1) {
		return err_set(why, ERR_INPUT, "csa_bad_helo",
		               "it is not an IPv4 address literal (IPv6 ones are [IPv6:...])");
	}
	if (v6 && IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a)) {
		memmove(a, a + 12, 4);
		v6 = 0;
	}
	if (inet_ntop(v6 ? AF_INET6 : AF_INET, a, text, sizeof(text)) == NULL ||
	    (size_t)snprintf(out, size, v6 ? "[IPv6:%s]" : "[%s]", text) >= size)
		return err_set(why, ERR_INPUT, "csa_bad_helo", "no room for the address literal");
	return 0;
}

enum csa_helo_form csa_helo_classify(const char *helo, size_t len, char *canon, size_t size,
                                     struct err *why)
{
	char bare[64];
	struct err ne = {0};

	canon[0] = '\0';
	if (helo == NULL || len == 0) {
		err_set(why, ERR_INPUT, "csa_bad_helo", "it is empty");
		return CSA_HELO_INVALID;
	}
	if (memchr(helo, '\0', len) != NULL) {
		err_set(why, ERR_INPUT, "csa_bad_helo", "it holds a NUL octet");
		return CSA_HELO_INVALID;
	}
	if (helo[0] == '[')
		return literal_canon(helo, len, canon, size, why) == 0 ? CSA_HELO_LITERAL
		                                                       : CSA_HELO_INVALID;
	if (len < sizeof(bare)) {
		memcpy(bare, helo, len);
		bare[len] = '\0';
		if (is_address(bare)) {
			char lit[80];

			snprintf(lit, sizeof(lit), strchr(bare, ':') ? "[IPv6:%s]" : "[%s]", bare);
			return literal_canon(lit, strlen(lit), canon, size, why) == 0
			           ? CSA_HELO_LITERAL
			           : CSA_HELO_INVALID;
		}
	}
	/* name_canon_domain reads a C string: no NUL above, and a name longer than a host
	 * name can be is refused before any copy. */
	if (len > 254 || (len == 254 && helo[253] != '.')) {
		err_set(why, ERR_INPUT, "csa_bad_helo",
		        "it is %zu octets long; a host name has at most 253", len);
		return CSA_HELO_INVALID;
	}
	{
		char name[256];

		memcpy(name, helo, len);
		name[len] = '\0';
		if (name_canon_domain(name, canon, size, &ne) < 0) {
			err_set(why, ERR_INPUT, "csa_bad_helo", "%s", ne.msg);
			return CSA_HELO_INVALID;
		}
	}
	return CSA_HELO_NAME;
}

int csa_domain_for(const char *helo, const char *ip, char *out, size_t size, int *reverse,
                   struct err *e)
{
	char canon[DNS_NAME_MAX], shown[80];
	const char *addr = ip;
	struct err why = {0};

	*reverse = 0;
	if (ip == NULL || !is_address(ip))
		return err_set(e, ERR_INPUT, "csa_bad_ip", "\"%.64s\" is not an IP address",
		               ip ? ip : "");
	if (helo != NULL && helo[0] != '\0') {
		switch (csa_helo_classify(helo, strlen(helo), canon, sizeof(canon), &why)) {
		case CSA_HELO_NAME:
			if ((size_t)snprintf(out, size, "%s", canon) >= size)
				return err_set(e, ERR_INPUT, "csa_bad_helo",
				               "no room for the name");
			return 0;
		case CSA_HELO_LITERAL:
			/* "[IPv6:2001:db8::1]" -> "2001:db8::1" */
			canon[strlen(canon) - 1] = '\0';
			addr = strchr(canon, ':') != NULL ? strchr(canon, ':') + 1 : canon + 1;
			break;
		default:
			csa_helo_show(helo, strlen(helo), shown, sizeof(shown));
			return err_set(e, ERR_INPUT, "csa_bad_helo",
			               "HELO %s is not a host name or an address literal (%s)",
			               shown, why.msg);
		}
	}
	if (csa_reverse_name(addr, out, size) < 0)
		return err_set(e, ERR_INPUT, "csa_bad_helo", "cannot form the reverse name of %s",
		               addr);
	*reverse = 1;
	return 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls > lx && strcasecmp(s + ls - lx, suffix) == 0 && s[ls - lx - 1] == '.';
}

int csa_parent_names(const char *domain, char out[][DNS_NAME_MAX], int max)
{
	const char *suffix;
	int limit = CSA_SEARCH_LIMIT, n = 0, ipv6 = 0;

	/* suffix points at the '.' before the "top-level domain" never searched. */
	if (ends_with(domain, "in-addr.arpa")) {
		suffix = domain + strlen(domain) - strlen(".in-addr.arpa");
		limit = CSA_REVERSE_SEARCH_LIMIT;
	} else if (ends_with(domain, "ip6.arpa")) {
		suffix = domain + strlen(domain) - strlen(".ip6.arpa");
		limit = CSA_REVERSE_SEARCH_LIMIT;
		ipv6 = 1;
	} else {
		suffix = strrchr(domain, '.');
		if (suffix == NULL)
			return 0;
	}
	while (n < limit && n < max) {
		if (ipv6) {
			/* 16 bits of address at a time: 4 nibbles and their dots. */
			if (suffix - 8 <= domain)
				break;
			suffix -= 8;
		} else {
			do {
				if (--suffix <= domain)
					return n;
			} while (*suffix != '.');
		}
		snprintf(out[n++], DNS_NAME_MAX, "%s", suffix + 1);
	}
	return n;
}

/* ------------------------------------------------------------------ records */

enum csa_own csa_evaluate_own(const struct dns_srv *srv, size_t n, size_t *which)
{
	enum csa_own seen = CSA_OWN_NONE;
	size_t i;

	for (i = 0; i < n; i++) {
		if (srv[i].priority != 1)
			continue; /* not CSA version 1 */
		*which = i;
		if (srv[i].weight < 2)
			return CSA_OWN_UNAUTH;
		if (srv[i].weight == 3) {
			seen = CSA_OWN_UNVERIFIED;
			continue;
		}
		if (srv[i].weight > 3) {
			if (seen == CSA_OWN_NONE)
				seen = CSA_OWN_UNDEFINED;
			continue;
		}
		return strcmp(srv[i].target, ".") == 0 ? CSA_OWN_NOADDR : CSA_OWN_CHECK;
	}
	return seen;
}

int csa_parent_requires_explicit(const struct dns_srv *srv, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (srv[i].priority == 1 && (srv[i].port & 1))
			return 1;
	return 0;
}

int csa_ip_listed(const char *ip, const ldns_rr_list *rrs)
{
	unsigned char want[16], have[16];
	int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
	size_t i, len = fam == AF_INET6 ? 16 : 4;

	if (inet_pton(fam, ip, want) != 1)
		return 0;
	for (i = 0; rrs != NULL && i < ldns_rr_list_rr_count(rrs); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		const ldns_rdf *rd;

		if (ldns_rr_get_type(rr) !=
		        (fam == AF_INET6 ? LDNS_RR_TYPE_AAAA : LDNS_RR_TYPE_A) ||
		    ldns_rr_rd_count(rr) != 1)
			continue;
		rd = ldns_rr_rdf(rr, 0);
		if (ldns_rdf_size(rd) != len)
			continue;
		memcpy(have, ldns_rdf_data(rd), len);
		if (memcmp(have, want, len) == 0)
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ the check */

static void result(struct csa_result *out, enum csa_status s, const char *code, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static void result(struct csa_result *out, enum csa_status s, const char *code, const char *fmt,
                   ...)
{
	va_list ap;

	out->status = s;
	snprintf(out->code, sizeof(out->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

/* The SRV records of _client._smtp.<name>: 1 found (in *srv, *n), 0 none, -1 DNS failure. */
static int lookup_srv(struct dns_resolver *res, const char *name, struct dns_srv *srv, size_t max,
                      size_t *n, struct err *e)
{
	char qname[DNS_NAME_MAX + 16];
	struct dns_answer a;
	size_t i;

	*n = 0;
	if ((size_t)snprintf(qname, sizeof(qname), "_client._smtp.%s", name) >= DNS_NAME_MAX)
		return 0; /* too long to exist */
	if (dns_query(res, qname, LDNS_RR_TYPE_SRV, &a, e) < 0)
		return -1;
	for (i = 0; i < ldns_rr_list_rr_count(a.rrs) && *n < max; i++) {
		struct err ign;

		if (dns_srv_from_rr(ldns_rr_list_rr(a.rrs, i), &srv[*n], &ign) == 0)
			(*n)++;
	}
	dns_answer_clear(&a);
	return *n > 0;
}

#define CSA_SRV_MAX 16

/* No record at the name: a parent's subdomain assertion decides, or nothing does. */
static void check_parents(struct dns_resolver *res, struct csa_result *out)
{
	char parents[CSA_SEARCH_LIMIT][DNS_NAME_MAX];
	struct dns_srv srv[CSA_SRV_MAX];
	int np = csa_parent_names(out->domain, parents, CSA_SEARCH_LIMIT), i;
	size_t n;

	for (i = 0; i < np; i++) {
		struct err e;
		int rc = lookup_srv(res, parents[i], srv, CSA_SRV_MAX, &n, &e);

		if (rc < 0) {
			result(out, CSA_UNKNOWN, "defer_srv",
			       "the CSA lookup for the parent domain %s failed: %s", parents[i],
			       e.msg);
			return;
		}
		if (rc > 0 && csa_parent_requires_explicit(srv, n)) {
			snprintf(out->found, sizeof(out->found), "%s", parents[i]);
			result(out, CSA_FAIL, "fail_explicit",
			       "%s has no CSA record of its own, and %s says that every authorised "
			       "SMTP client below it is listed explicitly",
			       out->domain, parents[i]);
			return;
		}
	}
	result(out, CSA_NONE, "none",
	       "no CSA record (_client._smtp SRV, priority 1) applies to %s or its parent domains",
	       out->domain);
}

static void check_address(struct dns_resolver *res, const char *ip, struct csa_result *out)
{
	ldns_rr_type type = strchr(ip, ':') ? LDNS_RR_TYPE_AAAA : LDNS_RR_TYPE_A;
	struct dns_answer a;
	struct err e;

	if (dns_query(res, out->target, type, &a, &e) < 0) {
		result(out, CSA_UNKNOWN, "defer_addr",
		       "%s is authorised for %s, but its addresses could not be looked up: %s",
		       out->target, out->domain, e.msg);
		return;
	}
	if (ldns_rr_list_rr_count(a.rrs) == 0)
		result(out, CSA_FAIL, "fail_noaddr",
		       "the authorised host %s for %s has no %s record, so no client address "
		       "can be authorised",
		       out->target, out->domain, type == LDNS_RR_TYPE_A ? "A" : "AAAA");
	else if (csa_ip_listed(ip, a.rrs))
		result(out, CSA_PASS, "ok", "%s is an address of %s, which %s authorises", ip,
		       out->target, out->domain);
	else
		result(out, CSA_FAIL, "fail_mismatch",
		       "%s is not an address of %s, the host %s authorises", ip, out->target,
		       out->domain);
	dns_answer_clear(&a);
}

int csa_check(struct dns_resolver *res, const char *helo, const char *ip, struct csa_result *out,
              struct err *e)
{
	struct dns_srv srv[CSA_SRV_MAX];
	size_t n = 0, which = 0;
	int reverse, rc;
	struct err qe;
	unsigned char mapped[16];
	char addr4[INET_ADDRSTRLEN];

	memset(out, 0, sizeof(*out));
	if (ip == NULL)
		ip = ""; /* refused below as csa_bad_ip */
	if (inet_pton(AF_INET6, ip, mapped) == 1 &&
	    IN6_IS_ADDR_V4MAPPED((struct in6_addr *)mapped) &&
	    inet_ntop(AF_INET, mapped + 12, addr4, sizeof(addr4)) != NULL)
		ip = addr4; /* ::ffff:192.0.2.1 is an IPv4 client: its A records decide */
	if (csa_domain_for(helo, ip, out->domain, sizeof(out->domain), &reverse, &qe) < 0) {
		if (strcmp(qe.code, "csa_bad_helo") == 0) {
			/* The client's own text: a finding about it, never a reason to judge
			 * nothing.  No DNS name is formed from it, so nothing is looked up. */
			out->domain[0] = '\0';
			result(out, CSA_FAIL, "fail_helo", "%s, so no CSA record can authorise it",
			       qe.msg);
			return 0;
		}
		*e = qe;
		result(out, CSA_UNKNOWN, e->code, "%s", e->msg);
		return -1;
	}
	rc = lookup_srv(res, out->domain, srv, CSA_SRV_MAX, &n, &qe);
	if (rc < 0) {
		result(out, CSA_UNKNOWN, "defer_srv", "the CSA lookup for %s failed: %s",
		       out->domain, qe.msg);
		return 0;
	}
	if (rc == 0) {
		check_parents(res, out);
		return 0;
	}
	snprintf(out->found, sizeof(out->found), "%s", out->domain);
	switch (csa_evaluate_own(srv, n, &which)) {
	case CSA_OWN_NONE:
		result(out, CSA_NONE, "none",
		       "%s has _client._smtp SRV records but none of CSA version 1 (priority 1)",
		       out->domain);
		break;
	case CSA_OWN_UNAUTH:
		result(out, CSA_FAIL, "fail_domain",
		       "%s is not authorised to send mail: its CSA record has weight %u",
		       out->domain, srv[which].weight);
		break;
	case CSA_OWN_NOADDR:
		result(out, CSA_FAIL, "fail_noaddr",
		       "the CSA record of %s names no host (target \".\"), so no client address "
		       "is authorised",
		       out->domain);
		break;
	case CSA_OWN_UNVERIFIED:
		snprintf(out->target, sizeof(out->target), "%s", srv[which].target);
		result(out, CSA_UNKNOWN, "unverifiable",
		       "%s is authorised (weight 3), but its record says the address cannot be "
		       "checked",
		       out->domain);
		break;
	case CSA_OWN_UNDEFINED:
		result(out, CSA_UNKNOWN, "undefined_weight",
		       "the CSA record of %s has weight %u, which CSA does not define", out->domain,
		       srv[which].weight);
		break;
	case CSA_OWN_CHECK:
		snprintf(out->target, sizeof(out->target), "%s", srv[which].target);
		check_address(res, ip, out);
		break;
	}
	(void)reverse;
	return 0;
}
