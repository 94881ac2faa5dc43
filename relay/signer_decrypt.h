/*
 * signer_decrypt.h - the signer's gateway decryption keys (signer_decrypt.c); private to
 * signer.c, the only process that opens them (PROTOCOL.md §12.11).
 */
#ifndef ANCHOR_RELAY_SIGNER_DECRYPT_H
#define ANCHOR_RELAY_SIGNER_DECRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "mail/smime.h"
#include "pki/cert.h"

struct signer_dec;

/* spec "domain:keyfile:certfile[,...]" (a domain may have several: its older keys open
 * older mail); each key file readable by its owner alone and the certificate's.  An empty
 * spec loads nothing (*out NULL).  ERR_INPUT "bad_setting" naming the entry. */
int signer_decrypt_load(const char *spec, struct signer_dec **out, struct err *e);
void signer_decrypt_free(struct signer_dec *d); /* accepts NULL */

/* The S/MIME message msg decrypted with the first key of domain it is encrypted to:
 * plain filled and fpr the certificate's fingerprint.  ERR_NOTFOUND
 * "no_decryption_key" when domain has none; "not_for_you" when none of them is a
 * recipient; smime_decrypt's codes otherwise. */
int signer_decrypt_run(const struct signer_dec *d, const char *domain, const uint8_t *msg,
                       size_t len, struct smime_buf *plain, char fpr[CERT_FPR_LEN], struct err *e);

#endif
