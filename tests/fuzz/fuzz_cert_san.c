/*
 * fuzz_cert_san.c - libFuzzer target for the RFC 9598 address reader (lib/pki/cert_san.c).
 *
 * The first byte picks what the rest is: 0, the octets of a SmtpUTF8Mailbox UTF8String
 * (what a request or a foreign certificate carries); otherwise a DER GeneralNames (a
 * subjectAltName's value) whose every entry is read.  What is accepted must be a
 * canonical address (name_check_address), and an accepted SmtpUTF8Mailbox written out
 * again (cert_san_smtputf8_text) must read back as the same address.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "pki/cert_san.h"
#include "pki/name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_canonical(const char *addr)
{
	struct err e = {0};

	if (name_check_address(addr, &e) < 0)
		abort();
}

static void one_mailbox(const uint8_t *data, size_t size)
{
	char out[CERT_SAN_ADDR_MAX], text[CERT_SAN_ADDR_MAX], again[CERT_SAN_ADDR_MAX];
	struct err e = {0};

	if (cert_san_smtputf8_parse(data, size, out, sizeof(out), &e) < 0) {
		if (out[0] != '\0' || e.code[0] == '\0')
			abort();
		return;
	}
	check_canonical(out);
	if (cert_san_smtputf8_text(out, text, sizeof(text), &e) < 0 ||
	    cert_san_smtputf8_parse((const unsigned char *)text, strlen(text), again, sizeof(again),
	                            &e) < 0 ||
	    strcmp(again, out) != 0)
		abort();
}

static void general_names(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	GENERAL_NAMES *gens = d2i_GENERAL_NAMES(NULL, &p, (long)size);
	char out[CERT_SAN_ADDR_MAX];

	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		struct err e = {0};

		if (cert_san_entry_address(sk_GENERAL_NAME_value(gens, i), out, sizeof(out), &e) ==
		    1)
			check_canonical(out);
	}
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] == 0)
		one_mailbox(data + 1, size - 1);
	else
		general_names(data + 1, size - 1);
	return 0;
}
