/* fuzz_enc_challenge.c - the proof-of-possession envelope as a client opens it
 * (lib/pki/enckey.c, enckey_challenge_open): arbitrary text from the key server, opened
 * with an X25519, a P-256 or an RSA key (the first byte picks).  Every tenth run also
 * seals a nonce from the input and checks that it opens to itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pki/enckey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *keys[3];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned runs;
	uint8_t out[64];
	size_t n = 0;
	struct err e = {0};
	EVP_PKEY *k;

	if (keys[0] == NULL) {
		keys[0] = enckey_generate(ENCKEY_X25519, 0, &e);
		keys[1] = enckey_generate(ENCKEY_P256, 0, &e);
		keys[2] = enckey_generate(ENCKEY_RSA, 2048, &e);
		if (keys[0] == NULL || keys[1] == NULL || keys[2] == NULL)
			abort();
	}
	if (size < 1)
		return 0;
	k = keys[data[0] % 3];
	(void)enckey_challenge_open(k, (const char *)data + 1, size - 1, out, sizeof(out), &n, &e);
	if (++runs % 10 == 0 && size > 1) {
		size_t len = size - 1 > ENCKEY_NONCE_LEN ? ENCKEY_NONCE_LEN : size - 1;
		char *env = enckey_challenge_seal(k, data + 1, len, &e);

		if (env == NULL ||
		    enckey_challenge_open(k, env, strlen(env), out, sizeof(out), &n, &e) < 0 ||
		    n != len || memcmp(out, data + 1, len) != 0)
			abort();
		free(env);
	}
	return 0;
}
