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
	size_t i;

	/* Domain names compare without regard to case (RFC 4343). */
	for (i = 0; i < sizeof(lc) - 1 && name[i] != '\0'; i++)
		lc[i] = (char)tolower((unsigned char)name[i]);
	lc[i] = '\0';
	if (name[i] != '\0' || name_check_domain(lc, &e) < 0) {
		if (e.kind == ERR_NONE)
			err_set(&e, ERR_INPUT, "bad_name", "the domain name is too long");
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

char *ks_address_arg(struct ks_req *r, const char *raw, struct ks_domain **d)
{
	char *addr = ks_lower_dup(raw);
	struct err e = {0};

	*d = NULL;
	if (addr == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		ks_fail(r, &e);
		return NULL;
	}
	if (name_check_address(addr, &e) < 0) {
		ks_fail(r, &e);
		free(addr);
		return NULL;
	}
	if ((*d = ks_load_domain(r, ks_address_domain(addr))) == NULL) {
		free(addr);
		return NULL;
	}
	return addr;
}
