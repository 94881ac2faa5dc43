/* fuzz_jws.c - the JWS parser and verifier on arbitrary input, and the compact ->
 * flattened rewriting (jws_flatten) whose output goes to the same verifier. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pki/jws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const pins[1] = {"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};
	struct jws_verified v;
	struct err e = {0};

	char *text, *flat;

	if (jws_verify((const char *)data, size, pins, 1, &v, &e) == 0)
		jws_verified_free(&v);
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if ((flat = jws_flatten(text, &e)) != NULL) {
		if (jws_verify(flat, strlen(flat), pins, 1, &v, &e) == 0)
			jws_verified_free(&v);
		free(flat);
	}
	free(text);
	return 0;
}
