/*
 * encrypt.h - gateway encryption (PROTOCOL.md §12.9).
 *
 * Outbound, a recipient whose domain publishes `encryption` opportunistic
 * (and has usable certificates) or required gets the message as S/MIME
 * (RFC 8551), enveloped to every checked encryption certificate of the
 * address: the signed message (DKIM by the signer at submission) goes inside
 * as message/rfc822, the outer message carries a few copied header fields and
 * is DKIM-signed again by the signer.  Required and no usable certificate:
 * deferred (4.7.5), returned after encryption_defer_time (5.7.5); never sent
 * in the clear.  Inbound, refuse_unencrypted refuses plain mail to a local
 * domain that requires encryption.
 *
 *   encrypt_policy.c  what a domain requires, a recipient's certificates (checked
 *                     as the verifier checks keys: pin, chain, log, revocation)
 *   encrypt.c         the per-recipient decision, the encrypted message, inbound
 */
#ifndef ANCHOR_RELAY_ENCRYPT_H
#define ANCHOR_RELAY_ENCRYPT_H

#include <openssl/x509.h>

#include "encrypt_policy.h"
#include "relay.h"

struct relayd;
struct smtp_reply;

enum relay_enc_action { RELAY_ENC_CLEAR = 0, RELAY_ENC_ENCRYPT, RELAY_ENC_HOLD };

/*
 * What to do with one outbound recipient (rcpt, after aliases) of m: send in the
 * clear, encrypt to t->certs, or hold it (then *res is filled: 4.7.5 deferred, or
 * 5.7.5 failed once encryption_defer_time has passed since the message arrived).
 */
enum relay_enc_action relay_enc_decide(struct relayd *d, const struct queue_msg *m,
                                       const char *rcpt, struct relay_enc_target *t,
                                       struct relay_rcpt_result *res);

/*
 * body (a queued message, wire form) as an encrypted message to certs: the outer
 * fields From, To, Cc, Date, Message-ID, Subject "[encrypted message]", and the
 * application/pkcs7-mime entity of "Content-Type: message/rfc822" + body, DKIM-signed
 * by the signer as the From domain (when it holds a key for it).  *out malloc'd.
 */
int relay_enc_message(struct relayd *d, const struct queue_msg *m, const char *body, size_t len,
                      STACK_OF(X509) * certs, char **out, size_t *olen, struct err *e);

/*
 * Inbound: 1 and *r (550 5.7.1) when refuse_unencrypted refuses msg: it is not
 * encrypted (application/pkcs7-mime or multipart/encrypted), its sender is anchored
 * (or refuse_unencrypted = all) and a recipient's domain requires encryption.
 */
int relay_enc_inbound_refuses(struct relayd *d, const struct relay_auth *a, const char *msg,
                              size_t len, char *const *rcpts, size_t n, struct smtp_reply *r);

/* 1 when the message's top-level Content-Type is an encrypted one. */
int relay_enc_is_encrypted(const char *msg, size_t len);

/* Counters for /metrics. */
struct relay_enc_stats {
	unsigned long long encrypted; /* encrypted messages sent (one per recipient group) */
	unsigned long long deferred;  /* recipients deferred for want of a certificate */
	unsigned long long returned;  /* ... returned after encryption_defer_time */
	unsigned long long refused;   /* inbound messages refused as unencrypted */
};
void relay_enc_stats_get(struct relay_enc_stats *out);
/* Their lines for the control API's /metrics. */
struct metrics_out;
void relay_enc_metrics(struct metrics_out *o);

#endif
