/*
 * check.c - `anchor-dns check <domain>`: every finding on one line with its
 * fix; --json for machines; exit 1 when any finding is an error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/cert.h"
#include "pki/name.h"
#include "dnstools.h"

enum sev { SEV_OK = 0, SEV_INFO, SEV_WARN, SEV_ERROR };
static const char *const sev_name[] = {"ok", "info", "warn", "error"};

struct findings {
	json_t *list;
	int errors;
	int human;
};

static void finding(struct findings *f, enum sev sev, const char *code, const char *fix,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void finding(struct findings *f, enum sev sev, const char *code, const char *fix,
                    const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sev == SEV_ERROR)
		f->errors++;
	if (f->human)
		printf("%-5s %s: %s%s%s\n",
		       sev == SEV_OK     ? "OK"
		       : sev == SEV_INFO ? "INFO"
		       : sev == SEV_WARN ? "WARN"
		                         : "ERROR",
		       code, msg, fix ? " -- fix: " : "", fix ? fix : "");
	json_array_append_new(f->list, json_pack("{s:s,s:s,s:s,s:s?}", "severity", sev_name[sev],
	                                         "code", code, "message", msg, "fix", fix));
}

/* The fix for each discovery error code. */
static const char *fix_for(const char *code)
{
	static const struct {
		const char *code, *fix;
	} fixes[] = {
	    {"txt_version", "start the _anchor TXT record with v=ANCHOR1"},
	    {"txt_no_pin", "add pin=sha256:<base64> (anchorctl pin root.pem prints it)"},
	    {"txt_bad_pin", "copy the pin exactly as `anchorctl pin root.pem` prints it"},
	    {"pin_algorithm", "use pin=sha256:<base64 of SHA-256 of the root's SPKI>"},
	    {"txt_duplicate_tag", "keep one of each tag; only pin= may repeat"},
	    {"txt_bad_mode", "set mode=enforce or mode=testing"},
	    {"txt_syntax", "publish the TXT line that `anchor-dns records` prints"},
	    {"txt_multiple", "keep exactly one v=ANCHOR1 TXT record at _anchor.<domain>"},
	    {"txt_missing", "publish the _anchor TXT record from `anchor-dns records`"},
	    {"srv_missing", "publish the _anchor._tcp SRV record(s) from `anchor-dns records`"},
	    {"srv_no_service", "point _anchor._tcp SRV at the key server, or remove the records"},
	    {"srv_bad_target", "remove the SRV record with target \".\""},
	    {"dnssec_bogus", "re-sign the zone (expired or altered signatures) and check the DS"},
	    {"dns_timeout", "check that the resolver and the zone's servers answer"},
	    {"dns_servfail", "check the zone loads on its primary and that DNSSEC is intact"},
	    {"dns_refused", "use a resolver that serves or recurses for this zone"},
	    {"dns_cname_loop", "remove the CNAME loop"},
	    {"pin_mismatch", "publish the served root's pin in _anchor TXT (or serve the right "
	                     "root)"},
	    {"issuer_invalid", "re-register the domain with an issuer signed by its root"},
	    {"fetch_failed", "start the key server or fix the SRV target/port"},
	    {"domain_mismatch", "the SRV target serves another domain: fix the SRV record"},
	};
	size_t i;

	for (i = 0; i < sizeof(fixes) / sizeof(fixes[0]); i++)
		if (strcmp(fixes[i].code, code) == 0)
			return fixes[i].fix;
	return "see anchor-dns(1)";
}

static void check_dnssec(struct findings *f, const struct discover_result *r)
{
	switch (r->dnssec) {
	case DNS_SEC_SECURE:
		finding(f, SEV_OK, "dnssec", NULL, "secure: %s", r->dnssec_why);
		break;
	case DNS_SEC_INSECURE:
		finding(f, SEV_WARN, "dnssec_insecure",
		        "sign the zone and publish its DS, so that the pin itself can be trusted",
		        "insecure: %s", r->dnssec_why);
		break;
	case DNS_SEC_BOGUS:
		break; /* reported as the discovery error */
	default:
		finding(f, SEV_INFO, "dnssec_unvalidated", "give --trust-anchor to validate",
		        "DNSSEC not checked: no trust anchor configured");
	}
}

/* Each SRV target: resolves, answers TLS, serves objects that verify. */
static void check_targets(const struct dt_opts *o, struct findings *f, struct discover_ctx *ctx,
                          const struct discover_result *r)
{
	char path[300], ip[64], pin[CRYPTO_PIN_MAX];
	int i;

	snprintf(path, sizeof(path), "/v1/domains/%s", r->domain);
	for (i = 0; i < r->ntargets; i++) {
		const struct dns_srv *t = &r->targets[i];
		X509 *root = NULL, *issuer = NULL;
		struct err e = {0};
		json_t *obj;

		dt_resolve_host(discover_resolver(ctx), t->target, ip, sizeof(ip));
		obj = dt_get_json(o, NULL, t->target, t->port, ip, path, NULL, NULL, &e);
		if (obj == NULL) {
			finding(f, SEV_ERROR, "target_unreachable",
			        "start the key server there, or fix the SRV target, port and TLS "
			        "certificate",
			        "%s:%u%s%s: %s", t->target, t->port, ip[0] ? " at " : "", ip,
			        e.msg);
			continue;
		}
		if (discover_verify_object(r->domain, obj, (const char(*)[CRYPTO_PIN_MAX])r->pins,
		                           r->npins, &root, &issuer, pin, &e) < 0)
			finding(f, SEV_ERROR, e.code, fix_for(e.code), "%s:%u: %s", t->target,
			        t->port, e.msg);
		else
			finding(f, SEV_OK, "target", NULL,
			        "%s:%u answers TLS and serves a root pinned in DNS, issuer chained",
			        t->target, t->port);
		X509_free(root);
		X509_free(issuer);
		json_decref(obj);
	}
}

static void check_pins(struct findings *f, const struct discover_result *r)
{
	json_t *served = json_object_get(r->object, "pins"), *p;
	const char *smode = json_string_value(json_object_get(r->object, "mode"));
	size_t k;
	int i;

	for (i = 0; i < r->npins; i++) {
		if (strcmp(r->pins[i], r->root_pin) == 0)
			finding(f, SEV_OK, "pin", NULL, "%s matches the served root", r->pins[i]);
		else
			finding(
			    f, SEV_WARN, "pin_unused",
			    "fine during a root rollover; remove it from the TXT record once the "
			    "rollover is over",
			    "%s matches no served root", r->pins[i]);
	}
	json_array_foreach(served, k, p)
	{
		for (i = 0; i < r->npins; i++)
			if (json_is_string(p) && strcmp(json_string_value(p), r->pins[i]) == 0)
				break;
		if (i == r->npins)
			finding(f, SEV_WARN, "pin_not_published",
			        "add it to the TXT record (anchor-dns records)",
			        "the key server lists pin %s that DNS does not publish",
			        json_string_value(p) ? json_string_value(p) : "?");
	}
	if (smode != NULL && strcmp(smode, dns_mode_name(r->mode)) != 0)
		finding(f, SEV_WARN, "mode_mismatch",
		        "publish the records anchor-dns records prints",
		        "DNS says mode=%s but the key server's policy says %s",
		        dns_mode_name(r->mode), smode);
	if (r->mode == DNS_MODE_TESTING)
		finding(f, SEV_INFO, "mode_testing", "set mode=enforce when ready",
		        "mode=testing: receivers verify and report but never reject");
}

/* Does some TXT at name, concatenated, equal want? */
static int txt_has(struct dns_resolver *res, const char *name, const char *want, char *got,
                   size_t gsize, struct err *e)
{
	struct dns_answer a;
	size_t i;
	int found = 0;

	got[0] = '\0';
	if (dns_query(res, name, LDNS_RR_TYPE_TXT, &a, e) < 0)
		return -1;
	for (i = 0; i < ldns_rr_list_rr_count(a.rrs) && !found; i++) {
		char *t = dns_txt_rr_text(ldns_rr_list_rr(a.rrs, i), NULL);

		if (t != NULL) {
			found = strcmp(t, want) == 0;
			snprintf(got, gsize, "%s", t);
		}
		free(t);
	}
	dns_answer_clear(&a);
	return found;
}

static void check_csa(struct findings *f, struct dns_resolver *res, const char *host)
{
	char owner[DNS_NAME_MAX + 32];
	struct dns_answer a;
	struct err e = {0};
	size_t i;
	int ok = 0;

	snprintf(owner, sizeof(owner), "_client._smtp.%s", host);
	if (dns_query(res, owner, LDNS_RR_TYPE_SRV, &a, &e) < 0) {
		finding(f, SEV_ERROR, e.code, fix_for(e.code), "%s: %s", owner, e.msg);
		return;
	}
	for (i = 0; i < ldns_rr_list_rr_count(a.rrs); i++) {
		struct dns_srv s;

		if (dns_srv_from_rr(ldns_rr_list_rr(a.rrs, i), &s, &e) == 0 && s.priority == 1 &&
		    s.weight == 2 && strcmp(s.target, host) == 0)
			ok = 1;
	}
	dns_answer_clear(&a);
	if (ok)
		finding(f, SEV_OK, "csa", NULL, "%s SRV 1 2 0 %s. authorises the MTA", owner, host);
	else
		finding(f, SEV_ERROR, "csa_missing", "publish the CSA SRV from anchor-dns records",
		        "%s has an mta certificate but %s SRV 1 2 0 %s. is not published", host,
		        owner, host);
}

static void check_dkim(struct findings *f, struct dns_resolver *res, const char *domain,
                       const char *name, X509 *cert)
{
	char sel[64], owner[DNS_NAME_MAX + 80], got[1024];
	struct err e = {0};
	char *want;
	int rc;

	if (dns_dkim_selector(name, domain, sel, sizeof(sel)) < 0)
		return;
	want = dns_records_dkim_text(X509_get0_pubkey(cert), &e);
	if (want == NULL) {
		finding(f, SEV_INFO, "dkim_unsupported", NULL, "%s: %s", name, e.msg);
		return;
	}
	snprintf(owner, sizeof(owner), "%s._domainkey.%s", sel, domain);
	rc = txt_has(res, owner, want, got, sizeof(got), &e);
	free(want);
	if (rc < 0)
		finding(f, SEV_ERROR, e.code, fix_for(e.code), "%s: %s", owner, e.msg);
	else if (rc == 1)
		finding(f, SEV_OK, "dkim", NULL, "%s TXT matches the signing key of %s", owner,
		        name);
	else if (got[0] == '\0')
		finding(f, SEV_ERROR, "dkim_missing",
		        "publish the DKIM TXT from anchor-dns records",
		        "%s TXT is missing for the signing key of %s", owner, name);
	else
		finding(f, SEV_ERROR, "dkim_mismatch",
		        "publish the DKIM TXT from anchor-dns records",
		        "%s TXT does not hold the signing key of %s", owner, name);
}

/* CSA, DKIM and id= against the current server certificates (admin token needed). */
static void check_servers(const struct dt_opts *o, struct findings *f, struct discover_ctx *ctx,
                          const struct discover_result *r)
{
	const struct dns_srv *t = &r->targets[r->used_target];
	char path[300], ip[64], id[DNS_ID_MAX];
	struct err e = {0};
	json_t *doc, *c;
	size_t i;

	if (o->token == NULL) {
		finding(f, SEV_INFO, "servers_skipped", "give the admin token with --token-file",
		        "CSA, DKIM and id= not checked: listing server certificates needs the "
		        "domain's admin token");
		return;
	}
	snprintf(path, sizeof(path), "/v1/domains/%s/servers", r->domain);
	if (o->server != NULL) {
		doc = dt_get_json(o, o->server, NULL, 0, NULL, path, o->token, NULL, &e);
	} else {
		dt_resolve_host(discover_resolver(ctx), t->target, ip, sizeof(ip));
		doc = dt_get_json(o, NULL, t->target, t->port, ip, path, o->token, NULL, &e);
	}
	if (doc == NULL) {
		finding(f, SEV_ERROR, "servers_unavailable", "check the admin token",
		        "cannot list the server certificates: %s", e.msg);
		return;
	}
	json_array_foreach(json_object_get(doc, "servers"), i, c)
	{
		const char *purpose = json_string_value(json_object_get(c, "purpose"));
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *status = json_string_value(json_object_get(c, "status"));
		const char *pem = json_string_value(json_object_get(c, "certificate"));
		X509 *cert;

		if (purpose == NULL || name == NULL || pem == NULL ||
		    (status && strcmp(status, "current") != 0))
			continue;
		if (strcmp(purpose, "mta") == 0) {
			check_csa(f, discover_resolver(ctx), name);
		} else if (strcmp(purpose, "signing") == 0) {
			cert = cert_from_pem(pem, strlen(pem), &e);
			if (cert != NULL)
				check_dkim(f, discover_resolver(ctx), r->domain, name, cert);
			X509_free(cert);
		}
	}
	dt_records_id(r->object, doc, id);
	if (r->id[0] == '\0')
		finding(f, SEV_INFO, "id_absent", "publish the TXT record from anchor-dns records",
		        "the TXT record has no id=; caches cannot tell when to refetch");
	else if (strcmp(r->id, id) != 0)
		finding(f, SEV_WARN, "id_stale", "publish the TXT record from anchor-dns records",
		        "id=%s but the published objects now give id=%s", r->id, id);
	else
		finding(f, SEV_OK, "id", NULL, "id=%s matches the published objects", id);
	json_decref(doc);
}

/* "the resolver ADDR" as configured, for messages: a finding names whom it asked. */
static void resolver_name(const struct dt_opts *o, char *out, size_t size)
{
	const char *env = getenv("ANCHOR_RESOLVER");

	if (o->resolver != NULL && *o->resolver != '\0')
		snprintf(out, size, "the resolver %s", o->resolver);
	else if (env != NULL && *env != '\0')
		snprintf(out, size, "the resolver %s (ANCHOR_RESOLVER)", env);
	else
		snprintf(out, size, "the system resolver (/etc/resolv.conf)");
}

/*
 * No _anchor records were found.  That is a legacy domain only if the resolver
 * sees the domain at all: an NXDOMAIN for the domain itself means the resolver
 * cannot see the zone (not delegated, a private zone, the wrong resolver), and a
 * failed query means it could not answer; neither says anything about the records.
 */
static void check_legacy(const struct dt_opts *o, struct findings *f, struct discover_ctx *ctx,
                         const char *domain, const struct discover_result *r)
{
	struct dns_answer soa;
	struct err e = {0};
	char who[300];

	resolver_name(o, who, sizeof(who));
	if (dns_query(discover_resolver(ctx), domain, LDNS_RR_TYPE_SOA, &soa, &e) < 0) {
		finding(f, SEV_ERROR, e.code, fix_for(e.code),
		        "%s could not answer for %s (%s): whether it publishes _anchor records is "
		        "unknown",
		        who, domain, e.msg);
		return;
	}
	if (soa.nxdomain)
		finding(f, SEV_ERROR, "domain_not_found",
		        "check that the zone is delegated to its name servers, or give --resolver "
		        "the address of a server that has it",
		        "%s does not exist for %s (NXDOMAIN): the resolver cannot see the zone, so "
		        "nothing can be said about its _anchor records",
		        domain, who);
	else
		finding(f, SEV_ERROR, "legacy",
		        "publish the records that `anchor-dns records` prints for the domain",
		        "%s has no _anchor records: a legacy domain (%d MX), as %s sees it", domain,
		        r->nmx, who);
	dns_answer_clear(&soa);
}

int dt_cmd_check(const struct dt_opts *o, const char *domain)
{
	struct findings f = {.list = json_array(), .human = !o->json};
	struct discover_result *r = NULL;
	struct discover_ctx *ctx;
	struct err e = {0};

	if (name_check_domain(domain, &e) < 0) {
		dt_error(&e);
		json_decref(f.list);
		return 2;
	}
	ctx = dt_discover_ctx(o, 1, &e);
	if (ctx == NULL) {
		dt_error(&e);
		json_decref(f.list);
		return 1;
	}
	discover_domain(ctx, domain, &r, &e);
	if (r->status == DISCOVER_LEGACY) {
		check_legacy(o, &f, ctx, domain, r);
	} else if (r->status == DISCOVER_ERROR) {
		finding(&f, SEV_ERROR, r->err.code, fix_for(r->err.code), "%s", r->err.msg);
	} else {
		finding(
		    &f, SEV_OK, "records", NULL,
		    "_anchor TXT (v=ANCHOR1, %d pin(s), mode=%s) and %d _anchor._tcp SRV target(s)",
		    r->npins, dns_mode_name(r->mode), r->ntargets);
	}
	if (r->status != DISCOVER_ERROR || strcmp(r->err.code, "dnssec_bogus") != 0)
		check_dnssec(&f, r);
	if (r->npins > 0 && r->ntargets > 0)
		check_targets(o, &f, ctx, r);
	if (r->status == DISCOVER_ANCHORED) {
		check_pins(&f, r);
		check_servers(o, &f, ctx, r);
	}
	if (o->json) {
		json_t *doc =
		    json_pack("{s:s,s:s,s:s,s:b,s:O}", "domain", domain, "status",
		              discover_status_name(r->status), "dnssec", dns_sec_name(r->dnssec),
		              "ok", f.errors == 0, "findings", f.list);

		dt_print_json(doc);
	} else {
		printf("%s: %d error(s)\n", domain, f.errors);
	}
	json_decref(f.list);
	discover_result_free(r);
	discover_free(ctx);
	return f.errors ? 1 : 0;
}
