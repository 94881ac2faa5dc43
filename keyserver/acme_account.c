/*
 * acme_account.c - accounts (RFC 8555 §7.3): one per account key and domain, named by
 * the URL {base}/acct/<uuid> that later requests give as kid.  newAccount with a key
 * already known answers that account (200) instead of making a second; with
 * onlyReturnExisting and an unknown key it is accountDoesNotExist.
 */
#include <string.h>

#include "acme.h"
#include "core/log.h"
#include "pki/crypto.h"
#include "store.h"

#define ACME_CONTACTS_MAX 4

/* contact: an array of at most ACME_CONTACTS_MAX "mailto:" URLs (RFC 8555 §7.3). */
static int contact_check(json_t *contact, struct err *e)
{
	size_t i;
	json_t *c;

	if (!json_is_array(contact) || json_array_size(contact) > ACME_CONTACTS_MAX)
		return err_set(e, ERR_INPUT, "malformed", "contact is an array of at most %d URLs",
		               ACME_CONTACTS_MAX);
	json_array_foreach(contact, i, c)
	{
		const char *s = json_string_value(c);
		if (s == NULL || strncmp(s, "mailto:", 7) != 0 || strlen(s) > 254 ||
		    strchr(s, '@') == NULL)
			return err_set(e, ERR_INPUT, "unsupportedContact",
			               "a contact is a mailto: URL of an address");
	}
	return 0;
}

static json_t *account_json(const struct acme_account *a)
{
	return json_pack("{s:s, s:O}", "status", a->status, "contact", a->contact);
}

static void reply_account(struct acme_req *q, int status, const struct acme_account *a)
{
	char loc[ACME_URL_MAX];

	acme_url(q, loc, "acct", a->id, NULL);
	acme_reply(q, status, account_json(a), loc);
}

static int account_create(struct acme_req *q, struct acme_account *a, struct err *e)
{
	json_t *contact = json_object_get(q->jws.payload, "contact");

	if (contact != NULL && contact_check(contact, e) < 0)
		return -1;
	if (crypto_uuid_v4(a->id, e) < 0 || jwk_thumbprint(q->jws.jwk, a->thumbprint, e) < 0)
		return -1;
	snprintf(a->status, sizeof(a->status), "valid");
	a->jwk = json_incref(q->jws.jwk);
	a->contact = contact != NULL ? json_incref(contact) : json_array();
	return ks_store_acme_account_add(q->r->db, q->d->id, a, e);
}

void acme_new_account(struct acme_req *q)
{
	struct acme_account a = {0};
	char thumb[JWK_THUMBPRINT_LEN];
	struct err e = {0};
	int found;

	if (q->jws.payload == NULL) {
		err_set(&e, ERR_INPUT, "malformed", "newAccount needs a payload");
		goto fail;
	}
	if (jwk_thumbprint(q->jws.jwk, thumb, &e) < 0 ||
	    (found = ks_store_acme_account_find(q->r->db, q->d->id, "thumbprint", thumb, &a, &e)) <
	        0)
		goto fail;
	if (found) {
		reply_account(q, 200, &a);
		goto out;
	}
	if (json_is_true(json_object_get(q->jws.payload, "onlyReturnExisting"))) {
		err_set(&e, ERR_INPUT, "accountDoesNotExist", "no account has this key");
		goto fail;
	}
	/* Two clients racing with one key: the second insert conflicts (409); its retry finds
	 * the first's account. */
	if (account_create(q, &a, &e) < 0)
		goto fail;
	log_info(q->r->http->reqid, "acme: new account %s for %s", a.id, q->d->name);
	reply_account(q, 201, &a);
	goto out;
fail:
	acme_problem(q, &e);
out:
	acme_account_clear(&a);
}

/* POST to the account's own URL: read it (POST-as-GET), update contact, or deactivate. */
void acme_account_post(struct acme_req *q, const char *id)
{
	struct err e = {0};
	json_t *p = q->jws.payload;
	const char *status = acme_payload_str(&q->jws, "status");
	json_t *contact = json_object_get(p, "contact");

	if (strcmp(id, q->acct.id) != 0) {
		err_set(&e, ERR_FORBIDDEN, "unauthorized", "this is not the signer's account");
		goto fail;
	}
	if (status != NULL && strcmp(status, "deactivated") != 0) {
		err_set(&e, ERR_INPUT, "malformed",
		        "an account's status can only become deactivated");
		goto fail;
	}
	if (contact != NULL && contact_check(contact, &e) < 0)
		goto fail;
	if (status != NULL || contact != NULL) {
		if (status != NULL)
			snprintf(q->acct.status, sizeof(q->acct.status), "%s", status);
		if (contact != NULL) {
			json_decref(q->acct.contact);
			q->acct.contact = json_incref(contact);
		}
		if (ks_store_acme_account_update(q->r->db, &q->acct, &e) < 0)
			goto fail;
	}
	reply_account(q, 200, &q->acct);
	return;
fail:
	acme_problem(q, &e);
}
