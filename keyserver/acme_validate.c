/*
 * acme_validate.c - does the host show the key authorisation (RFC 8555 §8.3, §8.4)?
 *
 * Host names are resolved through the acme_resolver setting, never the system's stub
 * configuration behind libcurl's back, so what was validated is what that resolver
 * says.  http-01 fetches plain http://<host>:<acme_http01_port>/.well-known/acme-
 * challenge/<token> at the address found, following no redirect, within
 * acme_validation_timeout and with a small body limit; dns-01 reads the TXT records of
 * _acme-challenge.<host>.
 */
#include <stdlib.h>
#include <string.h>

#include "acme.h"
#include "dns/dns.h"
#include "http/https_client.h"
#include "pki/crypto.h"

#define ACME_DNS_TIMEOUT_MS 3000 /* at most, per query */

static struct dns_resolver *resolver(const struct ks_settings *cfg, struct err *e)
{
	struct err why = {0};
	long long ms = cfg->acme_validation_timeout * 1000;
	struct dns_resolver *r =
	    dns_resolver_new(cfg->acme_resolver, NULL,
	                     ms < ACME_DNS_TIMEOUT_MS ? (int)ms : ACME_DNS_TIMEOUT_MS, &why);

	if (r == NULL)
		err_set(e, ERR_TEMP, "dns", "no DNS resolver for validation: %s", why.msg);
	return r;
}

/* The first address of name (A, else AAAA) as text. */
static int resolve_addr(struct dns_resolver *r, const char *name, char *out, size_t cap,
                        struct err *e)
{
	static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA};
	struct dns_answer a = {0};
	struct err why = {0};

	for (size_t i = 0; i < 2; i++) {
		if (dns_query(r, name, types[i], &a, &why) < 0)
			return err_set(e, ERR_UNPROC, "dns", "%s: %s", name, why.msg);
		if (!a.nxdomain && !a.nodata && ldns_rr_list_rr_count(a.rrs) > 0) {
			char *text = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(a.rrs, 0), 0));
			snprintf(out, cap, "%s", text ? text : "");
			free(text);
			dns_answer_clear(&a);
			return out[0] ? 0 : err_set(e, ERR_INTERNAL, "internal", "out of memory");
		}
		dns_answer_clear(&a);
	}
	return err_set(e, ERR_UNPROC, "dns", "%s has no address", name);
}

static int http01(const struct ks_settings *cfg, struct dns_resolver *r, const char *name,
                  const char *token, const char *key_auth, struct err *e)
{
	char addr[64], path[128];
	struct https_opts o = {.allow_http = 1,
	                       .connect_timeout_ms = (int)(cfg->acme_validation_timeout * 500),
	                       .timeout_ms = (int)(cfg->acme_validation_timeout * 1000),
	                       .user_agent = "anchormail-acme/1",
	                       .any_status = 1};
	struct https_reply rep = {0};
	struct err why = {0};
	size_t n;
	int rc;

	if (resolve_addr(r, name, addr, sizeof(addr), e) < 0)
		return -1;
	o.resolve_ip = addr;
	snprintf(path, sizeof(path), "/.well-known/acme-challenge/%s", token);
	if (https_get_plain(name, (uint16_t)cfg->acme_http01_port, path, &o, &rep, &why) < 0)
		return err_set(e, ERR_UNPROC, "connection", "%s", why.msg); /* names the URL */
	/* RFC 8555 §8.3: the body is the key authorisation; trailing white space is allowed. */
	n = rep.len;
	while (n > 0 && strchr(" \t\r\n", rep.body[n - 1]) != NULL)
		n--;
	rc = rep.status == 200 && n == strlen(key_auth) && memcmp(rep.body, key_auth, n) == 0
	         ? 0
	         : err_set(e, ERR_UNPROC, "incorrectResponse",
	                   "http://%s:%lld%s answered %ld without the key authorization", name,
	                   cfg->acme_http01_port, path, rep.status);
	https_reply_clear(&rep);
	return rc;
}

static int dns01(struct dns_resolver *r, const char *name, const char *key_auth, struct err *e)
{
	char qname[DNS_DOMAIN_MAX + 20];
	uint8_t md[32];
	char *want;
	struct dns_answer a = {0};
	struct err why = {0};
	int found = 0;

	crypto_sha256(key_auth, strlen(key_auth), md);
	if ((want = crypto_b64url_encode(md, sizeof(md))) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	snprintf(qname, sizeof(qname), "_acme-challenge.%s", name);
	if (dns_query(r, qname, LDNS_RR_TYPE_TXT, &a, &why) < 0) {
		free(want);
		return err_set(e, ERR_UNPROC, "dns", "%s TXT: %s", qname, why.msg);
	}
	for (size_t i = 0; !found && a.rrs != NULL && i < ldns_rr_list_rr_count(a.rrs); i++) {
		size_t len = 0;
		char *text = dns_txt_rr_text(ldns_rr_list_rr(a.rrs, i), &len);
		found = text != NULL && len == strlen(want) && memcmp(text, want, len) == 0;
		free(text);
	}
	dns_answer_clear(&a);
	free(want);
	return found ? 0
	             : err_set(e, ERR_UNPROC, "incorrectResponse",
	                       "no TXT record of %s holds the key authorization's digest", qname);
}

int acme_validate(const struct ks_settings *cfg, const char *type, const char *name,
                  const char *token, const char *key_auth, struct err *e)
{
	struct dns_resolver *r = resolver(cfg, e);
	int rc;

	if (r == NULL)
		return -1;
	if (strcmp(type, "http-01") == 0)
		rc = http01(cfg, r, name, token, key_auth, e);
	else if (strcmp(type, "dns-01") == 0)
		rc = dns01(r, name, key_auth, e);
	else
		rc = err_set(e, ERR_INPUT, "malformed", "unknown challenge type");
	dns_resolver_free(r);
	return rc;
}
