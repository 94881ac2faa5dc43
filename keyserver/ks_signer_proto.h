/*
 * ks_signer_proto.h - the requests the key server's HTTPS process may make of
 * its signer process (private to signer.c, signer_client.c and the tests).
 *
 * Frames as lib/core/frame.h has them: a 4-byte big-endian length, then
 * op (1 byte), nfields (1 byte), and each field as a 4-byte big-endian
 * length and its bytes.  An answer has type 0 and the op's result fields, or
 * an enum err_kind and two fields, the error's code and message, which the
 * HTTPS process passes on to its client as they are.
 *
 *   op        request fields                             answer fields
 *   REGISTER  domain, root PEM, issuer PEM, issuer key    pin, admin token
 *             PEM, policy, mode, operator token
 *   TOKEN     domain, admin token, address, ttl          token, expires
 *   ENROLL    domain, enrollment token, CSR PEM          key id, revocation secret
 *   SERVER    domain, admin token, purpose, CSR PEM      key id
 *   CRL       domain                                     the CRL (DER)
 *   ROUTE     domain, name (address or the domain)       the route answer (JWS)
 *   PUBLISH   domain                                     the newest signed size
 *   ROUTE_SET domain, name, set by, route (JSON)          the route answer (JWS with the
 *                                                        entry's inclusion proof and the
 *                                                        head in its unprotected header)
 *             The signer stores the route and its log entry in its next batch, whose
 *             head it signs in the same transaction (route_set.c): the writer is
 *             answered once entry and head are committed together, with one round
 *             trip to the signer.  The HTTPS process has authorised the change (the
 *             domain admin, or the address's own key for an alias): route rows
 *             authorise no issuance, and it could write them itself all the same.
 *             A head that cannot be signed is logged, the route stands, and the
 *             answer goes out without its proof, as after PUBLISH.
 *   RENEW     domain, the holder's signed request (JWS)   key id, revocation secret
 *                                                        (empty for a server certificate)
 *   ACME      domain, ACME order id (a UUID), CSR PEM    key id
 *   ENCRYPT   domain, challenge id (a UUID), answer,     key id, revocation secret
 *             enrollment token or "", signed request
 *             (JWS) or "": exactly one of the two
 *
 * Every field is checked here before the signer looks at the database: a
 * domain is a valid lowercase domain name, an address a valid lowercase
 * address, a token 0 to KS_SIGNER_TOKEN_MAX bytes other than NUL (it is only
 * hashed), a
 * PEM text (or the JWS of a renewal) 1 to KS_SIGNER_PEM_MAX bytes of printable ASCII and line
 * breaks, policy "isp" or "groups" (or empty for the default), mode "enforce" or "testing" (or
 * empty), ttl a decimal number of seconds in [KS_TOKEN_TTL_MIN, KS_TOKEN_TTL_MAX], purpose "mta",
 * "keyserver" or "signing"; an ACME order id a canonical lowercase UUID.  Anything else is refused
 * with ERR_INPUT "bad_request" ("unknown_op" for an op we do not know) and changes nothing.
 */
#ifndef KS_SIGNER_PROTO_H
#define KS_SIGNER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/frame.h"

#define KS_SIGNER_NAME_MAX 320 /* a domain or an address, with NUL */
#define KS_SIGNER_TOKEN_MAX 1024
#define KS_SIGNER_PEM_MAX (256 * 1024)
#define KS_SIGNER_WORD_MAX 16 /* policy, mode, purpose, ttl */

#define KS_TOKEN_TTL_DEFAULT (7 * 86400)
#define KS_TOKEN_TTL_MIN 60
#define KS_TOKEN_TTL_MAX (30 * 86400)

enum ks_signer_op {
	KS_SIGNER_REGISTER = 1,
	KS_SIGNER_TOKEN,
	KS_SIGNER_ENROLL,
	KS_SIGNER_SERVER,
	KS_SIGNER_CRL,
	KS_SIGNER_ROUTE,
	KS_SIGNER_PUBLISH,
	KS_SIGNER_RENEW,
	KS_SIGNER_ACME,
	KS_SIGNER_ENCRYPT,
	KS_SIGNER_ROUTE_SET,
};

/* A request checked against its op's rules.  Text members point into the
 * request's own copies (ks_signer_request_free releases them). */
struct ks_signer_request {
	enum ks_signer_op op;
	char domain[KS_SIGNER_NAME_MAX];
	char name[KS_SIGNER_NAME_MAX];       /* TOKEN: address; ROUTE: address or domain */
	char token[KS_SIGNER_TOKEN_MAX + 1]; /* TOKEN, SERVER: admin; ENROLL: enrollment;
	                                      * REGISTER: operator (may be ""); ACME: order id;
	                                      * ROUTE_SET: who set it */
	char word[KS_SIGNER_WORD_MAX];       /* SERVER: purpose; REGISTER: policy */
	char mode[KS_SIGNER_WORD_MAX];       /* REGISTER */
	long long ttl;                       /* TOKEN */
	char challenge[37];                  /* ENCRYPT: the challenge's id */
	char answer[KS_SIGNER_WORD_MAX * 8]; /* ENCRYPT: the nonce, base64url */
	char *pem[3]; /* REGISTER: root, issuer, key; ENROLL, SERVER, ACME: the CSR first;
	               * RENEW: the signed request; ENCRYPT: the signed request or NULL;
	               * ROUTE_SET: the route's JSON */
};

/* ERR_INPUT "unknown_op" for an op we do not know, "bad_request" for the wrong fields. */
int ks_signer_request_parse(const uint8_t *body, size_t len, struct ks_signer_request *r,
                            struct err *e);
/* Releases the PEM copies (cleared: one may be a private key); accepts NULL. */
void ks_signer_request_free(struct ks_signer_request *r);
/* The op's name for logs ("?" when unknown). */
const char *ks_signer_op_name(int op);

#endif
