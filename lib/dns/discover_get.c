/*
 * discover_get.c - a GET from a discovered domain's key servers: the one that
 * answered discovery first, then the others in order, each reached where
 * discovery looked it up.  What a relying party (certauth, the relay's
 * verifier) does to fetch a certificate or a key by its id.
 */
#include "dns/discover.h"

#include <string.h>

#include "dns/dns.h"
#include "http/https_client.h"

int discover_keyserver_get(struct discover_ctx *dctx, const struct discover_result *d,
                           const char *path, char **body, struct err *e)
{
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
		memset(&rep, 0, sizeof(rep));
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
