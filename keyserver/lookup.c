/*
 * lookup.c - public, exact-match lookups: an address's current certificates
 * and the one an encrypting sender should use, its history, a certificate by
 * key id or fingerprint.  There is deliberately no listing or search.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "pki/cert.h"
#include "dns/dns.h"
#include "cert_json.h"

/* Which address's key encrypts mail for addr under the domain's policy, and why. */
static int encryption_target(struct ks_req *r, const struct ks_domain *d, const char *addr,
                             char **target, const char **reason, struct err *e)
{
	if (strcmp(d->policy, "corporate") == 0 && d->corporate_address != NULL) {
		*reason = "corporate";
		*target = strdup(d->corporate_address);
		return *target ? 0 : err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	*reason = "isp";
	if (strcmp(d->policy, "groups") == 0) {
		char *group = NULL;

		if (ks_store_group_of(r->db, d->id, addr, &group, e) < 0)
			return -1;
		if (group != NULL) {
			*reason = "group";
			*target = group;
			return 0;
		}
		*reason = "own key (not in any group)";
	}
	*target = strdup(addr);
	return *target ? 0 : err_set(e, ERR_INTERNAL, "internal", "out of memory");
}

/*
 * What a sender may encrypt to for target: its current user certificates (smime and
 * encryption, of every device) whose key can encrypt (cert_can_encrypt: keyUsage
 * keyEncipherment or keyAgreement).  A signing-only key (Ed25519) is never offered,
 * whatever its purpose; a revoked or superseded one is not current.
 */
static struct ks_cert_list *encryption_certs(struct ks_req *r, const struct ks_domain *d,
                                             const char *target, struct err *e)
{
	struct ks_cert_list *l = ks_store_certs_by_name(r->db, d->id, target, NULL, 1, e);
	size_t k = 0;

	for (size_t i = 0; l != NULL && i < l->n; i++) {
		struct ks_cert *c = &l->v[i];
		int user =
		    strcmp(c->purpose, "smime") == 0 || strcmp(c->purpose, "encryption") == 0;

		if (user && cert_pem_can_encrypt(c->pem)) {
			struct ks_cert keep = *c;
			*c = l->v[k];
			l->v[k++] = keep;
		}
	}
	/* The ones left out are released here; the list ends at the last kept. */
	for (size_t i = k; l != NULL && i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].pem);
	}
	if (l != NULL)
		l->n = k;
	return l;
}

/* The address's answer (PROTOCOL.md §3.1) from its own certificates and the encrypting
 * target's (the same list when the target is the address). */
static void reply_address(struct ks_req *r, const struct ks_domain *d, const char *addr,
                          const struct ks_cert_list *own, const char *target, const char *reason,
                          const struct ks_cert_list *enc)
{
	json_t *own_j = NULL, *enc_j = NULL, *head = NULL, *head2 = NULL;
	struct err e = {0};

	if ((own_j = ks_log_certs_json(r, own, &head, &e)) == NULL)
		goto fail;
	if ((enc_j = ks_log_certs_json(r, enc, &head2, &e)) == NULL)
		goto fail;
	http_reply_json(r->resp, 200,
	                json_pack("{s:s, s:s, s:s, s:O, s:{s:s, s:s, s:s, s:O}, s:O}", "address",
	                          addr, "domain", d->name, "policy", d->policy, "certificates",
	                          own_j, "encryption", "address", target, "reason", reason,
	                          "requirement", d->encryption, "certificates", enc_j, "tree_head",
	                          head    ? head
	                          : head2 ? head2
	                                  : json_null()));
	goto out;
fail:
	ks_fail(r, &e);
out:
	json_decref(head);
	json_decref(head2);
	json_decref(own_j);
	json_decref(enc_j);
}

void ks_lookup_address(struct ks_req *r, const char *raw)
{
	struct ks_domain *d = NULL;
	char *addr = ks_address_arg(r, raw, &d), *target = NULL;
	struct ks_cert_list *own = NULL, *enc = NULL;
	const char *reason = NULL;
	struct err e = {0};

	if (addr == NULL)
		return;
	own = ks_store_certs_by_name(r->db, d->id, addr, "smime", 1, &e);
	if (own == NULL || encryption_target(r, d, addr, &target, &reason, &e) < 0 ||
	    (enc = encryption_certs(r, d, target, &e)) == NULL)
		goto fail;
	if (own->n == 0 && enc->n == 0) {
		err_set(&e, ERR_NOTFOUND, "not_found", "no certificate is published for %s", addr);
		goto fail;
	}
	reply_address(r, d, addr, own, target, reason, enc);
	goto out;
fail:
	ks_fail(r, &e);
out:
	ks_cert_list_free(own);
	ks_cert_list_free(enc);
	free(target);
	free(addr);
	ks_domain_free(d);
}

void ks_lookup_history(struct ks_req *r, const char *raw)
{
	struct ks_domain *d = NULL;
	char *addr = ks_address_arg(r, raw, &d);
	struct ks_cert_list *all = NULL;
	json_t *arr = NULL, *head = NULL;
	struct err e = {0};

	if (addr == NULL)
		return;
	/* Every purpose an address has: its smime and its devices' encryption certificates. */
	if ((all = ks_store_certs_by_name(r->db, d->id, addr, NULL, 0, &e)) == NULL ||
	    (arr = ks_log_certs_json(r, all, &head, &e)) == NULL)
		ks_fail(r, &e);
	else if (all->n == 0) {
		err_set(&e, ERR_NOTFOUND, "not_found", "no certificate was ever published for %s",
		        addr);
		ks_fail(r, &e);
	} else
		http_reply_json(r->resp, 200,
		                json_pack("{s:s, s:O, s:O}", "address", addr, "certificates", arr,
		                          "tree_head", head ? head : json_null()));
	json_decref(head);
	json_decref(arr);
	ks_cert_list_free(all);
	free(addr);
	ks_domain_free(d);
}

int ks_is_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != sizeof(shape) - 1)
		return 0;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/*
 * An erased certificate is gone (PROTOCOL.md §10.1): 410 with what a relying party that
 * still holds it needs, its status and revocation, and nothing that names the address.
 * The PEM form answers the same JSON: there is no certificate left to send.
 */
static void reply_erased(struct ks_req *r, const struct ks_cert *c)
{
	json_t *obj = ks_cert_json(c);

	json_object_set_new(obj, "error", json_string("erased"));
	json_object_set_new(obj, "message",
	                    json_string("this certificate was erased at its owner's request;"
	                                " it is revoked and no longer published"));
	http_reply_json(r->resp, 410, obj);
}

static void reply_cert(struct ks_req *r, const struct ks_cert *c, int pem)
{
	struct err e = {0};
	json_t *obj, *head = NULL;

	if (c->erased[0] != '\0') {
		reply_erased(r, c);
		return;
	}
	/* The PEM form is answered after the same proof, so both forms fail alike. */
	if ((obj = ks_log_cert_json(r, c, &head, &e)) == NULL) {
		ks_fail(r, &e);
		return;
	}
	if (!pem) {
		json_object_set_new(obj, "tree_head", head ? head : json_null());
		http_reply_json(r->resp, 200, obj);
		return;
	}
	json_decref(head);
	json_decref(obj);
	http_reply_text(r->resp, 200, "application/x-pem-file", strdup(c->pem), strlen(c->pem));
}

void ks_lookup_key(struct ks_req *r, const char *key_id, int pem)
{
	struct err e = {0};
	struct ks_cert *c;

	if (!ks_is_uuid(key_id)) {
		err_set(&e, ERR_INPUT, "bad_request",
		        "a key id is a UUID like "
		        "0b6f5c0e-4d3a-4c8e-9a57-6a1f1d0e8a11");
		ks_fail(r, &e);
		return;
	}
	if ((c = ks_store_cert_by(r->db, "key_id", key_id, &e)) == NULL)
		ks_fail(r, &e);
	else
		reply_cert(r, c, pem);
	ks_cert_free(c);
}

void ks_lookup_fingerprint(struct ks_req *r, const char *fpr)
{
	char norm[CERT_FPR_LEN];
	struct err e = {0};
	struct ks_cert *c;
	size_t i;

	if (strncmp(fpr, "sha256:", 7) != 0 || strlen(fpr) != CERT_FPR_LEN - 1) {
		err_set(&e, ERR_INPUT, "bad_request",
		        "a fingerprint is sha256: followed by 64 hex digits");
		ks_fail(r, &e);
		return;
	}
	for (i = 0; fpr[i]; i++) {
		if (i >= 7 && !isxdigit((unsigned char)fpr[i])) {
			err_set(&e, ERR_INPUT, "bad_request",
			        "a fingerprint is sha256: followed by 64 hex digits");
			ks_fail(r, &e);
			return;
		}
		norm[i] = (char)tolower((unsigned char)fpr[i]);
	}
	norm[i] = '\0';
	if ((c = ks_store_cert_by(r->db, "fingerprint", norm, &e)) == NULL)
		ks_fail(r, &e);
	else
		reply_cert(r, c, 0);
	ks_cert_free(c);
}

/* A DKIM selector we can serve: one LDH label (PROTOCOL.md §8.1), lowercased into out. */
static int selector_arg(const char *raw, char *out, size_t size, struct err *e)
{
	size_t n = strlen(raw);

	if (n == 0 || n > 63 || n >= size || raw[0] == '-' || raw[n - 1] == '-')
		return err_set(
		    e, ERR_INPUT, "bad_name",
		    "a DKIM selector here is one host-name label (letters, digits, '-')");
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c != '\0' && !isalnum(c) && c != '-')
			return err_set(
			    e, ERR_INPUT, "bad_name",
			    "a DKIM selector here is one host-name label (letters, digits, '-')");
		out[i] = (char)tolower(c);
	}
	return 0;
}

/* The newest signing certificate of l for selector (the current one only when current);
 * borrowed from l, or NULL. */
static const struct ks_cert *newest_of(const struct ks_cert_list *l, const char *domain,
                                       const char *selector, int current)
{
	const struct ks_cert *best = NULL;

	for (size_t i = 0; i < l->n; i++) {
		const struct ks_cert *c = &l->v[i];
		char sel[64];

		if (c->name == NULL || strcmp(c->purpose, "signing") != 0 ||
		    dns_dkim_selector(c->name, domain, sel, sizeof(sel)) < 0 ||
		    strcmp(sel, selector) != 0)
			continue;
		if (current && strcmp(c->status, "current") != 0)
			continue;
		/* RFC 3339 UTC times of one format compare as strings. */
		if (best == NULL || strcmp(c->issued, best->issued) > 0)
			best = c;
	}
	return best;
}

/*
 * GET /v1/domains/{domain}/dkim/{selector}: the signing certificate a DKIM
 * verifier needs for s=<selector> d=<domain> (PROTOCOL.md §3.5): the current one,
 * else the newest one when it is revoked, so that the verifier learns of the
 * revocation instead of meeting a silence it might take for an outage.
 */
void ks_lookup_dkim(struct ks_req *r, const char *domain, const char *raw_selector)
{
	char selector[64], host[DNS_DOMAIN_MAX + 70];
	struct ks_cert_list *current = NULL, *past = NULL;
	const struct ks_cert *c;
	struct ks_domain *d = NULL;
	struct err e = {0};

	if (selector_arg(raw_selector, selector, sizeof(selector), &e) < 0)
		goto fail;
	if ((d = ks_load_domain(r, domain)) == NULL)
		return;
	if ((current = ks_store_server_certs(r->db, d->id, &e)) == NULL)
		goto fail;
	if ((c = newest_of(current, d->name, selector, 1)) == NULL) {
		/* No current one: the latest issued for the host, kept only when revoked. */
		if (strcmp(selector, "anchor") == 0)
			snprintf(host, sizeof(host), "%s", d->name);
		else
			snprintf(host, sizeof(host), "%s.%s", selector, d->name);
		past = ks_store_certs_by_name(r->db, d->id, host, "signing", 0, &e);
		if (past == NULL)
			goto fail;
		c = newest_of(past, d->name, selector, 0);
		if (c != NULL && strcmp(c->status, "revoked") != 0)
			c = NULL;
	}
	if (c == NULL) {
		err_set(&e, ERR_NOTFOUND, "not_found", "%s has no signing key for selector %s",
		        d->name, selector);
		goto fail;
	}
	reply_cert(r, c, 0);
	goto out;
fail:
	ks_fail(r, &e);
out:
	ks_cert_list_free(current);
	ks_cert_list_free(past);
	ks_domain_free(d);
}
