/*
 * signer_proto.h - the wire format between the relay and its signer process
 * (private to signer.c, signer_client.c and their tests).
 *
 * A frame is a 4-byte big-endian length N (1 <= N <= SIGNER_MAX_FRAME)
 * followed by N bytes of body:
 *
 *   type (1 byte)  nfields (1 byte, <= SIGNER_MAX_FIELDS)
 *   then nfields times: length (4 bytes, big-endian) and that many bytes
 *
 * and nothing after the last field.  In a request the type is the op; in an
 * answer it is 0 for success (the op's result fields) or an enum err_kind
 * with two fields, the error's code and message.
 *
 *   op              request fields              answer fields
 *   DOMAIN          domain                      selector, a= ("rsa-sha256")
 *   USER            address                     a=
 *   SIGN_DOMAIN     domain, a=, header data     signature
 *   SIGN_USER       address, a=, header data    signature
 *   REPORT_CHAIN    -                           the report chain (PEM)
 *   SIGN_REPORT     JWS signing input           JWS signature
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

#include "mail/dkim.h"
#include "core/err.h"

#define SIGNER_MAX_FRAME (1024 * 1024)
#define SIGNER_MAX_DATA (SIGNER_MAX_FRAME - 1024) /* header data or a signing input */
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
};

#define SIGNER_OK 0 /* the answer type of a success */

struct signer_field {
	const uint8_t *p;
	size_t len;
};

/* A parsed body; the fields point into it. */
struct signer_msg {
	uint8_t type;
	int n;
	struct signer_field f[SIGNER_MAX_FIELDS];
};

/* The body length a 4-byte frame header announces; ERR_TOOBIG beyond
 * SIGNER_MAX_FRAME, ERR_INPUT for 0. */
int signer_frame_len(const uint8_t hdr[4], size_t *len, struct err *e);
/* Parse a body strictly (ERR_INPUT "bad_frame"). */
int signer_msg_parse(const uint8_t *body, size_t len, struct signer_msg *m, struct err *e);
/* A whole frame (header included), malloc'd, *outlen bytes. */
uint8_t *signer_msg_encode(uint8_t type, const struct signer_field *f, int n, size_t *outlen,
                           struct err *e);
/* A field as a C string (no NUL inside, 1 .. cap-1 bytes). */
int signer_field_str(const struct signer_field *f, char *out, size_t cap, struct err *e);

/* A request checked against its op's rules. */
struct signer_request {
	enum signer_op op;
	char name[SIGNER_NAME_MAX]; /* DOMAIN, SIGN_DOMAIN: domain; USER, SIGN_USER: address */
	enum dkim_alg alg;          /* SIGN_DOMAIN, SIGN_USER */
	const uint8_t *data;        /* SIGN_*: what to sign (points into the body) */
	size_t datalen;
};

/* ERR_INPUT "unknown_op" for an op we do not know, "bad_request" for the
 * wrong fields. */
int signer_request_parse(const uint8_t *body, size_t len, struct signer_request *r, struct err *e);

/* The header data ends with a DKIM-Signature field with a=alg, d=d, s=s
 * and, when i is not NULL, i=i (ERR_FORBIDDEN "not_dkim_data" otherwise). */
int signer_dkim_data_check(const uint8_t *data, size_t len, enum dkim_alg alg, const char *d,
                           const char *s, const char *i, struct err *e);

/* Text fields from a C string (for encoding). */
struct signer_field signer_str(const char *s);

#endif
