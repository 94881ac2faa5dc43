/*
 * signer_proto.h - the wire format between the relay and its signer process
 * (private to signer.c, signer_client.c and their tests).
 *
 * Frames as lib/core/frame.h has them: a 4-byte big-endian length N
 * (1 <= N <= FRAME_MAX), then type (1 byte), nfields (1 byte, here at most
 * SIGNER_MAX_FIELDS) and each field as a 4-byte big-endian length and its
 * bytes, nothing after the last.  In a request the type is the op; in an
 * answer it is FRAME_OK for success (the op's result fields) or an enum
 * err_kind with two fields, the error's code and message.
 *
 *   op              request fields              answer fields
 *   DOMAIN          domain                      selector, a= ("rsa-sha256")
 *   USER            address                     a=
 *   SIGN_DOMAIN     domain, a=, header data     signature
 *   SIGN_USER       address, a=, header data    signature
 *   REPORT_CHAIN    -                           the report chain (PEM)
 *   SIGN_REPORT     JWS signing input           JWS signature
 *   DECRYPT         domain, S/MIME message      inner entity, certificate fingerprint
 *
 * Names are lowercase and valid (a domain name, a dot-atom address without
 * '/'); the header data must end with a DKIM-Signature field for the key's
 * own d=, s= (and i= for a user key) and a=; a JWS signing input is two
 * base64url parts joined by one dot.  Anything else is refused.
 */
#ifndef ANCHOR_RELAY_SIGNER_PROTO_H
#define ANCHOR_RELAY_SIGNER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/frame.h"
#include "mail/dkim.h"

#define SIGNER_MAX_DATA (FRAME_MAX - 1024) /* header data or a signing input */
#define SIGNER_MAX_FIELDS 4
#define SIGNER_NAME_MAX 320                /* a domain or an address, with NUL */
#define SIGNER_USER_SELECTOR "anchor-user" /* s= of a user-key signature */

enum signer_op {
	SIGNER_OP_DOMAIN = 1,
	SIGNER_OP_USER,
	SIGNER_OP_SIGN_DOMAIN,
	SIGNER_OP_SIGN_USER,
	SIGNER_OP_REPORT_CHAIN,
	SIGNER_OP_SIGN_REPORT,
	SIGNER_OP_DECRYPT,
};

/* A request checked against its op's rules. */
struct signer_request {
	enum signer_op op;
	char name[SIGNER_NAME_MAX]; /* DOMAIN, SIGN_DOMAIN: domain; USER, SIGN_USER: address */
	enum dkim_alg alg;          /* SIGN_DOMAIN, SIGN_USER */
	const uint8_t *data;        /* SIGN_*: what to sign; DECRYPT: the message (in the body) */
	size_t datalen;
};

/* ERR_INPUT "unknown_op" for an op we do not know, "bad_request" for the
 * wrong fields. */
int signer_request_parse(const uint8_t *body, size_t len, struct signer_request *r, struct err *e);

/* The header data ends with a DKIM-Signature field with a=alg, d=d, s=s
 * and, when i is not NULL, i=i (ERR_FORBIDDEN "not_dkim_data" otherwise). */
int signer_dkim_data_check(const uint8_t *data, size_t len, enum dkim_alg alg, const char *d,
                           const char *s, const char *i, struct err *e);

#endif
