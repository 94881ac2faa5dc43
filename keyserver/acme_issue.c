/*
 * acme_issue.c - the signer's side of ACME: the certificate of a ready order.
 *
 * The signer does not take the HTTPS process's word that an order is ready: under the
 * domain's lock it reads the order row itself and issues only when the order is ready
 * and unexpired, its authorisation valid, its account valid, and the CSR asks for the
 * order's name; in the same transaction the order becomes valid and names the
 * certificate, so one order yields one certificate.  The validation itself (http-01,
 * dns-01) needs the network and is the HTTPS process's: PROTOCOL.md §13.2 says what a
 * compromised HTTPS process can therefore obtain.
 */
#include <string.h>

#include "core/log.h"
#include "ks_signer.h"
#include "store.h"

struct acme_issue {
	const struct ks_signer_domain *sd;
	const char *order_id;
	struct acme_order o;
};

static int order_check(const struct acme_order *o, const char *name, struct err *e)
{
	if (strcmp(o->status, "ready") != 0 || o->expired)
		return err_set(e, ERR_FORBIDDEN, "orderNotReady", "the order is %s, not ready",
		               o->expired ? "expired" : o->status);
	if (strcmp(o->authz_status, "valid") != 0)
		return err_set(e, ERR_FORBIDDEN, "orderNotReady",
		               "the order's authorization is not valid");
	if (strcmp(o->name, name) != 0)
		return err_set(e, ERR_INPUT, "badCSR", "the CSR asks for %s; the order is for %s",
		               name, o->name);
	return 0;
}

/* Inside the issuance's transaction, after the domain's lock. */
static int hook_check(void *arg, struct db *db, const char *name, struct err *e)
{
	struct acme_issue *ai = arg;
	struct acme_account a = {0};
	int found = ks_store_acme_order_get(db, ai->sd->d->id, ai->order_id, 1, &ai->o, e);

	if (found < 0)
		return -1;
	if (found == 0)
		return err_set(e, ERR_NOTFOUND, "malformed", "no such order of %s",
		               ai->sd->d->name);
	if (order_check(&ai->o, name, e) < 0)
		return -1;
	found = ks_store_acme_account_find(db, ai->sd->d->id, "id", ai->o.account_id, &a, e);
	if (found > 0 && strcmp(a.status, "valid") != 0)
		found = err_set(e, ERR_FORBIDDEN, "unauthorized", "the order's account is %s",
		                a.status);
	else if (found == 0)
		found = err_set(e, ERR_FORBIDDEN, "unauthorized", "the order's account is gone");
	acme_account_clear(&a);
	return found < 0 ? -1 : 0;
}

static int hook_done(void *arg, struct db *db, const char *key_id, struct err *e)
{
	struct acme_issue *ai = arg;

	return ks_store_acme_order_issued(db, ai->order_id, key_id, e);
}

int ks_issue_acme(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                  const char *order_id, const char *csr_pem, char key_id[CRYPTO_UUID_LEN],
                  struct err *e)
{
	struct acme_issue ai = {.sd = sd, .order_id = order_id};
	struct ks_issue_hook hook = {.check = hook_check, .done = hook_done, .arg = &ai};
	struct acme_order o;
	int found;

	/* The purpose first, unlocked: hook_check reads the row again under the lock, and
	 * refuses unless it is still ready (a purpose never changes). */
	found = ks_store_acme_order_get(db, sd->d->id, order_id, 0, &o, e);
	if (found <= 0)
		return found < 0 ? -1
		                 : err_set(e, ERR_NOTFOUND, "malformed", "no such order of %s",
		                           sd->d->name);
	if (ks_issue_server_hooked(sg, db, sd, o.purpose, csr_pem, &hook, key_id, e) < 0)
		return -1;
	log_info(NULL, "signer: ACME order %s of %s issued key_id=%s", order_id, sd->d->name,
	         key_id);
	return 0;
}
