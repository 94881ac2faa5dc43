/*
 * discover_verify.c - the check of a key server's domain object against the
 * pins DNS gave: its root matches a pin, its issuer chains to that root, and
 * both are for the domain asked about; see discover.h.
 *
 * The object came over the network from a server DNS named; nothing in it is
 * believed before this check passes.
 */
#include "dns/discover_verify.h"

#include <string.h>
#include <strings.h>

#include "pki/cert.h"
#include "pki/crypto.h"

static X509 *pem_field(json_t *object, const char *field, struct err *e)
{
	const char *pem = json_string_value(json_object_get(object, field));

	if (pem == NULL) {
		err_set(e, ERR_UNPROC, "object_invalid", "the domain object has no \"%s\" PEM",
		        field);
		return NULL;
	}
	return cert_from_pem(pem, strlen(pem), e);
}

int discover_verify_object(const char *domain, json_t *object, const char pins[][CRYPTO_PIN_MAX],
                           int npins, X509 **root, X509 **issuer, char root_pin[CRYPTO_PIN_MAX],
                           struct err *e)
{
	const char *name = json_string_value(json_object_get(object, "domain"));
	X509 *r = NULL, *i = NULL;
	int k;

	*root = *issuer = NULL;
	if (!json_is_object(object))
		return err_set(e, ERR_UNPROC, "object_invalid", "the domain object is not JSON");
	if (name == NULL || strcasecmp(name, domain) != 0)
		return err_set(e, ERR_UNPROC, "domain_mismatch",
		               "the key server served the object of \"%.64s\", not of %s",
		               name ? name : "(none)", domain);
	r = pem_field(object, "root", e);
	if (r == NULL)
		goto fail_obj;
	i = pem_field(object, "issuer", e);
	if (i == NULL)
		goto fail_obj;
	if (crypto_key_pin(X509_get0_pubkey(r), root_pin, e) < 0)
		goto fail;
	for (k = 0; k < npins; k++)
		if (strcmp(pins[k], root_pin) == 0)
			break;
	if (k == npins) {
		err_set(e, ERR_UNPROC, "pin_mismatch",
		        "the served root's pin %s matches none of the %d pin(s) in _anchor.%s TXT",
		        root_pin, npins, domain);
		goto fail;
	}
	if (cert_verify_chain(i, r, r, e) < 0) {
		char msg[ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", e->msg);
		err_set(e, ERR_UNPROC, "issuer_invalid",
		        "the issuer does not chain to the root: %s", msg);
		goto fail;
	}
	*root = r;
	*issuer = i;
	return 0;
fail_obj:
	if (strcmp(e->code, "object_invalid") != 0) {
		char msg[ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", e->msg);
		err_set(e, ERR_UNPROC, "object_invalid",
		        "the domain object holds a bad certificate: %s", msg);
	}
fail:
	X509_free(r);
	X509_free(i);
	return -1;
}
