/*
 * cert_json.c - certificates and log entries as the protocol's JSON objects,
 * from the structs the store reads (store_cert.c, store_log.c).  Pure: the
 * members and their order are those the protocol documents.
 */
#include "cert_json.h"

#include "pki/crl.h"

static json_t *text_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *revocation_json(const struct ks_cert_revocation *rv)
{
	const char *reason;

	if (!rv->revoked)
		return json_null();
	reason = crl_reason_name(rv->reason);
	return json_pack("{s:s, s:s, s:s}", "reason", reason ? reason : "unspecified", "method",
	                 rv->method, "time", rv->time);
}

/*
 * An erased certificate (PROTOCOL.md §10.1): what the CRL and the log still need, and
 * nothing that names the address.  The row no longer holds the address or the
 * certificate; this shape also keeps out the members (name, certificate, log proof)
 * that a reader might otherwise take from a row.
 */
static json_t *erased_json(const struct ks_cert *c)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "key_id", c->key_id, "kind",
	                 c->kind, "purpose", c->purpose, "fingerprint", c->fingerprint, "serial",
	                 c->serial, "status", c->status, "revocation",
	                 revocation_json(&c->revocation), "erased", c->erased);
}

json_t *ks_cert_json(const struct ks_cert *c)
{
	json_t *o;

	if (c->erased[0] != '\0')
		return erased_json(c);
	o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o}",
	              "key_id", c->key_id, "kind", c->kind, "purpose", c->purpose, "name",
	              text_or_null(c->name), "algorithm", c->algorithm, "fingerprint",
	              c->fingerprint, "serial", c->serial, "not_before", c->not_before, "not_after",
	              c->not_after, "status", c->status, "issued", c->issued, "superseded",
	              text_or_null(c->superseded), "certificate", text_or_null(c->pem),
	              "revocation", revocation_json(&c->revocation));
	/* Only encryption certificates belong to a device (PROTOCOL.md §4.1). */
	if (o != NULL && c->device[0] != '\0')
		json_object_set_new(o, "device", json_string(c->device));
	return o;
}

json_t *ks_log_entry_json(const struct ks_log_entry *en)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)en->seq, "leaf", en->leaf,
	                      "leaf_hash", en->leaf_hash, "type", en->type);

	if (o == NULL)
		return NULL;
	if (en->key_id[0] != '\0')
		json_object_set_new(o, "key_id", json_string(en->key_id));
	if (en->salt != NULL) {
		json_object_set_new(o, "salt", json_string(en->salt));
		json_object_set_new(o, "name", json_string(en->name ? en->name : ""));
	}
	return o;
}

json_t *ks_log_page_json(const struct ks_log_page *p)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr != NULL && i < p->n; i++) {
		json_t *o = ks_log_entry_json(&p->v[i]);

		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}
