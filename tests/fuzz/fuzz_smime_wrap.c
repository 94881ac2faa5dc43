/*
 * fuzz_smime_wrap.c - a wrapped group key (lib/mail/smime_wrap): the shape check the key
 * server makes on an upload and the unwrap a member's client does, on arbitrary text.
 * The seeds in corpus/smime_wrap are wraps to the fixed P-256 certificate of
 * tests/fixtures/smime_fixed_key.h (the one fuzz_smime uses), so the fuzzer reaches the
 * decryption.  What must hold: a failure always says why; an unwrap succeeds only on what
 * the check accepts.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mail/smime_wrap.h"
#include "smime_fixed_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	EVP_PKEY *key;
	X509 *cert;
	struct err e = {0}, e2 = {0};
	const char *text = (const char *)data;
	EVP_PKEY *k;
	int ok;

	fixed_key_load(&key, &cert);
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
