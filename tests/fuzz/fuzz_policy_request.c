/*
 * fuzz_policy_request.c - anchor-policyd's reader of the Postfix policy
 * protocol on arbitrary input: lines fed one by one as the server does, each
 * finished request checked, its sender domain taken and its HELO made ready for
 * the query (valid UTF-8 without controls, classified as the HELO itself is).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../policyd/request.c"
#include "mail/csa.h"

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
			char helo[POLICY_VALUE_MAX], c1[DNS_NAME_MAX], c2[DNS_NAME_MAX];
			struct err w1, w2;

			if (policy_sender_domain(&r, domain, sizeof(domain), &e) == 0 &&
			    domain[0] != '\0' && name_check_domain(domain, &e) != 0)
				__builtin_trap();
			if (strlen(domain) >= sizeof(domain) || strchr(domain, '@') != NULL)
				__builtin_trap();
			policy_helo_for_query(r.helo_name, helo, sizeof(helo));
			for (const unsigned char *q = (const unsigned char *)helo; *q; q++) {
				size_t n = utf8_len(q, strlen((const char *)q));

				if (n == 0 || (n == 1 && (*q < 0x20 || *q == 0x7f)))
					__builtin_trap();
				q += n - 1;
			}
			if (csa_helo_classify(r.helo_name, strlen(r.helo_name), c1, sizeof(c1),
			                      &w1) !=
			        csa_helo_classify(helo, strlen(helo), c2, sizeof(c2), &w2) ||
			    strcmp(c1, c2) != 0)
				__builtin_trap();
			policy_request_reset(&r);
		}
		if (strlen(r.why) >= sizeof(r.why))
			__builtin_trap();
		p += len + 1;
	}
	return 0;
}
