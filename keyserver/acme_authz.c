/*
 * acme_authz.c - authorisations and challenges (RFC 8555 §7.5): each order has one
 * authorisation, offering http-01 and dns-01 with one token.  A POST to a challenge
 * validates it at once, inside the request (the client has put its answer up before it
 * asks), and the authorisation and order follow: valid makes the order ready, a failed
 * validation makes both invalid (a new order starts over, as RFC 8555 §7.5.1 has it).
 */
#include <string.h>

#include "acme.h"
#include "core/log.h"
#include "store.h"

static const char *const chall_types[] = {"http-01", "dns-01"};

/* The challenge object of type: the one answered carries the outcome. */
static json_t *challenge_json(const struct acme_req *q, const struct acme_order *o,
                              const char *type)
{
	char url[ACME_URL_MAX];
	int answered = strcmp(o->chall_type, type) == 0;
	const char *status = answered ? o->authz_status : "pending";
	json_t *c;

	acme_url(q, url, "chall", o->id, type);
	c = json_pack("{s:s, s:s, s:s, s:s}", "type", type, "url", url, "token", o->token, "status",
	              status);
	if (c != NULL && answered && o->validated[0] != '\0')
		json_object_set_new(c, "validated", json_string(o->validated));
	if (c != NULL && answered && o->error[0] != '\0')
		json_object_set_new(c, "error",
		                    json_pack("{s:s, s:s}", "type",
		                              "urn:ietf:params:acme:error:incorrectResponse",
		                              "detail", o->error));
	return c;
}

static json_t *authz_json(const struct acme_req *q, const struct acme_order *o)
{
	json_t *list = json_array();
	const char *status =
	    o->expired && strcmp(o->authz_status, "valid") != 0 ? "expired" : o->authz_status;

	for (size_t i = 0; i < sizeof(chall_types) / sizeof(chall_types[0]); i++)
		/* Once one challenge decided, only that one is shown (as RFC 8555 §7.1.4's
		 * example does), so the client sees which proof counted. */
		if (o->chall_type[0] == '\0' || strcmp(o->chall_type, chall_types[i]) == 0)
			json_array_append_new(list, challenge_json(q, o, chall_types[i]));
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "status", status, "expires", o->expires,
	                 "identifier", "type", "dns", "value", o->name, "challenges", list);
}

void acme_authz_get(struct acme_req *q, const char *id)
{
	struct acme_order o;
	struct err e = {0};

	if (acme_order_load(q, id, &o, &e) < 0) {
		acme_problem(q, &e);
		return;
	}
	acme_reply(q, 200, authz_json(q, &o), NULL);
}

/* Validate type for the order and record the outcome (unless someone else did first). */
static int challenge_run(struct acme_req *q, struct acme_order *o, const char *type, struct err *e)
{
	char key_auth[ACME_TOKEN_LEN + JWK_THUMBPRINT_LEN + 1];
	struct err why = {0};
	int ok;

	snprintf(key_auth, sizeof(key_auth), "%s.%s", o->token, q->acct.thumbprint);
	ok = acme_validate(&q->r->ks->cfg, type, o->name, o->token, key_auth, &why) == 0;
	if (!ok)
		log_info(q->r->http->reqid, "acme: %s of %s failed: %s: %s", type, o->name,
		         why.code, why.msg);
	else
		log_info(q->r->http->reqid, "acme: %s of %s valid (order %s)", type, o->name,
		         o->id);
	if (ks_store_acme_order_validated(q->r->db, o->id, ok, type, ok ? NULL : why.msg, e) < 0)
		return -1;
	return ks_store_acme_order_get(q->r->db, q->d->id, o->id, 0, o, e) == 1
	           ? 0
	           : err_set(e, ERR_INTERNAL, "internal", "the order went away");
}

void acme_challenge_post(struct acme_req *q, const char *id, const char *type)
{
	struct acme_order o;
	char up[ACME_URL_MAX];
	struct err e = {0};
	int known = strcmp(type, "http-01") == 0 || strcmp(type, "dns-01") == 0;

	if (acme_order_load(q, id, &o, &e) < 0)
		goto fail;
	if (!known) {
		err_set(&e, ERR_NOTFOUND, "malformed", "challenges: http-01, dns-01");
		goto fail;
	}
	/* POST-as-GET reads; a payload ({}) asks for validation, once, while pending. */
	if (q->jws.payload != NULL && strcmp(o.authz_status, "pending") == 0) {
		if (o.expired) {
			err_set(&e, ERR_FORBIDDEN, "malformed", "the authorization has expired");
			goto fail;
		}
		if (challenge_run(q, &o, type, &e) < 0)
			goto fail;
	}
	acme_url(q, up, "authz", o.id, NULL);
	acme_reply(q, 200, challenge_json(q, &o, type), NULL);
	http_add_header(q->r->resp, "Link", "<%s>;rel=\"up\"", up);
	return;
fail:
	acme_problem(q, &e);
}
