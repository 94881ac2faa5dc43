/* fuzz_relay_signback.c - the sign-and-give-back route's Basic credentials parser
 * (relay/signback.c) on an arbitrary Authorization header. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "signback.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char user[RELAY_ADDR_MAX], pass[1024];
	struct err e = {0};
	char *header = malloc(size + 1);

	if (header == NULL)
		return 0;
	memcpy(header, data, size);
	header[size] = '\0';
	if (relay_signback_basic(header, user, pass, sizeof(pass), &e) == 0 &&
	    (strlen(user) >= sizeof(user) || strlen(pass) >= sizeof(pass)))
		__builtin_trap();
	free(header);
	return 0;
}
