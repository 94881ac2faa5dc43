/*
 * fuzz_smime_wrap.c - a wrapped group key (lib/mail/smime_wrap): the shape check the key
 * server makes on an upload and the unwrap a member's client does, on arbitrary text.
 * The seeds in corpus/smime_wrap are wraps to the fixed P-256 certificate below (the
 * one fuzz_smime uses), so the fuzzer reaches the decryption.  What must hold: a failure
 * always says why; an unwrap succeeds only on what the check accepts.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/pem.h>

#include "mail/smime_wrap.h"

static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgs38jclH1jFGSPwOq\n"
                              "lWEeMNNgzsoDHTn+hmqr9XwEJQChRANCAAQsHnTcNgYyP0FrtfDMlwR5nCc84psj\n"
                              "4262eWuSqf7QF4WJhuwOuEGoc/HmxEpLv8/zc8D52DMLYHWeN2LNFPyP\n"
                              "-----END PRIVATE KEY-----\n";

static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBnjCCAUOgAwIBAgIURJgfztlW1RnaNMKk5UxEJIdWXdowCgYIKoZIzj0EAwIw\n"
                               "DzENMAsGA1UEAwwEZnV6ejAgFw0yNjEyMDcyMDIwMDRaGA8yMTI2MTExMzIwMjAw\n"
                               "NFowDzENMAsGA1UEAwwEZnV6ejBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABCwe\n"
                               "dNw2BjI/QWu18MyXBHmcJzzimyPjbrZ5a5Kp/tAXhYmG7A64Qahz8ebESku/z/Nz\n"
                               "wPnYMwtgdZ43Ys0U/I+jezB5MB0GA1UdDgQWBBTv30zHt2cJK9Z5ma36Nxs+lt78\n"
                               "SDAfBgNVHSMEGDAWgBTv30zHt2cJK9Z5ma36Nxs+lt78SDAPBgNVHRMBAf8EBTAD\n"
                               "AQH/MAsGA1UdDwQEAwIDiDAZBgNVHREEEjAQgQ5mdXp6QGZ1enoudGVzdDAKBggq\n"
                               "hkjOPQQDAgNJADBGAiEAhCCBncmJCR+4/ie58wnRFtzHNUFJ3gQTYxDFYI8HTHwC\n"
                               "IQC+aJUa8x2/rnRSeXYdYRPDsbarCEYwgAL8MlN6vKANhQ==\n"
                               "-----END CERTIFICATE-----\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *key;
	static X509 *cert;
	struct err e = {0}, e2 = {0};
	const char *text = (const char *)data;
	EVP_PKEY *k;
	int ok;

	if (key == NULL) {
		BIO *kb = BIO_new_mem_buf(key_pem, -1), *cb = BIO_new_mem_buf(cert_pem, -1);
		key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
		cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
		BIO_free(kb);
		BIO_free(cb);
		if (key == NULL || cert == NULL)
			__builtin_trap();
	}
	ok = smime_wrap_check(text, size, &e) == 0;
	if (!ok && (e.code[0] == '\0' || e.kind == ERR_NONE))
		__builtin_trap();
	k = smime_unwrap_key(text, size, key, cert, &e2);
	if (k == NULL && (e2.code[0] == '\0' || e2.kind == ERR_NONE))
		__builtin_trap();
	if (k != NULL && !ok)
		__builtin_trap();
	EVP_PKEY_free(k);
	return 0;
}
