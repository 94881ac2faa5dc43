/*
 * csr.h - PKCS#10 certificate requests: parsing, proof of possession, the
 * one name a request asks for, and making one locally.
 *
 * A request is untrusted input from the network; the key server parses and
 * checks it here before cert.h issues anything.  Returned objects and
 * strings are owned by the caller.
 */
#ifndef ANCHOR_CSR_H
#define ANCHOR_CSR_H

#include <stddef.h>

#include <openssl/x509.h>

#include "core/err.h"
#include "pki/cert.h"

X509_REQ *csr_from_pem(const char *pem, size_t len, struct err *e);
/* Signature verifies with the request's own key, and the key is an allowed algorithm. */
int csr_verify(X509_REQ *req, struct err *e);
/* The single name the request asks for: a dNSName SAN, or an address SAN (rfc822Name,
 * or SmtpUTF8Mailbox for a UTF-8 local part, RFC 9598; read by cert_san.c), else the
 * subject emailAddress (user) or CN (server).  Returns a malloc'd canonical string
 * (docs/PROTOCOL.md §1.3): two spellings of one address are one name. */
char *csr_requested_name(X509_REQ *req, enum cert_kind kind, struct err *e);
/* A new key made locally, written 0600, and a CSR for name: what `anchorctl key new` does. */
X509_REQ *csr_make(EVP_PKEY *key, enum cert_kind kind, const char *name, struct err *e);
char *csr_to_pem(X509_REQ *req, struct err *e);

#endif
