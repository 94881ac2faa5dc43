/* util.c - helpers shared by the anchor-dns commands. */
#include "dnstools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/crypto.h"

void dt_error(const struct err *e)
{
	fprintf(stderr, "anchor-dns: %s: %s\n", e->code[0] ? e->code : "error", e->msg);
}

struct discover_ctx *dt_discover_ctx(const struct dt_opts *o, int no_cache, struct err *e)
{
	struct discover_config c = {.resolver = o->resolver,
	                            .trust_anchor_file = o->trust_anchor,
	                            .cacert = o->cacert,
	                            .timeout_ms = o->timeout_ms,
	                            .no_cache = no_cache};

	discover_config_from_env(&c);
	return discover_new(&c, e);
}

json_t *dt_get_json(const struct dt_opts *o, const char *base_url, const char *host, uint16_t port,
                    const char *ip, const char *path, const char *token, char **peer_cert_pem,
                    struct err *e)
{
	struct https_opts ho = {.cacert = o->cacert ? o->cacert : getenv("ANCHOR_CACERT"),
	                        .token = token,
	                        .resolve_ip = ip && ip[0] ? ip : NULL,
	                        .connect_timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 3000,
	                        .timeout_ms = 15000,
	                        .want_peer_cert = peer_cert_pem != NULL};
	struct https_reply rep;
	json_error_t je;
	json_t *doc;
	int rc;

	if (ho.cacert != NULL && ho.cacert[0] == '\0')
		ho.cacert = NULL;
	rc = base_url ? https_get_url(base_url, path, &ho, &rep, e)
	              : https_get(host, port, path, &ho, &rep, e);
	if (rc < 0)
		return NULL;
	doc = json_loadb(rep.body, rep.len, JSON_REJECT_DUPLICATES, &je);
	if (doc == NULL)
		err_set(e, ERR_UNPROC, "object_invalid", "%s did not answer JSON: %s", path,
		        je.text);
	if (peer_cert_pem != NULL) {
		*peer_cert_pem = rep.peer_cert_pem;
		rep.peer_cert_pem = NULL;
	}
	https_reply_clear(&rep);
	return doc;
}

void dt_resolve_host(struct dns_resolver *res, const char *host, char *ip, size_t size)
{
	static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA};
	size_t t;

	ip[0] = '\0';
	for (t = 0; t < 2 && ip[0] == '\0'; t++) {
		struct dns_answer a;
		struct err e;

		if (dns_query(res, host, types[t], &a, &e) < 0)
			return;
		if (a.sec != DNS_SEC_BOGUS && ldns_rr_list_rr_count(a.rrs) > 0) {
			char *s = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(a.rrs, 0), 0));

			if (s != NULL)
				snprintf(ip, size, "%s", s);
			free(s);
		}
		dns_answer_clear(&a);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void dt_records_id(json_t *domain_obj, json_t *servers, char out[DNS_ID_MAX])
{
	static const char *fields[] = {"root", "issuer", "policy", "mode"};
	json_t *list = json_object_get(servers, "servers");
	const char *fprs[256] = {0};
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t digest[32];
	size_t i, n = 0;
	char *b64;

	/* Everything `records` publishes from: change any of it and the id changes. */
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *v = json_string_value(json_object_get(domain_obj, fields[i]));

		EVP_DigestUpdate(md, v ? v : "", v ? strlen(v) : 0);
		EVP_DigestUpdate(md, "\n", 1);
	}
	for (i = 0; i < json_array_size(list) && n < 256; i++) {
		const char *f =
		    json_string_value(json_object_get(json_array_get(list, i), "fingerprint"));

		if (f != NULL)
			fprs[n++] = f;
	}
	qsort(fprs, n, sizeof(fprs[0]), cmp_str);
	for (i = 0; i < n; i++) {
		EVP_DigestUpdate(md, fprs[i], strlen(fprs[i]));
		EVP_DigestUpdate(md, "\n", 1);
	}
	EVP_DigestFinal_ex(md, digest, NULL);
	EVP_MD_CTX_free(md);
	b64 = crypto_b64url_encode(digest, 12);
	snprintf(out, DNS_ID_MAX, "%s", b64 ? b64 : "");
	free(b64);
}

int dt_print_json(json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s != NULL)
		printf("%s\n", s);
	free(s);
	json_decref(doc);
	return 0;
}
