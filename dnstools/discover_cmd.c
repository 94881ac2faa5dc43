/* discover_cmd.c - `anchor-dns discover <domain|address>`: each step and its verdict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/cert.h"
#include "dnstools.h"

/* For an address: fetch its certificates from the key server that answered and verify them. */
static void check_address(const struct dt_opts *o, struct discover_ctx *ctx,
                          struct discover_result *r, json_t *out_json)
{
	const struct dns_srv *t = &r->targets[r->used_target];
	char path[400], ip[64], fpr[CERT_FPR_LEN];
	json_t *doc, *c, *verdicts = json_array();
	struct err e = {0};
	size_t i;

	dt_resolve_host(discover_resolver(ctx), t->target, ip, sizeof(ip));
	snprintf(path, sizeof(path), "/v1/addresses/%s", r->address);
	doc = dt_get_json(o, NULL, t->target, t->port, ip, path, NULL, NULL, &e);
	if (doc == NULL) {
		if (!o->json)
			printf("address: %s: %s: %s\n", r->address, e.code, e.msg);
		json_object_set_new(out_json, "address_error",
		                    json_pack("{s:s,s:s}", "code", e.code, "message", e.msg));
		json_decref(verdicts);
		return;
	}
	json_array_foreach(json_object_get(doc, "certificates"), i, c)
	{
		const char *pem = json_string_value(json_object_get(c, "certificate"));
		X509 *leaf = pem ? cert_from_pem(pem, strlen(pem), &e) : NULL;
		int ok = leaf && cert_verify_chain(leaf, r->issuer, r->root, &e) == 0;

		fpr[0] = '\0';
		if (leaf)
			cert_fingerprint(leaf, fpr, &e);
		if (!o->json)
			printf("address: %s certificate %s: %s\n", r->address, fpr,
			       ok ? "chains to the pinned root" : e.msg);
		json_array_append_new(verdicts,
		                      json_pack("{s:s,s:b}", "fingerprint", fpr, "verified", ok));
		X509_free(leaf);
	}
	json_object_set_new(out_json, "address_certificates", verdicts);
	json_decref(doc);
}

static void print_human(const struct discover_result *r)
{
	int i;

	for (i = 0; i < r->ntrace; i++)
		printf("  %s\n", r->trace[i]);
	printf("domain:   %s\n", r->domain);
	printf("status:   %s\n", discover_status_name(r->status));
	printf("dnssec:   %s (%s)\n", dns_sec_name(r->dnssec), r->dnssec_why);
	if (r->status == DISCOVER_ANCHORED) {
		printf("mode:     %s%s\n", dns_mode_name(r->mode),
		       r->mode == DNS_MODE_TESTING ? " (verify and report, never reject)" : "");
		for (i = 0; i < r->npins; i++)
			printf("pin:      %s%s\n", r->pins[i],
			       strcmp(r->pins[i], r->root_pin) == 0 ? " (served root)" : "");
		for (i = 0; i < r->ntargets; i++)
			printf("server:   %s:%u%s\n", r->targets[i].target, r->targets[i].port,
			       i == r->used_target ? " (answered)" : "");
	}
	if (r->status == DISCOVER_LEGACY)
		for (i = 0; i < r->nmx; i++)
			printf("mx:       %u %s\n", r->mx[i].preference, r->mx[i].host);
	if (r->status == DISCOVER_ERROR)
		printf("error:    %s: %s\n", r->err.code, r->err.msg);
	printf("cost:     %.1f ms, %u DNS queries, %u HTTPS requests%s\n", r->elapsed_ms,
	       r->dns_queries, r->https_requests, r->from_cache ? " (from cache)" : "");
}

int dt_cmd_discover(const struct dt_opts *o, const char *target)
{
	struct discover_ctx *ctx;
	json_t *runs = json_array();
	struct err e = {0};
	int i, rc = 0;

	ctx = dt_discover_ctx(o, 0, &e);
	if (ctx == NULL) {
		dt_error(&e);
		json_decref(runs);
		return 1;
	}
	for (i = 0; i < o->count; i++) {
		struct discover_result *r = NULL;
		json_t *j;

		rc = discover_domain(ctx, target, &r, &e) < 0 ? 1 : 0;
		j = discover_result_json(r);
		if (!o->json && o->count > 1)
			printf("run %d:\n", i + 1);
		if (!o->json)
			print_human(r);
		if (r->status == DISCOVER_ANCHORED && r->address[0] && r->used_target >= 0)
			check_address(o, ctx, r, j);
		json_array_append_new(runs, j);
		discover_result_free(r);
	}
	if (o->json) {
		if (o->count == 1) {
			json_t *one = json_incref(json_array_get(runs, 0));

			json_decref(runs);
			runs = one;
		}
		dt_print_json(runs);
	} else {
		json_decref(runs);
	}
	discover_free(ctx);
	return rc;
}
