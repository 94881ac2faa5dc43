/*
 * mail_lookup.c - the key server lookups of `anchorctl mail` (mail.h): a
 * recipient's encryption certificates, a signer's anchored identity.
 */
#include "mail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client.h"
#include "cmd.h"
#include "cmd_log.h"
#include "cmd_route.h"
#include "dns/discover.h"
#include "mail/smime.h"
#include "pki/cert.h"

/* A key server for one domain, and the pin its answers are checked against
 * (NULL: the pins of the domain object it serves). */
struct mail_ks {
	struct ctl_client c;
	char url[DNS_NAME_MAX + 32];
	char resolve[2 * DNS_NAME_MAX + 80];
	char pin[CRYPTO_PIN_MAX];
	const char *pinp;
	char cacert[4096]; /* a copy: the discovery context that named it is gone */
};

/* Without -s: the domain's key server as discovery found and verified it. */
static int ks_discover(const struct ctl *ctl, const char *domain, struct mail_ks *ks, struct err *e)
{
	struct discover_ctx *dctx = ctl_route_discovery(ctl, e);
	struct discover_result *d = NULL;
	const struct dns_srv *t;
	char ip[64] = "";
	int rc = -1;

	if (dctx == NULL || discover_domain(dctx, domain, &d, e) < 0)
		goto out;
	if (d->status == DISCOVER_LEGACY || d->ntargets == 0) {
		err_set(e, ERR_NOTFOUND, "legacy_domain",
		        "%s publishes no _anchor records: no anchored certificate to use", domain);
		goto out;
	}
	t = &d->targets[d->used_target >= 0 ? d->used_target : 0];
	discover_target_ip(dctx, t->target, ip, sizeof(ip));
	snprintf(ks->url, sizeof(ks->url), "https://%s:%u", t->target, t->port);
	if (ip[0]) {
		snprintf(ks->resolve, sizeof(ks->resolve), "%s:%u:%s", t->target, t->port, ip);
		ks->c.resolve = ks->resolve;
	}
	ks->c.base_url = ks->url;
	if (discover_config(dctx)->cacert != NULL) {
		snprintf(ks->cacert, sizeof(ks->cacert), "%s", discover_config(dctx)->cacert);
		ks->c.cacert = ks->cacert;
	}
	/* Discovery checked the served root against the pins in DNS: that root is the trust. */
	snprintf(ks->pin, sizeof(ks->pin), "%s", d->root_pin);
	ks->pinp = ks->pin;
	rc = 0;
out:
	discover_result_free(d);
	discover_free(dctx);
	return rc;
}

static int ks_for(const struct ctl *ctl, const char *domain, struct mail_ks *ks, struct err *e)
{
	memset(ks, 0, sizeof(*ks));
	if (ctl->server == NULL || *ctl->server == '\0')
		return ks_discover(ctl, domain, ks, e);
	if (ctl_client_check_url(ctl->server, e) < 0)
		return -1;
	ks->c.base_url = ctl->server;
	ks->c.cacert = ctl->cacert != NULL && *ctl->cacert != '\0' ? ctl->cacert : NULL;
	ks->c.resolve = ctl->resolve != NULL && *ctl->resolve != '\0' ? ctl->resolve : NULL;
	return 0;
}

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : address;
}

/* GET path and the log checks of certs (NULL: the answer itself) for domain. */
static json_t *checked_get(const struct mail_ks *ks, const char *path, const char *domain,
                           const char *certs_key, const char *state, struct err *e)
{
	json_t *answer = NULL, *certs;
	struct tlog_head head;
	int rc;

	if (ctl_client_call(&ks->c, "GET", path, NULL, &answer, e) < 0)
		return NULL;
	if (answer == NULL) {
		err_set(e, ERR_INTERNAL, "bad_response", "the key server sent an empty answer");
		return NULL;
	}
	certs = certs_key != NULL
	            ? json_incref(json_object_get(json_object_get(answer, "encryption"), certs_key))
	            : json_pack("[O]", answer);
	if (certs == NULL)
		certs = json_array();
	rc = ctl_log_check_certs(&ks->c, ks->pinp, state, answer, certs, &head, e);
	if (rc == 0 && strcmp(head.domain, domain) != 0)
		rc = err_set(e, ERR_UNPROC, "domain_mismatch",
		             "the key server answered for %s with %s's log", domain, head.domain);
	tlog_head_clear(&head);
	json_decref(certs);
	if (rc < 0) {
		json_decref(answer);
		return NULL;
	}
	return answer;
}

/* One listed certificate: usable, or why not (to stderr). */
static X509 *usable_cert(const char *address, const json_t *obj)
{
	const char *pem = json_string_value(json_object_get(obj, "certificate"));
	const char *status = json_string_value(json_object_get(obj, "status"));
	const char *kid = json_string_value(json_object_get(obj, "key_id"));
	struct err e = {0};
	X509 *x;

	if (status != NULL && strcmp(status, "revoked") == 0) {
		fprintf(stderr, "anchorctl: %s: key %s is revoked: not used\n", address,
		        kid ? kid : "?");
		return NULL;
	}
	if (pem == NULL || (x = cert_from_pem(pem, strlen(pem), &e)) == NULL) {
		fprintf(stderr, "anchorctl: %s: key %s: no readable certificate: not used\n",
		        address, kid ? kid : "?");
		return NULL;
	}
	if (smime_cert_can_encrypt_local(x, &e) < 0) {
		fprintf(stderr, "anchorctl: %s: key %s not used: %s\n", address, kid ? kid : "?",
		        e.msg);
		X509_free(x);
		return NULL;
	}
	return x;
}

int ctl_mail_recipient_certs(const struct ctl *ctl, const char *address, const char *state,
                             STACK_OF(X509) * out, struct err *e)
{
	const char *domain = domain_of(address);
	char *path = ctl_api_path("addresses", address, NULL);
	const json_t *list, *obj;
	json_t *answer = NULL;
	struct mail_ks ks;
	size_t i;
	int added = 0;

	if (path == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ks_for(ctl, domain, &ks, e) < 0 ||
	    (answer = checked_get(&ks, path, domain, "certificates", state, e)) == NULL) {
		free(path);
		return -1;
	}
	free(path);
	list = json_object_get(json_object_get(answer, "encryption"), "certificates");
	json_array_foreach(list, i, obj)
	{
		X509 *x = usable_cert(address, obj);
		if (x != NULL && sk_X509_push(out, x) > 0)
			added++;
		else
			X509_free(x);
	}
	json_decref(answer);
	if (added == 0)
		return err_set(e, ERR_NOTFOUND, "no_encryption_cert",
		               "%s has no certificate that can encrypt (%zu listed, none current, "
		               "unrevoked and with keyEncipherment or keyAgreement)",
		               address, json_array_size(list));
	return 0;
}

int ctl_mail_signer_check(const struct ctl *ctl, X509 *signer, const char *state, char *address,
                          size_t size, struct err *e)
{
	char fpr[CERT_FPR_LEN], *path;
	const char *status;
	json_t *answer = NULL;
	struct mail_ks ks;
	int rc = -1;

	smime_cert_address(signer, address, size);
	if (address[0] == '\0' || strchr(address, '@') == NULL)
		return err_set(e, ERR_UNPROC, "untrusted_signer",
		               "the signer's certificate names no mail address");
	if (cert_fingerprint(signer, fpr, e) < 0)
		return -1;
	if ((path = ctl_api_path("fingerprints", fpr, NULL)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ks_for(ctl, domain_of(address), &ks, e) < 0 ||
	    (answer = checked_get(&ks, path, domain_of(address), NULL, state, e)) == NULL) {
		if (strcmp(e->code, "not_found") == 0)
			err_set(e, ERR_FORBIDDEN, "untrusted_signer",
			        "%s's key server does not know the signer's certificate (%s)",
			        domain_of(address), fpr);
		goto out;
	}
	status = json_string_value(json_object_get(answer, "status"));
	if (status != NULL && strcmp(status, "revoked") == 0) {
		err_set(e, ERR_FORBIDDEN, "signer_revoked",
		        "the signer's certificate (%s, %s) is REVOKED", address, fpr);
		goto out;
	}
	rc = 0;
out:
	json_decref(answer);
	free(path);
	return rc;
}
