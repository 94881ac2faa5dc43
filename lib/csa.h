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

#include "dns.h"
#include "err.h"

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
 * is not an error: it is the result "unknown".  Returns -1 (ERR_INPUT
 * csa_bad_ip / csa_bad_helo) only for an argument that is not an address or
 * a host name; *out then holds status unknown and the same sentence.
 */
int csa_check(struct dns_resolver *res, const char *helo, const char *ip, struct csa_result *out,
              struct err *e);

/* ------------------------------------------------------------------ pure parts (tested) */

/*
 * The domain CSA looks up for helo: lowercase, no trailing dot; an address
 * literal or bare address (or an empty helo: ip) becomes its reverse name.
 * *reverse is set when it did.  ERR_INPUT csa_bad_helo / csa_bad_ip.
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
