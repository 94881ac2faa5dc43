/*
 * discover_verify.h - the check of a key server's domain object against the pins
 * published in DNS (PROTOCOL.md §8.2): what makes discovery trustworthy whatever
 * served the object.
 */
#ifndef ANCHOR_DISCOVER_VERIFY_H
#define ANCHOR_DISCOVER_VERIFY_H

#include <jansson.h>
#include <openssl/x509.h>

#include "core/err.h"
#include "pki/crypto.h"

/*
 * Check a served domain object against the pins: root pin in pins, issuer
 * chained to root, domain name equal.  Fills root/issuer/root_pin of *r.
 * Errors: object_invalid, domain_mismatch, pin_mismatch, issuer_invalid.
 */
int discover_verify_object(const char *domain, json_t *object, const char pins[][CRYPTO_PIN_MAX],
                           int npins, X509 **root, X509 **issuer, char root_pin[CRYPTO_PIN_MAX],
                           struct err *e);

#endif
