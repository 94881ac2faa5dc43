/*
 * dsn.h - Delivery Status Notification parameters (RFC 3461): the MAIL
 * parameters RET and ENVID, the RCPT parameters NOTIFY and ORCPT, and the
 * xtext encoding they travel in (RFC 3461 §4).
 *
 * The parsers are strict: a value is either exactly what the RFC allows or
 * refused.  ENVID and ORCPT are kept as received (still xtext encoded: safe,
 * printable ASCII without blanks) so that the relay can store them and pass
 * them on unchanged; dsn_xtext_decode() gives the text a report shows.
 */
#ifndef ANCHOR_DSN_H
#define ANCHOR_DSN_H

#include <stddef.h>

#define DSN_ENVID_MAX 100 /* octets of the ENVID value (RFC 3461 §4.4) */
#define DSN_ORCPT_MAX 500 /* octets of the ORCPT value (RFC 3461 §4.2) */

/* NOTIFY (RFC 3461 §4.1): 0 when the parameter was not given (the relay then reports
 * failures only, as without DSN). */
#define DSN_NOTIFY_NEVER 1u
#define DSN_NOTIFY_SUCCESS 2u
#define DSN_NOTIFY_FAILURE 4u
#define DSN_NOTIFY_DELAY 8u

/* RET (RFC 3461 §4.3). */
enum dsn_ret {
	DSN_RET_NONE = 0, /* not given: headers only, as without DSN */
	DSN_RET_FULL,
	DSN_RET_HDRS,
};

/* 1 when s[0..n) is well-formed xtext: "+" two upper-case hex digits, or a character
 * 33..126 other than "+" and "=". */
int dsn_xtext_valid(const char *s, size_t n);

/* Decode xtext into out (cap octets, NUL-terminated).  -1 when s is not xtext, the text
 * holds anything but printable US-ASCII (a control, 8-bit) or does not fit. */
int dsn_xtext_decode(const char *s, size_t n, char *out, size_t cap);

/* "FULL" / "HDRS", any case.  -1 otherwise. */
int dsn_ret_parse(const char *v, size_t n, enum dsn_ret *out);
const char *dsn_ret_name(enum dsn_ret r); /* "FULL", "HDRS" or "" */

/* ENVID: xtext, 1..DSN_ENVID_MAX octets, decoding to printable ASCII.  1 when valid. */
int dsn_envid_valid(const char *v, size_t n);

/* "NEVER" alone, or a comma list of SUCCESS, FAILURE, DELAY without repeats, any case.
 * -1 otherwise. */
int dsn_notify_parse(const char *v, size_t n, unsigned *out);
/* 1 unless NEVER is combined with another word (RFC 3461 §4.1). */
int dsn_notify_valid(unsigned notify);
/* The NOTIFY value ("SUCCESS,DELAY"), "" for 0. */
void dsn_notify_format(unsigned notify, char *out, size_t cap);

/* ORCPT: addr-type ";" xtext (an atom, then 1.. octets of xtext; at most DSN_ORCPT_MAX).
 * For the type rfc822 the decoded address must be printable ASCII.  1 when valid. */
int dsn_orcpt_valid(const char *v, size_t n);

#endif
