/*
 * acme_problem.c - ACME's answers and the URLs in them: RFC 7807 problem documents for refusals
 * (RFC 8555 §6.7), JSON with a Location for the resources.  A handler's err carries the ACME error
 * type as its code ("badNonce", "rejectedIdentifier", ...); an error from a shared layer (the
 * database, the signer) has a code of its own and is given the ACME type its kind means, with its
 * code kept in the detail.
 */
#include <string.h>

#include "acme.h"
#include "core/log.h"

#define ACME_ERR_NS "urn:ietf:params:acme:error:"

static const char *const acme_types[] = {"accountDoesNotExist",
                                         "alreadyRevoked",
                                         "badCSR",
                                         "badNonce",
                                         "badPublicKey",
                                         "badRevocationReason",
                                         "badSignatureAlgorithm",
                                         "caa",
                                         "compound",
                                         "connection",
                                         "dns",
                                         "externalAccountRequired",
                                         "incorrectResponse",
                                         "invalidContact",
                                         "malformed",
                                         "orderNotReady",
                                         "rateLimited",
                                         "rejectedIdentifier",
                                         "serverInternal",
                                         "tls",
                                         "unauthorized",
                                         "unsupportedContact",
                                         "unsupportedIdentifier",
                                         "userActionRequired",
                                         NULL};

static int is_acme_type(const char *code)
{
	for (int i = 0; acme_types[i] != NULL; i++)
		if (strcmp(code, acme_types[i]) == 0)
			return 1;
	return 0;
}

/* The ACME type of an error from a layer that does not speak ACME. */
static const char *type_of_kind(enum err_kind kind)
{
	switch (kind) {
	case ERR_AUTH:
	case ERR_FORBIDDEN:
		return "unauthorized";
	case ERR_RATE:
		return "rateLimited";
	case ERR_TEMP:
	case ERR_INTERNAL:
		return "serverInternal";
	default:
		return "malformed";
	}
}

void acme_problem(struct acme_req *q, const struct err *e)
{
	struct http_response *resp = q->r->resp;
	int status = err_http_status(e->kind);
	int acme = is_acme_type(e->code);
	char type[96], detail[ERR_MSG_MAX + ERR_CODE_MAX + 4];
	json_t *doc;
	char *text;

	if (e->kind == ERR_INTERNAL || e->kind == ERR_TEMP)
		log_err(q->r->http->reqid, "acme: %s: %s", e->code, e->msg);
	else
		log_debug(q->r->http->reqid, "acme: refused: %s: %s", e->code, e->msg);
	snprintf(type, sizeof(type), ACME_ERR_NS "%s", acme ? e->code : type_of_kind(e->kind));
	if (status == 500)
		snprintf(detail, sizeof(detail),
		         "internal error; the X-Request-Id identifies it in the server log");
	else if (acme)
		snprintf(detail, sizeof(detail), "%s", e->msg);
	else
		snprintf(detail, sizeof(detail), "%s: %s", e->code, e->msg);
	doc = json_pack("{s:s, s:s, s:i}", "type", type, "detail", detail, "status", status);
	if (doc == NULL) /* a detail that echoes bytes that are not UTF-8 */
		doc = json_pack("{s:s, s:s, s:i}", "type", type, "detail", "(not UTF-8)", "status",
		                status);
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	http_reply_text(resp, status, "application/problem+json", text, text ? strlen(text) : 0);
	if (e->kind == ERR_RATE || e->kind == ERR_TEMP)
		http_add_header(resp, "Retry-After", "%d",
		                q->retry_after > 0    ? q->retry_after
		                : e->kind == ERR_RATE ? 3600
		                                      : 5);
}

void acme_url(const struct acme_req *q, char out[ACME_URL_MAX], const char *a, const char *b,
              const char *c)
{
	int n = snprintf(out, ACME_URL_MAX, "%s/%s%s%s%s%s", q->base, a, b ? "/" : "", b ? b : "",
	                 c ? "/" : "", c ? c : "");

	if (n < 0 || n >= ACME_URL_MAX) /* cannot happen: a host and a domain are shorter */
		out[0] = '\0';
}

void acme_reply(struct acme_req *q, int status, json_t *body, const char *loc)
{
	http_reply_json(q->r->resp, status, body);
	if (loc != NULL)
		http_add_header(q->r->resp, "Location", "%s", loc);
}
