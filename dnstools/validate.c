/*
 * validate.c - anchor-dns validate: one query through the discovery resolver and
 * what DNSSEC validation from the trust anchor says of it (secure, insecure,
 * bogus, unvalidated) and why, as discovery itself would see it.
 */
#include "dnstools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *answer_json(const struct dns_answer *a)
{
	json_t *doc = json_object(), *rrs = json_array();
	char *type = ldns_rr_type2str(a->type);
	size_t i;

	for (i = 0; i < ldns_rr_list_rr_count(a->rrs); i++) {
		char *s = ldns_rr2str(ldns_rr_list_rr(a->rrs, i));

		if (s != NULL) {
			s[strcspn(s, "\n")] = '\0';
			json_array_append_new(rrs, json_string(s));
		}
		free(s);
	}
	json_object_set_new(doc, "name", json_string(a->qname));
	json_object_set_new(doc, "type", json_string(type ? type : "?"));
	json_object_set_new(doc, "final_name", json_string(a->final_name));
	json_object_set_new(doc, "nxdomain", json_boolean(a->nxdomain));
	json_object_set_new(doc, "nodata", json_boolean(a->nodata));
	json_object_set_new(doc, "dnssec", json_string(dns_sec_name(a->sec)));
	json_object_set_new(doc, "why", json_string(a->sec_why));
	json_object_set_new(doc, "records", rrs);
	free(type);
	return doc;
}

static void print_human(json_t *doc)
{
	size_t i;
	json_t *rr;

	printf("%s %s: %s%s\n", json_string_value(json_object_get(doc, "name")),
	       json_string_value(json_object_get(doc, "type")),
	       json_string_value(json_object_get(doc, "dnssec")),
	       json_is_true(json_object_get(doc, "nxdomain")) ? ", NXDOMAIN"
	       : json_is_true(json_object_get(doc, "nodata")) ? ", NODATA"
	                                                      : "");
	printf("why: %s\n", json_string_value(json_object_get(doc, "why")));
	json_array_foreach(json_object_get(doc, "records"), i, rr)
	{
		printf("%s\n", json_string_value(rr));
	}
}

int dt_cmd_validate(const struct dt_opts *o, const char *name)
{
	ldns_rr_type type = ldns_get_rr_type_by_name(o->qtype ? o->qtype : "TXT");
	struct discover_ctx *ctx;
	struct dns_answer a;
	struct err e = {0};
	json_t *doc;
	int rc;

	if (type == 0) {
		err_set(&e, ERR_INPUT, "bad_type", "\"%s\" is not a DNS record type", o->qtype);
		dt_error(&e);
		return 2;
	}
	ctx = dt_discover_ctx(o, 1, &e);
	if (ctx == NULL || dns_query(discover_resolver(ctx), name, type, &a, &e) < 0) {
		dt_error(&e);
		discover_free(ctx);
		return 1;
	}
	rc = a.sec == DNS_SEC_BOGUS ? 1 : 0;
	doc = answer_json(&a);
	dns_answer_clear(&a);
	discover_free(ctx);
	if (o->json) {
		dt_print_json(doc);
	} else {
		print_human(doc);
		json_decref(doc);
	}
	return rc;
}
