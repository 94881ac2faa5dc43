/*
 * mail.h - what `anchorctl mail` (cmd_mail.c) asks of a domain's key server
 * (mail_lookup.c): a recipient's encryption certificates and the anchored
 * identity of a signer, both checked as `lookup` checks them (PROTOCOL.md
 * §14.3): the domain's pins (in DNS when discovered, else the domain object's),
 * each certificate's chain to the domain's root, its log inclusion proof
 * against a verified head consistent with the one remembered, and its status
 * (a revoked certificate is never used).
 *
 * Which key server: -s URL / ANCHOR_SERVER when set (one server for every
 * domain, as `lookup` does); else each domain's own, found by discovery
 * (lib/dns/discover, PROTOCOL.md §8), whose root pin is then the trust.
 */
#ifndef ANCHORCTL_MAIL_H
#define ANCHORCTL_MAIL_H

#include <openssl/x509.h>

#include "core/err.h"
#include "ctl.h"

/*
 * Append to out the usable encryption certificates of address (the
 * `encryption.certificates` of GET /v1/addresses/{a}: current, unrevoked and
 * allowed to encrypt); why others were left out goes to stderr.  Errors:
 * no_encryption_cert when none is left, and those of the lookup and checks.
 */
int ctl_mail_recipient_certs(const struct ctl *ctl, const char *address, const char *state,
                             STACK_OF(X509) * out, struct err *e);

/*
 * The anchored identity of a signer: its certificate is known to its
 * domain's key server by fingerprint, chains to the domain's root, is in the
 * log, and is not revoked (signer_revoked).  Fills address.
 */
int ctl_mail_signer_check(const struct ctl *ctl, X509 *signer, const char *state, char *address,
                          size_t size, struct err *e);

#endif
