/*
 * names.h - pure helpers over the names anchorctl handles: addresses,
 * domains, fingerprints, URL path components, and the file names it writes.
 * No I/O here, so that all of it is unit-tested.
 */
#ifndef ANCHORCTL_NAMES_H
#define ANCHORCTL_NAMES_H

#include <stddef.h>

#include "pki/cert.h"

/* Lowercase s in place (ASCII only: names are A-labels); returns s. */
char *ctl_name_lower(char *s);

/* The domain part of local@domain (after the last '@'), or NULL. */
const char *ctl_name_domain_of(const char *address);

/*
 * "sha256:<64 lowercase hex>" from "sha256:<hex>" or bare hex in any case.
 * Returns 0, or -1 when text is not a SHA-256 fingerprint.
 */
int ctl_name_fingerprint(const char *text, char out[CERT_FPR_LEN]);

/*
 * Percent-encode one URL path component: everything but RFC 3986 unreserved
 * characters and the pchar delimiters '@' and ':' is escaped, so a '/' in a
 * name can never reach another path.  Returns a malloc'd string or NULL.
 */
char *ctl_name_path_escape(const char *component);

/* "dir/name" + suffix, dir "" or NULL meaning ".".  Returns malloc'd or NULL. */
char *ctl_name_file(const char *dir, const char *name, const char *suffix);

/*
 * The admin domain for a host: the longest of host and its parent domains
 * for which exists("<suffix>/admin.token", arg) is true.  Returns a pointer
 * into host, or NULL when there is none.
 */
const char *ctl_name_admin_domain(const char *host, int (*exists)(const char *path, void *arg),
                                  void *arg);

#endif
