/*
 * encrypt.c - gateway encryption (encrypt.h, PROTOCOL.md §12.9): the decision
 * for each outbound recipient, the encrypted message, and the inbound refusal
 * of unencrypted mail.
 *
 * Sign, then encrypt, then sign the envelope: the message was DKIM-signed by
 * the signer when it was submitted (outbound.c); that signed message, every
 * field and signature of it, becomes the message/rfc822 entity that is
 * encrypted, so that a recipient who decrypts it verifies the author's
 * signature as if the message had come in the clear.  The outer message a
 * relay on the way sees carries only what delivery and the receiving relay's
 * checks need (From, To, Cc, Date, Message-ID) and a neutral Subject, and is
 * DKIM-signed again, as the From domain, by the signer process: no key ever
 * leaves it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/text.h"
#include "encrypt.h"
#include "http/metrics.h"
#include "mail/header.h"
#include "mail/smime.h"
#include "relayd.h"

#define OUTER_SUBJECT "Subject: [encrypted message]\r\n"
#define INNER_TYPE "Content-Type: message/rfc822\r\n\r\n"

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct relay_enc_stats stats;

static void count(unsigned long long *c)
{
	pthread_mutex_lock(&stats_lock);
	(*c)++;
	pthread_mutex_unlock(&stats_lock);
}

void relay_enc_stats_get(struct relay_enc_stats *out)
{
	pthread_mutex_lock(&stats_lock);
	*out = stats;
	pthread_mutex_unlock(&stats_lock);
}

void relay_enc_metrics(struct metrics_out *o)
{
	struct relay_enc_stats enc;

	relay_enc_stats_get(&enc);
	metrics_put(o,
	            "# HELP anchor_relay_encrypted_total Outbound messages encrypted to their "
	            "recipients' certificates (gateway encryption)\n"
	            "# TYPE anchor_relay_encrypted_total counter\n"
	            "anchor_relay_encrypted_total %llu\n"
	            "# HELP anchor_relay_encryption_deferred_total Delivery attempts of a "
	            "recipient held: its "
	            "domain requires encryption and no usable certificate was found\n"
	            "# TYPE anchor_relay_encryption_deferred_total counter\n"
	            "anchor_relay_encryption_deferred_total %llu\n"
	            "# HELP anchor_relay_encryption_returned_total Recipients returned to the "
	            "sender after encryption_defer_time without a certificate\n"
	            "# TYPE anchor_relay_encryption_returned_total counter\n"
	            "anchor_relay_encryption_returned_total %llu\n"
	            "# HELP anchor_relay_unencrypted_refused_total Inbound messages refused as "
	            "unencrypted (refuse_unencrypted)\n"
	            "# TYPE anchor_relay_unencrypted_refused_total counter\n"
	            "anchor_relay_unencrypted_refused_total %llu\n",
	            enc.encrypted, enc.deferred, enc.returned, enc.refused);
}

/* ------------------------------------------------------------------ outbound */

enum relay_enc_action relay_enc_decide(struct relayd *d, const struct queue_msg *m,
                                       const char *rcpt, struct relay_enc_target *t,
                                       struct relay_rcpt_result *res)
{
	int64_t now = (int64_t)time(NULL);
	struct err e = {0};

	if (relay_enc_lookup(d->verifier, rcpt, d->s->key_status_ttl, t, &e) < 0) {
		/* whether the domain requires encryption is unknown: nothing in the clear */
		res->status = QUEUE_DEFERRED;
		res->code = 0;
		text_printf(res->reply, sizeof(res->reply),
		            "4.7.5 the encryption requirement of %s cannot be read now: %s",
		            t->domain, e.msg);
		return RELAY_ENC_HOLD;
	}
	if (t->req == RELAY_ENC_NONE)
		return RELAY_ENC_CLEAR;
	if (sk_X509_num(t->certs) > 0)
		return RELAY_ENC_ENCRYPT;
	if (t->req == RELAY_ENC_OPPORTUNISTIC) {
		log_info(m->id, "to=<%s>: %s is opportunistic and %s: sent in the clear", rcpt,
		         t->domain, t->why);
		return RELAY_ENC_CLEAR;
	}
	res->code = 0;
	if (now >= m->arrival + (int64_t)d->s->encryption_defer_time) {
		res->status = QUEUE_FAILED;
		text_printf(
		    res->reply, sizeof(res->reply),
		    "5.7.5 %s requires encrypted mail and no usable encryption certificate of "
		    "<%s> was found within %llds (%s): the message was not sent",
		    t->domain, rcpt, d->s->encryption_defer_time, t->why);
		count(&stats.returned);
	} else {
		res->status = QUEUE_DEFERRED;
		text_printf(
		    res->reply, sizeof(res->reply),
		    "4.7.5 %s requires encrypted mail and no usable encryption certificate of "
		    "<%s> was found (%s): held, never sent in the clear",
		    t->domain, rcpt, t->why);
		count(&stats.deferred);
	}
	return RELAY_ENC_HOLD;
}

/* The outer fields copied from the message (each the exact bytes, CRLF). */
static int copy_fields(const char *body, size_t len, char **out, size_t *olen)
{
	static const char *const keep[] = {"From", "To", "Cc", "Date", "Message-ID"};
	struct mail_header h;
	struct mail_field f;
	FILE *fp = open_memstream(out, olen);

	if (fp == NULL)
		return -1;
	mail_header_init(&h, body, len);
	while (mail_header_next(&h, &f) == 1) {
		for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
			if (f.bad == NULL && mail_field_is(&f, keep[i])) {
				fwrite(f.raw, 1, f.rawlen, fp);
				fputs("\r\n", fp);
			}
	}
	fputs(OUTER_SUBJECT, fp);
	return fclose(fp) == 0 ? 0 : -1;
}

/* fields + the S/MIME entity (OpenSSL writes LF line ends) in wire form. */
static char *outer_message(const char *fields, size_t flen, const struct smime_buf *enc,
                           size_t *olen)
{
	char *out = malloc(flen + 2 * enc->len + 1), *p;

	if (out == NULL)
		return NULL;
	memcpy(out, fields, flen);
	p = out + flen;
	for (size_t i = 0; i < enc->len; i++) {
		if (enc->data[i] == '\n' && (i == 0 || enc->data[i - 1] != '\r'))
			*p++ = '\r';
		*p++ = enc->data[i];
	}
	*p = '\0';
	*olen = (size_t)(p - out);
	return out;
}

/* The outer message signed as the From domain, when the signer holds its key. */
static int sign_outer(struct relayd *d, const struct queue_msg *m, const char *body, size_t len,
                      char **msg, size_t *mlen, struct err *e)
{
	char addr[RELAY_ADDR_MAX], *sigs = NULL, *both;
	const char *domain;
	int has;

	if (relay_from_address(body, len, 1, addr, sizeof(addr)) < 0 || addr[0] == '\0')
		snprintf(addr, sizeof(addr), "%s", m->sender);
	for (char *p = addr; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	domain = relay_addr_domain(addr);
	has = *domain ? relay_signer_has_domain(d->signer, domain, e) : 0;
	if (has <= 0)
		return has;
	if (relay_signer_sign(d->signer, *msg, *mlen, domain, addr, &sigs, e) < 0)
		return -1;
	if (asprintf(&both, "%s%s", sigs, *msg) < 0) {
		free(sigs);
		return err_set(e, ERR_TEMP, "nomem", "out of memory");
	}
	free(sigs);
	free(*msg);
	*msg = both;
	*mlen = strlen(both);
	return 0;
}

int relay_enc_message(struct relayd *d, const struct queue_msg *m, const char *body, size_t len,
                      STACK_OF(X509) * certs, char **out, size_t *olen, struct err *e)
{
	struct smime_buf enc = {0};
	enum smime_cipher cipher;
	char *inner = NULL, *fields = NULL;
	size_t ilen = strlen(INNER_TYPE) + len, flen = 0;
	int rc = -1;

	*out = NULL;
	if ((inner = malloc(ilen)) == NULL)
		return err_set(e, ERR_TEMP, "nomem", "out of memory");
	memcpy(inner, INNER_TYPE, strlen(INNER_TYPE));
	memcpy(inner + strlen(INNER_TYPE), body, len);
	if (smime_pick_cipher(certs, &cipher, e) < 0 ||
	    smime_encrypt(inner, ilen, certs, cipher, &enc, e) < 0)
		goto out;
	if (copy_fields(body, len, &fields, &flen) < 0 ||
	    (*out = outer_message(fields, flen, &enc, olen)) == NULL) {
		err_set(e, ERR_TEMP, "nomem", "out of memory");
		goto out;
	}
	if (sign_outer(d, m, body, len, out, olen, e) < 0) {
		free(*out);
		*out = NULL;
		goto out;
	}
	count(&stats.encrypted);
	rc = 0;
out:
	smime_buf_clear(&enc);
	free(fields);
	free(inner);
	return rc;
}

/* ------------------------------------------------------------------ inbound */

static int type_is(const char *v, const char *type)
{
	size_t n = strlen(type);

	while (*v == ' ' || *v == '\t')
		v++;
	return strncasecmp(v, type, n) == 0 &&
	       (v[n] == '\0' || v[n] == ';' || v[n] == ' ' || v[n] == '\t');
}

int relay_enc_is_encrypted(const char *msg, size_t len)
{
	struct mail_field f;
	char *v;
	int yes;

	if (!mail_header_find(msg, len, "Content-Type", &f) ||
	    (v = mail_field_unfold(&f, NULL)) == NULL)
		return 0;
	yes = type_is(v, "application/pkcs7-mime") || type_is(v, "application/x-pkcs7-mime") ||
	      type_is(v, "multipart/encrypted");
	free(v);
	return yes;
}

int relay_enc_inbound_refuses(struct relayd *d, const struct relay_auth *a, const char *msg,
                              size_t len, char *const *rcpts, size_t n, struct smtp_reply *r)
{
	const char *mode = d->s->refuse_unencrypted;

	if (strcmp(mode, "no") == 0 || (strcmp(mode, "anchored") == 0 && !a->sender_anchored) ||
	    relay_enc_is_encrypted(msg, len))
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char *domain = relay_addr_domain(rcpts[i]);
		enum relay_enc_req req = RELAY_ENC_NONE;
		struct err e = {0};

		if (relay_enc_requirement(d->verifier, domain, &req, &e) < 0) {
			relayd_reply_set(r, 451, "4.7.5",
			                 "Cannot read the encryption requirement of %s now, try "
			                 "again later",
			                 domain);
			return 1;
		}
		if (req == RELAY_ENC_REQUIRED) {
			relayd_reply_set(r, 550, "5.7.1",
			                 "%s requires encrypted mail: send it as S/MIME "
			                 "(application/pkcs7-mime) to <%s>",
			                 domain, rcpts[i]);
			count(&stats.refused);
			return 1;
		}
	}
	return 0;
}
