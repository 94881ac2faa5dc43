/*
 * request.c - what every handler does with a request: fail with a JSON error,
 * read members of the JSON body, normalise and check names, load the domain
 * of the URL.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "pki/name.h"
#include "core/log.h"
#include "store.h"

/* During a database outage every request fails the same way: one line and then a
 * count, not a line per request (which would flood the log when it is least read). */
static struct log_repeat db_outage =
    LOG_REPEAT_INIT(LOG_LVL_ERR, "requests refused: the database is unavailable", 60);

void ks_fail(struct ks_req *r, const struct err *e)
{
	if (e->kind == ERR_TEMP && strcmp(e->code, "unavailable") == 0)
		log_repeat(&db_outage, r->http->reqid, "%s: %s", e->code, e->msg);
	else if (e->kind == ERR_INTERNAL || e->kind == ERR_TEMP)
		log_err(r->http->reqid, "%s: %s", e->code, e->msg);
	else
		log_debug(r->http->reqid, "refused: %s: %s", e->code, e->msg);
	http_reply_error(r->resp, e);
}

struct ks_domain *ks_load_domain(struct ks_req *r, const char *name)
{
	char lc[DNS_DOMAIN_MAX];
	struct err e = {0};
	struct ks_domain *d;

	/* One domain, one record: case (RFC 4343), a trailing dot and U-labels against
	 * A-labels do not matter (PROTOCOL.md "Names"). */
	if (name_canon_idn(name, lc, sizeof(lc), &e) < 0) {
		ks_fail(r, &e);
		return NULL;
	}
	d = ks_store_domain(r->db, lc, &e);
	if (d == NULL)
		ks_fail(r, &e);
	return d;
}

char *ks_lower_dup(const char *s)
{
	char *d = strdup(s);

	for (char *p = d; p != NULL && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

const char *ks_address_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

char *ks_address_canon(const char *raw, struct err *e)
{
	char buf[256]; /* 254 octets (RFC 5321 §4.5.3.1.3) and the NUL */

	if (name_canon_address(raw, buf, sizeof(buf), e) < 0)
		return NULL;
	return strdup(buf);
}

char *ks_address_arg(struct ks_req *r, const char *raw, struct ks_domain **d)
{
	struct err e = {0};
	char *addr = ks_address_canon(raw, &e);

	*d = NULL;
	if (addr == NULL) {
		if (e.kind == ERR_NONE)
			err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		ks_fail(r, &e);
		return NULL;
	}
	if ((*d = ks_load_domain(r, ks_address_domain(addr))) == NULL) {
		free(addr);
		return NULL;
	}
	return addr;
}
