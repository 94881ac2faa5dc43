/*
 * fuzz_csr.c - libFuzzer target for the PKCS#10 and certificate parsers.
 *
 * Input is what an enrollment request's "csr" field, or a registration's
 * "root"/"issuer" field, may carry.  Input that starts like PEM is parsed as
 * it is (exercising the framing checks); anything else is taken as DER and
 * wrapped in PEM first, so that the fuzzer reaches the ASN.1 decoders and the
 * name extraction instead of dying at the base64 layer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* DER as a PEM block with the given label, 64 base64 characters a line. */
static char *wrap_pem(const uint8_t *der, size_t size, const char *label, size_t *len)
{
	char *b64, *out, *p;
	size_t n, i;

	b64 = crypto_b64_encode(der, size);
	if (b64 == NULL)
		return NULL;
	n = strlen(b64);
	out = malloc(n + n / 64 + 2 * strlen(label) + 64);
	if (out != NULL) {
		p = out + sprintf(out, "-----BEGIN %s-----\n", label);
		for (i = 0; i < n; i += 64) {
			size_t chunk = n - i < 64 ? n - i : 64;

			memcpy(p, b64 + i, chunk);
			p += chunk;
			*p++ = '\n';
		}
		p += sprintf(p, "-----END %s-----\n", label);
		*len = (size_t)(p - out);
	}
	free(b64);
	return out;
}

static void try_csr(const char *pem, size_t size)
{
	X509_REQ *req;
	struct err e;

	req = csr_from_pem(pem, size, &e);
	if (req == NULL)
		return;
	(void)csr_verify(req, &e);
	free(csr_requested_name(req, CERT_USER, &e));
	free(csr_requested_name(req, CERT_SERVER, &e));
	X509_REQ_free(req);
}

static void try_cert(const char *pem, size_t size)
{
	char fpr[CERT_FPR_LEN];
	struct err e;
	X509 *cert;

	cert = cert_from_pem(pem, size, &e);
	if (cert == NULL)
		return;
	(void)cert_fingerprint(cert, fpr, &e);
	free(cert_serial_hex(cert));
	(void)cert_not_before(cert);
	(void)cert_not_after(cert);
	X509_free(cert);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *pem;
	size_t len;

	if (size >= 5 && memcmp(data, "-----", 5) == 0) {
		try_csr((const char *)data, size);
		try_cert((const char *)data, size);
		return 0;
	}
	pem = wrap_pem(data, size, "CERTIFICATE REQUEST", &len);
	if (pem != NULL)
		try_csr(pem, len);
	free(pem);
	pem = wrap_pem(data, size, "CERTIFICATE", &len);
	if (pem != NULL)
		try_cert(pem, len);
	free(pem);
	return 0;
}
