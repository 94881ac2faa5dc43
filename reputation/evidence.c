/*
 * evidence.c - evidence the service verifies itself: a report about a domain, signer or
 * address subject counts only with the offending message's signed header fields (the
 * payload's "message"), whose DKIM signature this service verifies for that subject.
 * A ring of reporters cannot frame a domain that never signed the mail, and a message's
 * signature counts once for a subject however many reporters quote it (the store keeps
 * its hash, rep_store_signature_claim).  Keys are those the relay trusts: an anchored
 * domain's from its key server (chained to the domain's pinned root), a legacy domain's
 * from its DKIM TXT record (refused when DNSSEC says bogus).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509v3.h>

#include "dns/dns.h"
#include "mail/dkim.h"
#include "pki/cert.h"
#include "pki/name.h"
#include "handlers.h"

#define REP_MESSAGE_MAX 65536 /* the quoted header section */
#define REP_MESSAGE_SIGS 8    /* DKIM-Signature fields verified: each may cost lookups */

/* DKIM-Signature fields in the header section text. */
static int signature_fields(const char *text, size_t len)
{
	int n = 0;

	for (size_t i = 0; i + 15 <= len; i++)
		if ((i == 0 || text[i - 1] == '\n') &&
		    strncasecmp(text + i, "dkim-signature", 14) == 0)
			n++;
	return n;
}

/* The legacy key: the TXT record at selector._domainkey.domain. */
static int txt_key(struct rep *rep, const char *selector, const char *domain, char **record,
                   struct err *e)
{
	char name[DKIM_SELECTOR_MAX + DKIM_DOMAIN_MAX + 16];
	struct dns_answer a;
	size_t n, len;

	snprintf(name, sizeof(name), "%s._domainkey.%s", selector, domain);
	if (dns_query(discover_resolver(rep->disc), name, LDNS_RR_TYPE_TXT, &a, e) < 0)
		return -1;
	if (a.sec == DNS_SEC_BOGUS) {
		dns_answer_clear(&a);
		return err_set(e, ERR_UNPROC, "dnssec_bogus", "the answer for %s does not validate",
		               name);
	}
	n = a.rrs != NULL ? ldns_rr_list_rr_count(a.rrs) : 0;
	for (size_t k = 0; k < n && *record == NULL; k++) {
		char *t = dns_txt_rr_text(ldns_rr_list_rr(a.rrs, k), &len);

		if (t != NULL && strncmp(t, "v=DKIM1", 7) == 0)
			*record = t;
		else
			free(t);
	}
	dns_answer_clear(&a);
	if (*record == NULL)
		return err_set(e, ERR_NOTFOUND, "dkim_no_key", "no DKIM key at %s", name);
	return 0;
}

/* The anchored key: the signing certificate the domain's key server gives for the
 * selector, which must chain to the root discovery pinned and name the selector's host. */
static int anchored_key(struct rep *rep, const struct discover_result *d, const char *selector,
                        char **record, struct err *e)
{
	char path[DNS_NAME_MAX + 96], host[DNS_NAME_MAX + 70], *body = NULL;
	json_t *obj = NULL;
	X509 *leaf = NULL;
	const char *pem;

	if (strchr(selector, '/') != NULL || strchr(selector, '.') != NULL)
		return err_set(e, ERR_NOTFOUND, "dkim_no_key", "no key for selector %s", selector);
	snprintf(path, sizeof(path), "/v1/domains/%s/dkim/%s", d->domain, selector);
	if (discover_keyserver_get(rep->disc, d, path, &body, e) < 0)
		return -1;
	obj = json_loads(body, 0, NULL);
	free(body);
	pem = json_string_value(json_object_get(obj, "certificate"));
	if (strcmp(selector, "anchor") == 0)
		snprintf(host, sizeof(host), "%s", d->domain);
	else
		snprintf(host, sizeof(host), "%s.%s", selector, d->domain);
	if (pem == NULL || (leaf = cert_from_pem(pem, strlen(pem), e)) == NULL || d->root == NULL ||
	    d->issuer == NULL || cert_verify_chain(leaf, d->issuer, d->root, e) < 0 ||
	    X509_check_host(leaf, host, 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) != 1) {
		err_set(e, ERR_UNPROC, "key_untrusted",
		        "the key server of %s gave no key of %s that chains to its root", d->domain,
		        host);
	} else {
		*record = dkim_key_record(X509_get0_pubkey(leaf), e);
	}
	X509_free(leaf);
	json_decref(obj);
	return *record != NULL ? 0 : -1;
}

static int lookup_key(const char *selector, const char *domain, void *ctx, char **record,
                      struct err *e)
{
	struct rep *rep = ctx;
	struct discover_result *d = NULL;
	int rc;

	*record = NULL;
	if (discover_domain(rep->disc, domain, &d, e) < 0) {
		discover_result_free(d);
		return -1;
	}
	rc = d->status == DISCOVER_LEGACY ? txt_key(rep, selector, domain, record, e)
	                                  : anchored_key(rep, d, selector, record, e);
	discover_result_free(d);
	return rc;
}

/* Does a signature by d (a pass) speak for the subject?  signer: d itself; domain and
 * address: the name (or the address's domain) is d or below it (relaxed alignment). */
static int speaks_for(const struct rep_subject *s, const char *d)
{
	const char *name = s->value, *at;

	switch (s->kind) {
	case REP_SIGNER:
		return strcasecmp(name, d) == 0;
	case REP_ADDRESS:
		if ((at = strrchr(name, '@')) == NULL)
			return 0;
		name = at + 1;
		/* fall through */
	case REP_DOMAIN:
		return name_in_domain(name, d);
	default:
		return 0;
	}
}

int rep_evidence_needed(const struct rep_subject *s)
{
	return s->kind == REP_DOMAIN || s->kind == REP_SIGNER || s->kind == REP_ADDRESS;
}

int rep_evidence_verify(struct rep *rep, const char *payload, size_t len, struct rep_report *rr,
                        struct err *e)
{
	json_t *obj = json_loadb(payload, len, 0, NULL), *m = json_object_get(obj, "message");
	struct dkim_result *res = NULL;
	struct err ignore = {0};
	size_t n = 0, mlen;
	int rc = -1;

	if (m == NULL || json_is_null(m)) {
		rc = 0; /* no message: the domain, signer and address subjects carry no weight */
		goto out;
	}
	if (!json_is_string(m) || (mlen = json_string_length(m)) == 0 || mlen > REP_MESSAGE_MAX) {
		err_set(e, ERR_INPUT, "bad_message",
		        "\"message\" must be the offending message's header section (at most %d "
		        "bytes)",
		        REP_MESSAGE_MAX);
		goto out;
	}
	if (signature_fields(json_string_value(m), mlen) > REP_MESSAGE_SIGS) {
		err_set(e, ERR_INPUT, "bad_message",
		        "\"message\" holds more than %d DKIM-Signature fields", REP_MESSAGE_SIGS);
		goto out;
	}
	if (dkim_verify_headers(json_string_value(m), mlen, lookup_key, rep, &res, &n, &ignore) <
	    0) {
		err_set(e, ERR_INPUT, "bad_message", "\"message\" is not a header section: %s",
		        ignore.msg);
		goto out;
	}
	for (size_t k = 0; k < n; k++)
		for (int i = 0; i < rr->nsubjects; i++)
			if (res[k].status == DKIM_PASS && rr->sig_id[i][0] == '\0' &&
			    rep_evidence_needed(&rr->subjects[i]) &&
			    speaks_for(&rr->subjects[i], res[k].d))
				snprintf(rr->sig_id[i], sizeof(rr->sig_id[i]), "%s", res[k].sig_id);
	rc = 0;
out:
	free(res);
	json_decref(obj);
	return rc;
}
