/*
 * cert_san.h - the address a certificate or request names, in either of the two
 * subjectAltName forms RFC 9598 allows for a mailbox:
 *
 *   rfc822Name (IA5String)           an ASCII local part; the domain as A-labels
 *   otherName id-on-SmtpUTF8Mailbox  a local part that holds UTF-8; the domain as
 *     (1.3.6.1.5.5.7.8.9, UTF8String) U-labels (RFC 9598 §3: never A-labels, so that
 *                                      one domain has one spelling there)
 *
 * Every reader goes through cert_san_entry_address and so returns the canonical
 * address of docs/PROTOCOL.md §1.3 (name_canon_address: NFC, lowercase, A-label
 * domain), comparable byte for byte with any other name the project holds.
 */
#ifndef ANCHOR_CERT_SAN_H
#define ANCHOR_CERT_SAN_H

#include <stddef.h>

#include <openssl/x509v3.h>

#include "core/err.h"

/* Room for an address in SmtpUTF8Mailbox form (U-labels can take more octets than
 * the A-labels they come from) and for a canonical one. */
#define CERT_SAN_ADDR_MAX 1024

/* The SAN entry for a canonical address: an rfc822Name when its local part is ASCII,
 * else a SmtpUTF8Mailbox with the domain in U-labels.  NULL (e filled) on failure. */
GENERAL_NAME *cert_san_entry_for(const char *canon, struct err *e);

/* The SmtpUTF8Mailbox text for a canonical address whose local part holds UTF-8:
 * "local@<domain in U-labels>".  An ASCII local part is refused (it is an rfc822Name). */
int cert_san_smtputf8_text(const char *canon, char *out, size_t size, struct err *e);

/* A SmtpUTF8Mailbox value (the octets of its UTF8String) into the canonical address:
 * refused (bad_name) when empty, with a NUL, not well-formed UTF-8, with an ASCII local
 * part (RFC 9598 §3 wants an rfc822Name there), with an A-label in the domain, or when
 * name_canon_address refuses it.  out is "" on failure. */
int cert_san_smtputf8_parse(const unsigned char *data, size_t len, char *out, size_t size,
                            struct err *e);

/*
 * The canonical address of one SAN entry: 1 with out filled for an rfc822Name or a
 * SmtpUTF8Mailbox that is a valid address, 0 for an entry of another kind (a dNSName,
 * another otherName), -1 (e filled) for an address entry that is malformed: a
 * SmtpUTF8Mailbox that is not a UTF8String or that cert_san_smtputf8_parse refuses, an
 * rfc822Name that is not ASCII or holds a NUL.
 */
int cert_san_entry_address(const GENERAL_NAME *g, char *out, size_t size, struct err *e);

/* The first valid address among cert's SAN entries, canonical; "" when none. */
void cert_san_address(X509 *cert, char *out, size_t size);
/* 1 when some SAN entry of cert is the canonical address canon, else 0. */
int cert_san_has_address(X509 *cert, const char *canon);

#endif
