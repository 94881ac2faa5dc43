/*
 * acme_order.c - orders (RFC 8555 §7.4): one DNS name per order, which must be the
 * domain or a name under it (the root's name constraints allow nothing else), no
 * wildcards; finalisation hands the CSR to the signer, which checks the order itself;
 * the certificate is served as a PEM chain (leaf, then the domain's issuer).
 */
#include <stdlib.h>
#include <string.h>

#include "acme.h"
#include "cache.h"
#include "core/log.h"
#include "pki/csr.h"
#include "pki/name.h"
#include "store.h"

int acme_order_load(struct acme_req *q, const char *id, struct acme_order *o, struct err *e)
{
	int found = ks_is_uuid(id) ? ks_store_acme_order_get(q->r->db, q->d->id, id, 0, o, e) : 0;

	if (found < 0)
		return -1;
	/* Another account's order is as absent as one that never was. */
	if (found == 0 || strcmp(o->account_id, q->acct.id) != 0)
		return err_set(e, ERR_NOTFOUND, "malformed", "no such order of this account");
	return 0;
}

json_t *acme_order_json(const struct acme_req *q, const struct acme_order *o)
{
	char authz[ACME_URL_MAX], fin[ACME_URL_MAX], cert[ACME_URL_MAX];
	const char *status = o->expired && strcmp(o->status, "valid") != 0 ? "invalid" : o->status;
	json_t *j;

	acme_url(q, authz, "authz", o->id, NULL);
	acme_url(q, fin, "order", o->id, "finalize");
	j = json_pack("{s:s, s:s, s:[{s:s, s:s}], s:[s], s:s}", "status", status, "expires",
	              o->expires, "identifiers", "type", "dns", "value", o->name, "authorizations",
	              authz, "finalize", fin);
	if (j != NULL && o->key_id[0] != '\0') {
		acme_url(q, cert, "cert", o->id, NULL);
		json_object_set_new(j, "certificate", json_string(cert));
	}
	if (j != NULL && o->error[0] != '\0')
		json_object_set_new(j, "error",
		                    json_pack("{s:s, s:s}", "type",
		                              "urn:ietf:params:acme:error:incorrectResponse",
		                              "detail", o->error));
	return j;
}

/* identifiers: exactly one {"type": "dns", "value": a name of this domain}. */
static int order_name(struct acme_req *q, char *name, size_t cap, struct err *e)
{
	json_t *ids = json_object_get(q->jws.payload, "identifiers"), *id;
	const char *type, *value;
	char canon[DNS_DOMAIN_MAX];

	if (!json_is_array(ids) || json_array_size(ids) == 0)
		return err_set(e, ERR_INPUT, "malformed", "identifiers is a non-empty array");
	if (json_array_size(ids) > 1)
		return err_set(e, ERR_INPUT, "rejectedIdentifier",
		               "one name per order here: order each name on its own");
	id = json_array_get(ids, 0);
	type = json_string_value(json_object_get(id, "type"));
	value = json_string_value(json_object_get(id, "value"));
	if (type == NULL || value == NULL)
		return err_set(e, ERR_INPUT, "malformed", "an identifier has a type and a value");
	if (strcmp(type, "dns") != 0)
		return err_set(e, ERR_INPUT, "unsupportedIdentifier", "only dns identifiers");
	if (strlen(value) >= sizeof(canon) || name_check_domain(value, e) < 0)
		return err_set(e, ERR_INPUT, "rejectedIdentifier", "%.80s is not a host name",
		               value);
	snprintf(canon, sizeof(canon), "%s", value);
	for (char *p = canon; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	if (!name_in_domain(canon, q->d->name))
		return err_set(e, ERR_INPUT, "rejectedIdentifier",
		               "%s is not %s or a name under it", canon, q->d->name);
	snprintf(name, cap, "%s", canon);
	return 0;
}

static int rate_check(struct acme_req *q, struct err *e)
{
	const struct ks_settings *cfg = &q->r->ks->cfg;
	long long n = 0;

	if (cfg->acme_orders_per_hour > 0) {
		if (ks_store_acme_orders_recent(q->r->db, q->d->id, q->acct.id, &n, e) < 0)
			return -1;
		if (n >= cfg->acme_orders_per_hour)
			return err_set(
			    e, ERR_RATE, "rateLimited",
			    "this account placed %lld orders in the last hour; the limit "
			    "is %lld",
			    n, cfg->acme_orders_per_hour);
	}
	if (cfg->acme_domain_orders_per_hour > 0) {
		if (ks_store_acme_orders_recent(q->r->db, q->d->id, NULL, &n, e) < 0)
			return -1;
		if (n >= cfg->acme_domain_orders_per_hour)
			return err_set(e, ERR_RATE, "rateLimited",
			               "%s had %lld orders in the last hour; the limit is %lld",
			               q->d->name, n, cfg->acme_domain_orders_per_hour);
	}
	return 0;
}

void acme_new_order(struct acme_req *q, const char *purpose)
{
	struct acme_order o = {0};
	char loc[ACME_URL_MAX];
	struct err e = {0};

	if (strcmp(purpose, "mta") != 0 && strcmp(purpose, "keyserver") != 0) {
		err_set(&e, ERR_NOTFOUND, "malformed", "orders are for mta or keyserver");
		goto fail;
	}
	if (q->jws.payload == NULL || json_object_get(q->jws.payload, "notBefore") != NULL ||
	    json_object_get(q->jws.payload, "notAfter") != NULL) {
		err_set(&e, ERR_INPUT, "malformed",
		        "newOrder takes identifiers only (the validity is the server's)");
		goto fail;
	}
	if (order_name(q, o.name, sizeof(o.name), &e) < 0 || rate_check(q, &e) < 0 ||
	    crypto_uuid_v4(o.id, &e) < 0 || crypto_random_token(o.token, &e) < 0)
		goto fail;
	snprintf(o.account_id, sizeof(o.account_id), "%s", q->acct.id);
	snprintf(o.purpose, sizeof(o.purpose), "%s", purpose);
	if (ks_store_acme_order_add(q->r->db, q->d->id, &o, &e) < 0 ||
	    ks_store_acme_order_get(q->r->db, q->d->id, o.id, 0, &o, &e) != 1)
		goto fail;
	log_info(q->r->http->reqid, "acme: order %s for %s (%s) by account %s", o.id, o.name,
	         purpose, o.account_id);
	acme_url(q, loc, "order", o.id, NULL);
	acme_reply(q, 201, acme_order_json(q, &o), loc);
	return;
fail:
	if (e.kind == ERR_NONE)
		err_set(&e, ERR_INTERNAL, "internal", "the new order is not readable");
	acme_problem(q, &e);
}

void acme_order_get(struct acme_req *q, const char *id)
{
	struct acme_order o;
	struct err e = {0};

	if (acme_order_load(q, id, &o, &e) < 0) {
		acme_problem(q, &e);
		return;
	}
	acme_reply(q, 200, acme_order_json(q, &o), NULL);
}

/* The payload's csr (base64url DER) as PEM; badCSR when it is not a request. */
static char *csr_pem_of(struct acme_req *q, struct err *e)
{
	const char *b64 = acme_payload_str(&q->jws, "csr");
	size_t len = 0;
	uint8_t *der = b64 != NULL ? crypto_b64url_decode(b64, &len) : NULL;
	const unsigned char *p = der;
	X509_REQ *req = der != NULL ? d2i_X509_REQ(NULL, &p, (long)len) : NULL;
	char *pem = NULL;

	if (req == NULL || p != der + len)
		err_set(e, ERR_INPUT, "badCSR", "csr is not a base64url PKCS#10 request");
	else
		pem = csr_to_pem(req, e);
	X509_REQ_free(req);
	free(der);
	return pem;
}

/* The request proves its key, uses an allowed one, and asks for the order's name only. */
static int csr_check(const char *pem, const struct acme_order *o, struct err *e)
{
	X509_REQ *req = csr_from_pem(pem, strlen(pem), e);
	char *name = NULL;
	int rc = -1;

	if (req != NULL && csr_verify(req, e) == 0 &&
	    (name = csr_requested_name(req, CERT_SERVER, e)) != NULL) {
		if (strcmp(name, o->name) == 0)
			rc = 0;
		else
			err_set(e, ERR_INPUT, "badCSR", "the CSR asks for %s; the order is for %s",
			        name, o->name);
	}
	if (rc < 0 && strcmp(e->code, "badCSR") != 0)
		err_set(e, ERR_INPUT, "badCSR", "%s", e->msg);
	free(name);
	X509_REQ_free(req);
	return rc;
}

void acme_order_finalize(struct acme_req *q, const char *id)
{
	struct acme_order o;
	char key_id[CRYPTO_UUID_LEN], loc[ACME_URL_MAX];
	struct err e = {0};
	char *pem = NULL;

	if (acme_order_load(q, id, &o, &e) < 0)
		goto fail;
	if (strcmp(o.status, "ready") != 0 || o.expired) {
		err_set(&e, ERR_FORBIDDEN, "orderNotReady", "the order is %s, not ready",
		        o.expired ? "expired" : o.status);
		goto fail;
	}
	if ((pem = csr_pem_of(q, &e)) == NULL || csr_check(pem, &o, &e) < 0)
		goto fail;
	/* The signer checks the order, its authorisation and account again, itself. */
	if (ks_signer_acme(q->r->ks, q->d->name, o.id, pem, key_id, &e) < 0 ||
	    ks_store_acme_order_get(q->r->db, q->d->id, o.id, 0, &o, &e) != 1)
		goto fail;
	ks_cache_invalidate(q->r->ks->cache);
	log_info(q->r->http->reqid, "acme: issued %s certificate for %s key_id=%s (order %s)",
	         o.purpose, o.name, key_id, o.id);
	acme_url(q, loc, "order", o.id, NULL);
	acme_reply(q, 200, acme_order_json(q, &o), loc);
	free(pem);
	return;
fail:
	if (e.kind == ERR_NONE)
		err_set(&e, ERR_INTERNAL, "internal", "the order is not readable");
	free(pem);
	acme_problem(q, &e);
}

void acme_cert_get(struct acme_req *q, const char *id)
{
	struct acme_order o;
	struct err e = {0};
	struct ks_cert *c = NULL;
	char *chain = NULL;

	if (acme_order_load(q, id, &o, &e) < 0)
		goto fail;
	if (o.key_id[0] == '\0') {
		err_set(&e, ERR_NOTFOUND, "malformed", "the order has no certificate yet");
		goto fail;
	}
	if ((c = ks_store_cert_by(q->r->db, "key_id", o.key_id, &e)) == NULL)
		goto fail;
	if (c->pem == NULL) {
		err_set(&e, ERR_GONE, "malformed", "the certificate was erased");
		goto fail;
	}
	if (asprintf(&chain, "%s%s", c->pem, q->d->issuer_pem) < 0) {
		chain = NULL;
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	http_reply_text(q->r->resp, 200, "application/pem-certificate-chain", chain, strlen(chain));
	ks_cert_free(c);
	return;
fail:
	ks_cert_free(c);
	free(chain);
	acme_problem(q, &e);
}
