/*
 * fuzz_smime.c - the S/MIME input paths (lib/mail/smime): a message read,
 * decrypted with the fixed P-256 key of tests/fixtures/smime_fixed_key.h (the
 * seeds in corpus/smime are encrypted to it, so the fuzzer reaches the content
 * decryption), and verified, on arbitrary bytes.  What must hold: a failure
 * always says why, and a success gives its output.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mail/smime.h"
#include "smime_fixed_key.h"

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
	EVP_PKEY *key;
	X509 *cert;
	struct smime_buf out = {0};
	struct err e = {0};
	X509 *signer = NULL;
	int rc;

	fixed_key_load(&key, &cert);
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
