/* fuzz_tlog_client.c - the relying party's log checks on arbitrary input: the
 * domain a head claims, and a certificate object's log member against a head. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pki/tlog_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlog_head head = {.size = 7};
	struct err e = {0};
	json_t *cert;
	char *domain;

	snprintf(head.domain, sizeof(head.domain), "example.com");
	domain = tlog_head_peek_domain((const char *)data, size, &e);
	free(domain);
	cert = json_loadb((const char *)data, size, 0, NULL);
	if (cert != NULL) {
		(void)tlog_verify_cert(cert, &head, &e);
		(void)tlog_check_status(cert, &e);
		json_decref(cert);
	}
	return 0;
}
