/* fuzz_tls_policy.c - the TLS settings parser (tls_profile, tls_ciphers, tls_groups) on
 * arbitrary values: the input is the three values separated by NUL bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pki/tls_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 3), *v[3];
	struct tls_policy_conf c;
	struct tls_policy p;
	struct err e;
	size_t off = 0;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	memset(buf + size, 0, 3);
	for (int i = 0; i < 3; i++) {
		v[i] = buf + off;
		off += strlen(buf + off) + 1;
		if (off > size + 2)
			off = size + 2;
	}
	c = (struct tls_policy_conf){v[0], v[1], v[2]};
	(void)tls_policy_make(&p, &c, &e);
	free(buf);
	return 0;
}
