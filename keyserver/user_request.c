/*
 * user_request.c - requests a user signs with their own key, for what a user
 * may change about their own address (today: its alias).  The proof is the
 * signature by the address's current certificate; freshness comes from the
 * signed "issued" time, checked against a window and against the newest
 * request already accepted from that key, so a captured request cannot be
 * replayed.  "issued" may carry milliseconds (1796640000.125): a user who
 * changes two things within one second signs two distinct times.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki/cert.h"
#include "pki/crypto.h"
#include "pki/jws.h"
#include "payload.h"
#include "store.h"
#include "user_request.h"

/* The pins of the domain as a C array borrowed from d->pins. */
static int domain_pins(const struct ks_domain *d, const char **pins, int max)
{
	size_t i;
	json_t *p;
	int n = 0;

	json_array_foreach(d->pins, i, p)
	{
		if (n < max && json_is_string(p))
			pins[n++] = json_string_value(p);
	}
	return n;
}

/* The signer must hold the address's current S/MIME certificate; returns its key id. */
static int signer_is_current(struct ks_req *r, const struct ks_domain *d, const char *address,
                             X509 *leaf, char key_id[CRYPTO_UUID_LEN], struct err *e)
{
	char fpr[CERT_FPR_LEN];
	int found;

	if (cert_fingerprint(leaf, fpr, e) < 0)
		return -1;
	found = ks_store_current_key_of(r->db, d->id, address, "smime", fpr, key_id, e);
	if (found < 0)
		return -1;
	if (found == 0)
		return err_set(e, ERR_FORBIDDEN, "not_current_key",
		               "the request is not signed by the current key of %s", address);
	return 0;
}

/* Record the request's time; refuse it when an equal or newer one was accepted. */
static int request_not_replayed(struct ks_req *r, const char *key_id, long long issued_ms,
                                struct err *e)
{
	int fresh = ks_store_key_request_newer(r->db, key_id, issued_ms, e);

	if (fresh < 0)
		return -1;
	if (!fresh)
		return err_set(e, ERR_CONFLICT, "replayed",
		               "a request signed at the same time or later was already accepted");
	return 0;
}

static int payload_check(json_t *p, const char *want, const char *address, long long *ms,
                         struct err *e)
{
	const char *type = ks_payload_str(p, "type");
	const char *addr = ks_payload_str(p, "address");

	if (type == NULL || strcmp(type, want) != 0)
		return err_set(e, ERR_INPUT, "bad_request", "the signed payload must have type %s",
		               want);
	if (addr == NULL || strcmp(addr, address) != 0)
		return err_set(e, ERR_INPUT, "address_mismatch",
		               "the signed request is for another address than the URL's");
	return ks_payload_issued(p, (long long)time(NULL), ms, e);
}

int ks_user_request_route(struct ks_req *r, const struct ks_domain *d, const char *address,
                          struct ks_route *rt, char *keyref, size_t keyref_len, struct err *e)
{
	const char *pins[8];
	int npins = domain_pins(d, pins, 8);
	struct jws_verified v = {0};
	char key_id[CRYPTO_UUID_LEN];
	json_t *payload = NULL;
	long long issued_ms = 0;
	int rc = -1;

	/* The body arrived as JSON; verify it in its original text. */
	if (jws_verify(r->http->body, r->http->body_len, pins, npins, &v, e) < 0)
		return -1;
	payload = json_loadb(v.payload, v.payload_len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(payload)) {
		err_set(e, ERR_INPUT, "bad_request", "the signed payload is not a JSON object");
		goto out;
	}
	if (payload_check(payload, "anchor-route-request", address, &issued_ms, e) < 0)
		goto out;
	if (json_object_get(payload, "servers") != NULL) {
		err_set(e, ERR_FORBIDDEN, "forbidden",
		        "a user may set only the alias of their address; "
		        "servers are set by the domain admin");
		goto out;
	}
	if (signer_is_current(r, d, address, v.leaf, key_id, e) < 0 ||
	    ks_route_parse(payload, address, 0, rt, e) < 0)
		goto out;
	if (rt->alias == NULL) {
		err_set(e, ERR_FORBIDDEN, "forbidden", "a user may set only an alias");
		goto out;
	}
	/* Replay bookkeeping rides in its own statement: a refused route below still
	 * burns the request, which is what a replay check should do. */
	if (request_not_replayed(r, key_id, issued_ms, e) < 0)
		goto out;
	snprintf(keyref, keyref_len, "key:%s", key_id);
	rc = 0;
out:
	json_decref(payload);
	jws_verified_free(&v);
	return rc;
}

int ks_user_request_open(struct ks_req *r, const struct ks_domain *d, const char *address,
                         const char *type, json_t **payload, char key_id[CRYPTO_UUID_LEN],
                         struct err *e)
{
	const char *pins[8];
	int npins = domain_pins(d, pins, 8);
	struct jws_verified v = {0};
	json_t *p = NULL;
	long long issued_ms = 0;
	int rc = -1;

	*payload = NULL;
	if (jws_verify(r->http->body, r->http->body_len, pins, npins, &v, e) < 0)
		return -1;
	p = json_loadb(v.payload, v.payload_len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(p)) {
		err_set(e, ERR_INPUT, "bad_request", "the signed payload is not a JSON object");
		goto out;
	}
	/* The signature burns its time only once it is known to be the current key's. */
	if (payload_check(p, type, address, &issued_ms, e) < 0 ||
	    signer_is_current(r, d, address, v.leaf, key_id, e) < 0 ||
	    request_not_replayed(r, key_id, issued_ms, e) < 0)
		goto out;
	*payload = json_incref(p);
	rc = 0;
out:
	json_decref(p);
	jws_verified_free(&v);
	return rc;
}
