/*
 * acme_authz.c - authorisations and challenges (RFC 8555 §7.5): each order has one
 * authorisation, offering http-01 and dns-01 with one token.  A POST to a challenge marks it
 * 'processing' and answers at once (RFC 8555 §7.5.1): the validation threads
 * (acme_validator.c) fetch the client's answer, so a host that never answers holds none of
 * the request workers.  The client polls; the authorisation and order follow the outcome:
 * valid makes the order ready, a failed validation makes both invalid (a new order starts
 * over).  How many validations may wait is bounded per account and in all, checked here
 * under the account's row lock, so one account cannot fill the queue.
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
	const char *etype = o->error_type[0] != '\0' ? o->error_type : "incorrectResponse";
	char etype_urn[64];
	json_t *c;

	snprintf(etype_urn, sizeof(etype_urn), "urn:ietf:params:acme:error:%s", etype);
	acme_url(q, url, "chall", o->id, type);
	c = json_pack("{s:s, s:s, s:s, s:s}", "type", type, "url", url, "token", o->token, "status",
	              status);
	if (c != NULL && answered && o->validated[0] != '\0')
		json_object_set_new(c, "validated", json_string(o->validated));
	if (c != NULL && answered && o->error[0] != '\0')
		json_object_set_new(c, "error",
		                    json_pack("{s:s, s:s}", "type", etype_urn, "detail", o->error));
	return c;
}

static json_t *authz_json(const struct acme_req *q, const struct acme_order *o)
{
	json_t *list = json_array();
	/* While its challenge is processing, the authorisation itself is still pending. */
	const char *status = o->expired && strcmp(o->authz_status, "valid") != 0 ? "expired"
	                     : strcmp(o->authz_status, "processing") == 0        ? "pending"
	                                                                         : o->authz_status;

	for (size_t i = 0; i < sizeof(chall_types) / sizeof(chall_types[0]); i++)
		/* Once one challenge decided, only that one is shown (as RFC 8555 §7.1.4's
		 * example does), so the client sees which proof counted. */
		if (o->chall_type[0] == '\0' || strcmp(o->chall_type, chall_types[i]) == 0)
			json_array_append_new(list, challenge_json(q, o, chall_types[i]));
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "status", status, "expires", o->expires,
	                 "identifier", "type", "dns", "value", o->name, "challenges", list);
}

/* RFC 8555 §8.2: while a validation runs, tell the client when to look again. */
static void poll_hint(struct acme_req *q, const struct acme_order *o)
{
	if (strcmp(o->authz_status, "processing") == 0)
		http_add_header(q->r->resp, "Retry-After", "%d", 1);
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
	poll_hint(q, &o);
}

/* Queue the validation of type for the order (unless someone else did first), within the
 * caps: the account's row lock makes its count exact; the total is a bound across nodes. */
static int challenge_start(struct acme_req *q, struct acme_order *o, const char *type,
                           struct err *e)
{
	const struct ks_settings *cfg = &q->r->ks->cfg;
	struct db *db = q->r->db;
	long long mine = 0, all = 0;

	if (db_begin(db, e) < 0)
		return -1;
	if (ks_store_acme_account_lock(db, q->acct.id, e) < 0 ||
	    ks_store_acme_processing_count(db, q->acct.id, &mine, e) < 0 ||
	    ks_store_acme_processing_count(db, NULL, &all, e) < 0)
		goto fail;
	q->retry_after = 5; /* a validation ends within acme_validation_timeout */
	if (mine >= cfg->acme_validations_per_account) {
		err_set(e, ERR_RATE, "rateLimited",
		        "this account has %lld challenges being validated already; wait for them",
		        mine);
		goto fail;
	}
	if (all >= cfg->acme_validation_queue) {
		err_set(e, ERR_RATE, "rateLimited", "too many challenges are being validated");
		goto fail;
	}
	if (ks_store_acme_validation_start(db, o->id, type, e) < 0 || db_commit(db, e) < 0)
		goto fail;
	acme_validators_wake(q->r->ks->acme);
	log_info(q->r->http->reqid, "acme: %s of %s queued (order %s)", type, o->name, o->id);
	return ks_store_acme_order_get(db, q->d->id, o->id, 0, o, e) == 1
	           ? 0
	           : err_set(e, ERR_INTERNAL, "internal", "the order went away");
fail:
	db_rollback(db);
	return -1;
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
	/* POST-as-GET reads; a payload ({}) asks for validation, once, while pending; the
	 * reply says processing and the client polls (RFC 8555 §7.5.1). */
	if (q->jws.payload != NULL && strcmp(o.authz_status, "pending") == 0) {
		if (o.expired) {
			err_set(&e, ERR_FORBIDDEN, "malformed", "the authorization has expired");
			goto fail;
		}
		if (challenge_start(q, &o, type, &e) < 0)
			goto fail;
	}
	acme_url(q, up, "authz", o.id, NULL);
	acme_reply(q, 200, challenge_json(q, &o, type), NULL);
	http_add_header(q->r->resp, "Link", "<%s>;rel=\"up\"", up);
	poll_hint(q, &o);
	return;
fail:
	acme_problem(q, &e);
}
