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

/* A lowercase LDH host name in A-label form, 1..253 octets, labels 1..63; an xn--
 * label must be the A-label of a valid IDNA2008 U-label (it round-trips). */
int name_check_domain(const char *name, struct err *e);
/*
 * A domain name as somebody else wrote it (an SMTP client, a query argument) in the
 * form name_check_domain accepts: ASCII letters lowercased, one trailing dot removed,
 * then checked; octets >= 0x80 are refused (a HELO name, a policy request: legacy
 * protocols where a U-label can only be a disguise).  Reads at most size - 1 octets'
 * worth: a longer name is refused, never cut.  out is "" on failure.
 */
int name_canon_domain(const char *in, char *out, size_t size, struct err *e);
/*
 * The same where internationalised names are spoken (the key server, anchorctl, an
 * SMTPUTF8 transaction): U-labels (well-formed UTF-8) become A-labels by IDNA2008 with
 * the UTS #46 non-transitional mapping (docs/PROTOCOL.md §1.3).
 */
int name_canon_idn(const char *in, char *out, size_t size, struct err *e);
/*
 * local@domain in canonical form, <= 254 octets: a dot-atom local part (RFC 5321) in
 * lowercase, or one with UTF-8 (RFC 6531) that is well-formed, holds no control,
 * format, separator, private-use or unassigned code point and is already lowercase
 * and NFC; the domain as name_check_domain.
 */
int name_check_address(const char *addr, struct err *e);
/*
 * An address as somebody wrote it into the canonical form name_check_address accepts:
 * the local part lowercased (Unicode default mapping) and NFC, the domain through
 * name_canon_idn.  out is "" on failure.
 */
int name_canon_address(const char *in, char *out, size_t size, struct err *e);
/* True when s holds no octet >= 0x80 (an address that needs no SMTPUTF8). */
int name_is_ascii(const char *s);
int name_is_ascii_n(const char *s, size_t len);
/* True when host equals domain or is a subdomain of it. */
int name_in_domain(const char *host, const char *domain);

#endif
