/* fuzz_ks_route.c - the key server's route body parser (keyserver/route_json.c) on arbitrary
 * JSON: what an admin's PUT, or a user's signed alias request, hands it. */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "route_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ks_route rt;
	struct err e = {0};
	json_t *body;

	if (size < 1)
		return 0;
	/* The first byte picks the scope: an address's route or the domain's default. */
	body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(body)) {
		ks_route_parse(body, (data[0] & 1) ? "example.com" : "alice@example.com",
		               data[0] & 1, &rt, &e);
		ks_route_free(&rt);
	}
	json_decref(body);
	return 0;
}
