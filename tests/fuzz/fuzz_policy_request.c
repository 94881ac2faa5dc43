/*
 * fuzz_policy_request.c - anchor-policyd's reader of the Postfix policy
 * protocol on arbitrary input: lines fed one by one as the server does, each
 * finished request checked and its sender domain taken.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../policyd/request.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct policy_request r;

	policy_request_reset(&r);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (policy_request_line(&r, p, len, 100) == 1) {
			struct err e;
			char domain[256];

			if (policy_request_check(&r, &e) == 0) {
				/* a checked request has an address and the right type */
				if (r.bad || strcmp(r.request, "smtpd_access_policy") != 0 ||
				    r.client_address[0] == '\0')
					__builtin_trap();
			} else if (e.code[0] == '\0') {
				__builtin_trap();
			}
			policy_sender_domain(&r, domain, sizeof(domain));
			if (strlen(domain) >= sizeof(domain) || strchr(domain, '@') != NULL)
				__builtin_trap();
			policy_request_reset(&r);
		}
		if (strlen(r.why) >= sizeof(r.why))
			__builtin_trap();
		p += len + 1;
	}
	return 0;
}
