/*
 * csa.h - Client SMTP Authorization (draft-ietf-marid-csv-csa-02) as Exim's
 * "verify = csa" implements it.
 *
 * The SMTP client's HELO name H publishes "_client._smtp.H SRV 1 W P target":
 *
 *   priority  must be 1 (the CSA version); other records are ignored
 *   weight    2 = authorised: the client IP must be an address of target
 *             0, 1 = not authorised (fail)
 *             3 = authorised, but the addresses cannot be checked (unknown)
 *             > 3 undefined, ignored
 *   target    "." = no valid address (fail)
 *   port      on a parent domain's record, bit 1 set says that every SMTP
 *             client below it is listed explicitly, so an unlisted
 *             subdomain fails
 *
 * Without a record at H the parents are searched top-down from the
 * second-level domain (at most 5 levels, 3 in the reverse trees) for a
 * priority-1 record with port bit 1.  An IP-literal HELO ("[192.0.2.1]",
 * "[IPv6:2001:db8::1]", or a bare address) and an empty HELO are checked
 * through the reverse DNS: the SRV record is looked up under the address's
 * in-addr.arpa / ip6.arpa name, as Exim does (dns_csa_use_reverse).
 *
 * Results, each with a reason sentence and an Exim-style detail code:
 *   pass     ok
 *   fail     fail_explicit, fail_domain, fail_noaddr, fail_mismatch
 *   none     no CSA record applies to the name (Exim's "unknown")
 *   unknown  defer_srv / defer_addr (DNS failure), weight 3 or an undefined
 *            weight: a record exists but cannot decide
 */
#ifndef ANCHOR_CSA_H
#define ANCHOR_CSA_H

#include <stddef.h>

#include "dns/dns.h"
#include "core/err.h"

enum csa_status { CSA_NONE = 0, CSA_PASS, CSA_FAIL, CSA_UNKNOWN };

#define CSA_SEARCH_LIMIT 5         /* parent levels searched (Exim dns_csa_search_limit) */
#define CSA_REVERSE_SEARCH_LIMIT 3 /* in the reverse trees */

struct csa_result {
	enum csa_status status;
	char reason[256];          /* a sentence for people */
	char target[256];          /* the SRV target checked, or "" */
	char code[24];             /* "ok", "fail_explicit", "fail_domain", "fail_noaddr",
	                              "fail_mismatch", "none", "defer_srv", "defer_addr",
	                              "unverifiable", "undefined_weight" */
	char domain[DNS_NAME_MAX]; /* the name checked (HELO or its reverse name) */
	char found[DNS_NAME_MAX];  /* where the deciding record was, or "" */
};

const char *csa_status_name(enum csa_status s);

/*
 * The CSA check of an SMTP client that said HELO helo from address ip.
 * helo NULL or "" checks the address through the reverse DNS.  DNS trouble
 * is not an error: it is the result "unknown".  A HELO that csa_helo_classify
 * finds INVALID is the result "fail" (code fail_helo), looked up nowhere.
 * Returns -1 (ERR_INPUT csa_bad_ip) only for an ip that is not an address;
 * *out then holds status unknown and the same sentence.
 */
int csa_check(struct dns_resolver *res, const char *helo, const char *ip, struct csa_result *out,
              struct err *e);

/* ------------------------------------------------------------------ the HELO itself */

/*
 * What an SMTP client's HELO/EHLO argument is, decided once here for every
 * program that forwards or judges one (anchor-reputation's queries and
 * subjects, anchor-policyd):
 *
 *   NAME     a host name: ASCII LDH labels in A-label form, at least two,
 *            1..63 octets each, 1..253 in all, the last not all digits
 *            (name_check_domain).  canon: lowercase, without the one
 *            trailing dot a client may add ("MX.Example.COM." is
 *            "mx.example.com").
 *   LITERAL  an address literal "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC
 *            5321 §4.1.3, the tag in any case), or a bare address, which
 *            Exim's CSA accepts too.  canon: "[192.0.2.1]" /
 *            "[IPv6:2001:db8::1]" in inet_ntop form; an IPv4-mapped IPv6
 *            address is its IPv4 literal.
 *   INVALID  anything else: empty, one label ("vm", "localhost"), an
 *            empty label, a label or name too long, characters outside
 *            LDH ("_", " ", 8-bit, U-labels, controls, NUL), a malformed
 *            literal ("[300.1.1.1]", "[IPv6:1.2.3.4]", "[x:...]").  It
 *            claims no identity that DNS could confirm: csa_check answers
 *            fail (code fail_helo), not an error.  why says which rule.
 *
 * helo is len octets (it may hold NUL); canon gets at least DNS_NAME_MAX.
 */
enum csa_helo_form { CSA_HELO_NAME = 0, CSA_HELO_LITERAL, CSA_HELO_INVALID };

enum csa_helo_form csa_helo_classify(const char *helo, size_t len, char *canon, size_t size,
                                     struct err *why);

/* helo as one short line of printable ASCII for messages (others become '?'), quoted
 * with its length cut at 64 octets ("..." added). */
void csa_helo_show(const char *helo, size_t len, char *out, size_t size);

/* ------------------------------------------------------------------ pure parts (tested) */

/*
 * The domain CSA looks up for helo: a NAME's canonical form; a LITERAL (or an
 * empty helo: ip) becomes its reverse name, *reverse set.  ERR_INPUT
 * csa_bad_helo for an INVALID helo, csa_bad_ip.
 */
int csa_domain_for(const char *helo, const char *ip, char *out, size_t size, int *reverse,
                   struct err *e);

/* "1.2.0.192.in-addr.arpa" / nibbles ".ip6.arpa" for an address; -1 when not one. */
int csa_reverse_name(const char *ip, char *out, size_t size);

/*
 * The parent domains searched for a subdomain assertion, in query order
 * (top-down from the second-level domain, the name itself excluded, at most
 * CSA_SEARCH_LIMIT; in the reverse trees 8-label/4-nibble steps below
 * in-addr.arpa / ip6.arpa, at most CSA_REVERSE_SEARCH_LIMIT).  Returns the
 * count written to out[0..max).
 */
int csa_parent_names(const char *domain, char out[][DNS_NAME_MAX], int max);

/* How the records at the name itself decide, before any address lookup. */
enum csa_own {
	CSA_OWN_NONE = 0,   /* no priority-1 record with a defined weight */
	CSA_OWN_UNAUTH,     /* weight 0 or 1 */
	CSA_OWN_CHECK,      /* weight 2: check the client IP against *which's target */
	CSA_OWN_NOADDR,     /* weight 2 with target "." */
	CSA_OWN_UNVERIFIED, /* only weight 3 (authorised, unverifiable) */
	CSA_OWN_UNDEFINED,  /* only weights > 3 */
};

/* Records in answer order, as Exim scans them; *which is the deciding record index. */
enum csa_own csa_evaluate_own(const struct dns_srv *srv, size_t n, size_t *which);

/* True when one of the parent's records is priority 1 with port bit 1 set. */
int csa_parent_requires_explicit(const struct dns_srv *srv, size_t n);

/* True when ip (text) equals the address of one of the A/AAAA rrs. */
int csa_ip_listed(const char *ip, const ldns_rr_list *rrs);

#endif
