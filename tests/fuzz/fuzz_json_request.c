/*
 * fuzz_json_request.c - the request-body check the HTTP layer runs before any
 * handler: content type, size limit, JSON and UTF-8 parsing.  The first byte
 * picks the Content-Type, the rest is the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/http.h"

static const char *const fuzz_types[] = {
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON ; charset=\"UTF-8\"",
    "application/json; charset=latin1",
    "text/plain",
    NULL,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *ctype;
	json_t *j = NULL;
	struct err e;
	int rc;

	if (size == 0)
		return 0;
	ctype = fuzz_types[data[0] % (sizeof(fuzz_types) / sizeof(fuzz_types[0]))];
	rc = http_parse_json_body(ctype, (const char *)data + 1, size - 1, 4096, &j, &e);
	if (rc == 0 && size > 1 && !json_is_object(j))
		__builtin_trap(); /* success must mean an object */
	if (rc < 0 && (j != NULL || e.code[0] == '\0'))
		__builtin_trap(); /* failure must say why and return nothing */
	json_decref(j);
	return 0;
}
