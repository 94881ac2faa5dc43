/*
 * fuzz_ks_signer.c - the key server signer's request parser
 * (keyserver/ks_signer_proto.c, lib/core/frame.c): the input is a stream of
 * frames as the HTTPS process, or anything that reached the socket, would
 * send them.
 *
 * Whatever parses must be canonical (encoding the parsed fields gives back
 * the very frame); a parsed request must respect its op's rules: a lowercase
 * valid domain, a valid name where one is taken, a ttl in bounds, PEM texts
 * without NUL; and a refusal is always ERR_INPUT (or ERR_TOOBIG for the
 * frame header) and leaves nothing to free.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pki/name.h"
#include "ks_signer_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lowercase(const char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			return 0;
	return 1;
}

static void check_request(const struct ks_signer_request *r)
{
	struct err e = {0};

	if (r->op < KS_SIGNER_REGISTER || r->op > KS_SIGNER_ROUTE_SET ||
	    name_check_domain(r->domain, &e) < 0 || !lowercase(r->domain))
		abort();
	if (r->op == KS_SIGNER_TOKEN && (name_check_address(r->name, &e) < 0 ||
	                                 r->ttl < KS_TOKEN_TTL_MIN || r->ttl > KS_TOKEN_TTL_MAX))
		abort();
	if ((r->op == KS_SIGNER_ROUTE || r->op == KS_SIGNER_ROUTE_SET) && !lowercase(r->name))
		abort();
	if (r->op == KS_SIGNER_ACME && strlen(r->token) != 36)
		abort();
	if (r->op == KS_SIGNER_ROUTE_SET && r->token[0] == '\0') /* who set it */
		abort();
	/* An encryption enrollment: a challenge id, an answer, and one authorisation. */
	if (r->op == KS_SIGNER_ENCRYPT && (strlen(r->challenge) != 36 || r->answer[0] == '\0' ||
	                                   (r->token[0] == '\0') == (r->pem[0] == NULL)))
		abort();
	if ((r->op == KS_SIGNER_ENROLL || r->op == KS_SIGNER_SERVER || r->op == KS_SIGNER_RENEW ||
	     r->op == KS_SIGNER_ACME || r->op == KS_SIGNER_ROUTE_SET) &&
	    (r->pem[0] == NULL || strlen(r->pem[0]) == 0 || strlen(r->pem[0]) > KS_SIGNER_PEM_MAX))
		abort();
	if (r->op == KS_SIGNER_REGISTER)
		for (int k = 0; k < 3; k++)
			if (r->pem[k] == NULL || strlen(r->pem[k]) == 0)
				abort();
	if (strlen(r->token) > KS_SIGNER_TOKEN_MAX)
		abort();
}

static void one_frame(const uint8_t *frame, size_t blen)
{
	const uint8_t *body = frame + 4;
	struct ks_signer_request r;
	struct frame_msg m;
	struct err e = {0};
	uint8_t *again;
	size_t len = 0;

	if (frame_parse(body, blen, &m, &e) < 0) {
		if (e.kind != ERR_INPUT || ks_signer_request_parse(body, blen, &r, &e) == 0)
			abort();
		return;
	}
	again = frame_encode(m.type, m.f, m.n, &len, &e);
	if (again == NULL || len != blen + 4 || memcmp(again, frame, len) != 0)
		abort();
	free(again);
	if (ks_signer_request_parse(body, blen, &r, &e) < 0) {
		if (e.kind != ERR_INPUT)
			abort();
		return;
	}
	check_request(&r);
	ks_signer_request_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = {0};
	size_t off = 0, blen;

	while (size - off >= 4) {
		if (frame_len(data + off, &blen, &e) < 0 || blen > size - off - 4)
			break;
		one_frame(data + off, blen);
		off += 4 + blen;
	}
	return 0;
}
