/*
 * verify_net.c - the verifier's real network (struct relay_verify_net):
 * discovery, GET from a domain's key servers (the one that answered
 * discovery first, then the others), and DKIM key TXT records over the
 * discovery resolver, refused when DNSSEC says bogus.
 */
#include <stdlib.h>
#include <string.h>

#include "dns/discover.h"
#include "dns/dns.h"
#include "relay.h"

static int net_discover(void *ctx, const char *domain, struct discover_result **out, struct err *e)
{
	struct discover_ctx *dctx = ctx;

	return discover_domain(dctx, domain, out, e);
}

/* GET path from the domain's key servers (discover_keyserver_get). */
static int net_keyserver_get(void *ctx, const struct discover_result *d, const char *path,
                             char **body, struct err *e)
{
	return discover_keyserver_get(ctx, d, path, body, e);
}

static int net_dns_txt(void *ctx, const char *name, char **text, struct err *e)
{
	struct discover_ctx *dctx = ctx;
	struct dns_answer a;
	size_t n, len;
	char *t;

	*text = NULL;
	if (dns_query(discover_resolver(dctx), name, LDNS_RR_TYPE_TXT, &a, e) < 0)
		return -1;
	if (a.sec == DNS_SEC_BOGUS) {
		err_set(e, ERR_UNPROC, "dnssec_bogus", "the answer for %s does not validate: %s",
		        name, a.sec_why);
		dns_answer_clear(&a);
		return -1;
	}
	n = a.rrs != NULL ? ldns_rr_list_rr_count(a.rrs) : 0;
	/* Several records: the first that says it is a DKIM key, else the first. */
	for (size_t k = 0; k < n && *text == NULL; k++) {
		t = dns_txt_rr_text(ldns_rr_list_rr(a.rrs, k), &len);
		if (t != NULL && strncmp(t, "v=DKIM1", 7) == 0)
			*text = t;
		else
			free(t);
	}
	if (n > 0 && *text == NULL)
		*text = dns_txt_rr_text(ldns_rr_list_rr(a.rrs, 0), &len);
	dns_answer_clear(&a);
	if (*text == NULL)
		return err_set(e, ERR_NOTFOUND, "dkim_no_key", "no TXT record at %s", name);
	return 0;
}

void relay_verify_net_real(struct relay_verify_net *net, struct discover_ctx *dctx)
{
	*net = (struct relay_verify_net){net_discover, net_keyserver_get, net_dns_txt, dctx};
}
