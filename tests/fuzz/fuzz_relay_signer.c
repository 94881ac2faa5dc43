/*
 * fuzz_relay_signer.c - the signer's request parser (relay/signer_proto.c):
 * the input is a stream of frames as a client would send them.
 *
 * Whatever parses must be canonical (encoding the parsed fields gives back
 * the very frame), a parsed request must respect its op's rules, and the
 * DKIM data check must never read out of bounds or accept data that does
 * not name the key.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "signer_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_frame(const uint8_t *frame, size_t blen)
{
	const uint8_t *body = frame + 4;
	struct signer_request r;
	struct frame_msg m;
	struct err e = {0};
	uint8_t *again;
	size_t len = 0;

	if (frame_parse(body, blen, &m, &e) < 0) {
		if (e.kind != ERR_INPUT || signer_request_parse(body, blen, &r, &e) == 0)
			abort();
		return;
	}
	again = frame_encode(m.type, m.f, m.n, &len, &e);
	if (again == NULL || len != blen + 4 || memcmp(again, frame, len) != 0)
		abort();
	free(again);
	if (signer_request_parse(body, blen, &r, &e) < 0) {
		if (e.kind != ERR_INPUT)
			abort();
		return;
	}
	if (r.op < SIGNER_OP_DOMAIN || r.op > SIGNER_OP_SIGN_REPORT ||
	    strlen(r.name) >= SIGNER_NAME_MAX || strchr(r.name, '/') != NULL)
		abort();
	if (r.op == SIGNER_OP_SIGN_DOMAIN &&
	    signer_dkim_data_check(r.data, r.datalen, r.alg, r.name, "sel", NULL, &e) == 0 &&
	    r.datalen < strlen("dkim-signature:"))
		abort();
	if (r.op == SIGNER_OP_SIGN_USER)
		(void)signer_dkim_data_check(r.data, r.datalen, r.alg, strchr(r.name, '@') + 1,
		                             SIGNER_USER_SELECTOR, r.name, &e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = {0};
	size_t off = 0, blen;

	/* The whole input as DKIM header data, too. */
	(void)signer_dkim_data_check(data, size, DKIM_ED25519_SHA256, "example.org", "sel",
	                             size & 1 ? "a@example.org" : NULL, &e);
	while (size - off >= 4) {
		if (frame_len(data + off, &blen, &e) < 0 || blen > size - off - 4)
			break;
		one_frame(data + off, blen);
		off += 4 + blen;
	}
	return 0;
}
