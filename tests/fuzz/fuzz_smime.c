/*
 * fuzz_smime.c - the S/MIME input paths (lib/mail/smime): a message read,
 * decrypted with a fixed P-256 key (the seeds in corpus/smime are encrypted
 * to it, so the fuzzer reaches the content decryption), and verified, on
 * arbitrary bytes.  What must hold: a failure always says why, and a success
 * gives its output.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/pem.h>

#include "mail/smime.h"

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

static void must_explain(int rc, const struct err *e, const struct smime_buf *b)
{
	if (rc < 0 && (e->code[0] == '\0' || e->kind == ERR_NONE || b->data != NULL))
		__builtin_trap();
	if (rc == 0 && b->data == NULL)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *key;
	static X509 *cert;
	struct smime_buf out = {0};
	struct err e = {0};
	X509 *signer = NULL;
	int rc;

	if (key == NULL) {
		BIO *kb = BIO_new_mem_buf(key_pem, -1), *cb = BIO_new_mem_buf(cert_pem, -1);
		key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
		cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
		BIO_free(kb);
		BIO_free(cb);
		if (key == NULL || cert == NULL)
			__builtin_trap();
	}
	rc = smime_decrypt(data, size, key, cert, &out, &e);
	must_explain(rc, &e, &out);
	/* Decrypt, then verify, as anchorctl does. */
	if (rc == 0 && smime_is_signed(out.data, out.len) == 1) {
		struct smime_buf inner = {0};
		struct err e2 = {0};
		rc = smime_verify(out.data, out.len, NULL, NULL, &inner, &signer, &e2);
		must_explain(rc, &e2, &inner);
		X509_free(signer);
		signer = NULL;
		smime_buf_clear(&inner);
	}
	smime_buf_clear(&out);
	memset(&e, 0, sizeof(e));
	rc = smime_verify(data, size, NULL, NULL, &out, &signer, &e);
	must_explain(rc, &e, &out);
	if ((rc == 0) != (signer != NULL))
		__builtin_trap();
	X509_free(signer);
	smime_buf_clear(&out);
	(void)smime_is_signed(data, size);
	return 0;
}
