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
#include "http/https_client.h"
#include "relay.h"

static int net_discover(void *ctx, const char *domain, struct discover_result **out, struct err *e)
{
	struct discover_ctx *dctx = ctx;

	return discover_domain(dctx, domain, out, e);
}

/* GET path from the server that answered discovery, then the others in order. */
static int net_keyserver_get(void *ctx, const struct discover_result *d, const char *path,
                             char **body, struct err *e)
{
	struct discover_ctx *dctx = ctx;
	const struct discover_config *cfg = discover_config(dctx);
	int first = d->used_target >= 0 ? d->used_target : 0;
	struct https_reply rep;
	char ip[64];

	*body = NULL;
	for (int k = 0; k < d->ntargets; k++) {
		const struct dns_srv *t = &d->targets[(first + k) % d->ntargets];
		struct https_opts o = {.cacert = cfg->cacert,
		                       .connect_timeout_ms = cfg->timeout_ms,
		                       .timeout_ms = cfg->https_timeout_ms};

		err_clear(e);
		discover_target_ip(dctx, t->target, ip, sizeof(ip));
		if (ip[0])
			o.resolve_ip = ip;
		if (https_get(t->target, t->port, path, &o, &rep, e) == 0) {
			*body = rep.body;
			rep.body = NULL;
			https_reply_clear(&rep);
			return 0;
		}
		if (rep.status == 404) {
			https_reply_clear(&rep);
			e->kind = ERR_NOTFOUND; /* the server knows: no such key */
			return -1;
		}
		https_reply_clear(&rep);
	}
	if (d->ntargets == 0)
		return err_set(e, ERR_TEMP, "no_keyserver", "%s lists no key server", d->domain);
	e->kind = ERR_TEMP; /* whatever the last one did, another try may work */
	return -1;
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
