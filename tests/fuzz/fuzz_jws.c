/* fuzz_jws.c - the JWS parser and verifier on arbitrary input. */
#include <stddef.h>
#include <stdint.h>

#include "jws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const pins[1] = {"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};
	struct jws_verified v;
	struct err e = {0};

	if (jws_verify((const char *)data, size, pins, 1, &v, &e) == 0)
		jws_verified_free(&v);
	return 0;
}
