/* fuzz_ks_acme.c - an ACME request body (keyserver/acme_request.c) on arbitrary bytes: the
 * flattened JWS, its protected header (alg, nonce, url, jwk or kid) and payload into
 * struct acme_jws; then what the router does with a parsed one before any database: the
 * jwk as a key (lib/pki/jwk.c), its RFC 7638 thumbprint, and the signature check. */
#include <stddef.h>
#include <stdint.h>

#include "acme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acme_jws j;
	struct err e = {0};
	char thumb[JWK_THUMBPRINT_LEN];
	EVP_PKEY *key;

	if (acme_jws_parse((const char *)data, size, &j, &e) < 0)
		return 0;
	(void)acme_payload_str(&j, "csr");
	if (j.jwk != NULL) {
		(void)jwk_thumbprint(j.jwk, thumb, &e);
		if ((key = jwk_to_key(j.jwk, &e)) != NULL) {
			(void)acme_jws_verify(&j, key, &e);
			EVP_PKEY_free(key);
		}
	}
	acme_jws_free(&j);
	return 0;
}
