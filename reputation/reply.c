/*
 * reply.c - the one place a handler's error becomes an HTTP answer and a log line:
 * refusals (the client's fault) at info, failures of this service at error, and a
 * Retry-After on temporary ones.  Every handler answers its errors through rep_fail.
 */
#include <string.h>

#include "core/log.h"
#include "dns/certauth.h"
#include "handlers.h"

/* During a database outage every request fails the same way: one line and then a
 * count, not a line per request (which would flood the log when it is least read). */
static struct log_repeat db_outage =
    LOG_REPEAT_INIT(LOG_LVL_ERR, "requests refused: the database is unavailable", 60);

void rep_fail(struct rep_req *r, const struct err *e)
{
	if (e->kind == ERR_TEMP && strcmp(e->code, "unavailable") == 0)
		log_repeat(&db_outage, r->http->reqid, "%s: %s", e->code, e->msg);
	else if (e->kind == ERR_INTERNAL || e->kind == ERR_TEMP)
		log_err(r->http->reqid, "%s: %s", e->code, e->msg);
	else
		log_info(r->http->reqid, "refused: %s: %s", e->code, e->msg);
	http_reply_error(r->resp, e);
	if (e->kind == ERR_TEMP) /* e.g. the signer's key server is away: refused, for now */
		http_add_header(r->resp, "Retry-After", "%d", CERTAUTH_RETRY_AFTER);
}
