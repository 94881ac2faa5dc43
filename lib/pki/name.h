/*
 * name.h - the one definition of a well-formed domain name and mail address.
 *
 * Every place a name arrives from outside (a request, a certificate, a DNS
 * record, an SMTP command, a configuration file) checks it here, so that a
 * name means one name everywhere: lowercase LDH labels in A-label form and
 * dot-atom local parts, comparable byte for byte.  Pure functions, no
 * OpenSSL; errors are a status with a filled struct err.
 */
#ifndef ANCHOR_NAME_H
#define ANCHOR_NAME_H

#include <stddef.h>

#include "core/err.h"

/* A lowercase LDH host name in A-label form, 1..253 octets, labels 1..63. */
int name_check_domain(const char *name, struct err *e);
/*
 * A domain name as somebody else wrote it (an SMTP client, a query argument) in the
 * form name_check_domain accepts: ASCII letters lowercased, one trailing dot removed,
 * then checked.  Reads at most size - 1 octets' worth: a longer name is refused, never
 * cut.  out is "" on failure.
 */
int name_canon_domain(const char *in, char *out, size_t size, struct err *e);
/* local@domain with a dot-atom local part (RFC 5321), domain as above; <= 254 octets. */
int name_check_address(const char *addr, struct err *e);
/* True when host equals domain or is a subdomain of it. */
int name_in_domain(const char *host, const char *domain);

#endif
