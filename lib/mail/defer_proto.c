/*
 * defer_proto.c - ANCHOR-DEFER's tokens, commands and reply lines (defer_proto.h).
 * Every parser here reads text a peer sent: lengths are bounded, numbers are plain
 * decimal without signs, and anything else is refused rather than guessed at.
 */
#include "mail/defer_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/text.h"

static const char *const state_names[] = {"PENDING", "ACCEPTED", "REFUSED", "WITHDRAWN", "EXPIRED"};

const char *defer_state_name(enum defer_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

int defer_state_parse(const char *name, enum defer_state *s)
{
	size_t i;

	for (i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
		if (strcasecmp(name, state_names[i]) == 0) {
			*s = (enum defer_state)i;
			return 0;
		}
	return -1;
}

int defer_token_split(const char *token, char id[DEFER_ID_LEN + 1])
{
	if (strlen(token) != DEFER_TOKEN_MAX - 1 || token[DEFER_ID_LEN] != '.' ||
	    !text_is_lower_hex(token, DEFER_ID_LEN) ||
	    !text_is_lower_hex(token + DEFER_ID_LEN + 1, DEFER_MAC_LEN))
		return 0;
	if (id != NULL) {
		memcpy(id, token, DEFER_ID_LEN);
		id[DEFER_ID_LEN] = '\0';
	}
	return 1;
}

/* HMAC-SHA256 over id NUL rcpt NUL peer: the NULs keep ("a", "bc") apart from ("ab", "c"). */
static int token_mac(const unsigned char key[DEFER_SECRET_LEN], const char *id, const char *rcpt,
                     const char *peer, char hex[DEFER_MAC_LEN + 1])
{
	size_t il = strlen(id), rl = strlen(rcpt), pl = strlen(peer), n = il + rl + pl + 2;
	unsigned char *buf = malloc(n + 1), mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0, i;
	int ok;

	if (buf == NULL)
		return -1;
	memcpy(buf, id, il + 1);
	memcpy(buf + il + 1, rcpt, rl + 1);
	memcpy(buf + il + rl + 2, peer, pl + 1); /* the NUL is not hashed: n octets */
	ok =
	    HMAC(EVP_sha256(), key, DEFER_SECRET_LEN, buf, n, mac, &maclen) != NULL && maclen == 32;
	free(buf);
	if (!ok)
		return -1;
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	return 0;
}

int defer_token_make(const unsigned char key[DEFER_SECRET_LEN], const char *id, const char *rcpt,
                     const char *peer, char out[DEFER_TOKEN_MAX], struct err *e)
{
	char mac[DEFER_MAC_LEN + 1];

	if (strlen(id) != DEFER_ID_LEN || !text_is_lower_hex(id, DEFER_ID_LEN))
		return err_set(e, ERR_INPUT, "defer_id", "a held message's id is 32 hex digits");
	if (token_mac(key, id, rcpt, peer, mac) < 0)
		return err_set(e, ERR_INTERNAL, "crypto", "HMAC-SHA256 failed");
	snprintf(out, DEFER_TOKEN_MAX, "%s.%s", id, mac);
	return 0;
}

int defer_token_verify(const unsigned char key[DEFER_SECRET_LEN], const char *token,
                       const char *rcpt, const char *peer)
{
	char id[DEFER_ID_LEN + 1], mac[DEFER_MAC_LEN + 1];

	if (!defer_token_split(token, id) || token_mac(key, id, rcpt, peer, mac) < 0)
		return 0;
	return CRYPTO_memcmp(mac, token + DEFER_ID_LEN + 1, DEFER_MAC_LEN) == 0;
}

/* The next blank-separated word of [*p, end) into out (at most size - 1 octets). */
static int word(const char **p, const char *end, char *out, size_t size)
{
	const char *s = *p;
	size_t n;

	while (s < end && *s == ' ')
		s++;
	for (n = 0; s + n < end && s[n] != ' '; n++)
		if ((unsigned char)s[n] < 33 || (unsigned char)s[n] > 126)
			return -1;
	if (n == 0 || n >= size)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s + n;
	return 0;
}

/* A decimal number of seconds 1..DEFER_WINDOW_MAX. */
static int seconds(const char *w, unsigned *out)
{
	unsigned long v = 0;
	size_t i;

	if (w[0] == '\0' || strlen(w) > 6)
		return -1;
	for (i = 0; w[i]; i++) {
		if (w[i] < '0' || w[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(w[i] - '0');
	}
	if (v < 1 || v > DEFER_WINDOW_MAX)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int at_end(const char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	return p == end;
}

int defer_parse_command(const char *line, size_t len, enum defer_op *op,
                        char token[DEFER_TOKEN_MAX], struct err *e)
{
	const char *p = line, *end = line + len;
	char verb[20];

	*op = DEFER_OP_NONE;
	if (word(&p, end, verb, sizeof(verb)) < 0)
		return 0;
	if (strcasecmp(verb, "DEFER-STATUS") == 0)
		*op = DEFER_OP_STATUS;
	else if (strcasecmp(verb, "DEFER-WITHDRAW") == 0)
		*op = DEFER_OP_WITHDRAW;
	else
		return 0;
	if (word(&p, end, token, DEFER_TOKEN_MAX) < 0 || !at_end(p, end) ||
	    !defer_token_split(token, NULL))
		return err_set(e, ERR_INPUT, "defer_syntax", "Syntax: %s <token>",
		               *op == DEFER_OP_STATUS ? "DEFER-STATUS" : "DEFER-WITHDRAW");
	return 1;
}

int defer_offer_format(const struct defer_offer *o, char *out, size_t size)
{
	int n = snprintf(out, size, "<%s> DEFERRED %s %u %u", o->rcpt, o->token, o->min, o->max);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int defer_offer_parse(const char *text, size_t len, struct defer_offer *o, struct err *e)
{
	const char *p = text, *end = text + len;
	char rcpt[DEFER_RCPT_MAX + 2], kw[12], mn[12], mx[12];
	size_t rl;

	memset(o, 0, sizeof(*o));
	if (word(&p, end, rcpt, sizeof(rcpt)) < 0 || word(&p, end, kw, sizeof(kw)) < 0 ||
	    strcmp(kw, "DEFERRED") != 0 || word(&p, end, o->token, sizeof(o->token)) < 0 ||
	    word(&p, end, mn, sizeof(mn)) < 0 || word(&p, end, mx, sizeof(mx)) < 0 ||
	    !at_end(p, end))
		goto bad;
	rl = strlen(rcpt);
	if (rl < 3 || rcpt[0] != '<' || rcpt[rl - 1] != '>' || !defer_token_split(o->token, NULL) ||
	    seconds(mn, &o->min) < 0 || seconds(mx, &o->max) < 0 || o->min > o->max)
		goto bad;
	memcpy(o->rcpt, rcpt + 1, rl - 2);
	o->rcpt[rl - 2] = '\0';
	return 0;
bad:
	memset(o, 0, sizeof(*o));
	return err_set(e, ERR_INPUT, "defer_offer", "not an ANCHOR-DEFER offer line");
}

int defer_status_format(const struct defer_status *st, char *out, size_t size)
{
	int n;

	if (st->state == DEFER_PENDING)
		n = snprintf(out, size, "PENDING %u %u", st->min, st->max);
	else if (st->state == DEFER_REFUSED)
		n = snprintf(out, size, "REFUSED %s", st->reason[0] ? st->reason : "refused");
	else
		n = snprintf(out, size, "%s", defer_state_name(st->state));
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int defer_status_parse(const char *text, size_t len, struct defer_status *st, struct err *e)
{
	const char *p = text, *end = text + len;
	char w[12], mn[12], mx[12];
	size_t i, n;

	memset(st, 0, sizeof(*st));
	if (word(&p, end, w, sizeof(w)) < 0 || defer_state_parse(w, &st->state) < 0 ||
	    strcmp(w, defer_state_name(st->state)) != 0)
		goto bad;
	if (st->state == DEFER_PENDING) {
		if (word(&p, end, mn, sizeof(mn)) < 0 || word(&p, end, mx, sizeof(mx)) < 0 ||
		    !at_end(p, end) || seconds(mn, &st->min) < 0 || seconds(mx, &st->max) < 0 ||
		    st->min > st->max)
			goto bad;
		return 0;
	}
	if (st->state != DEFER_REFUSED) {
		if (!at_end(p, end))
			goto bad;
		return 0;
	}
	while (p < end && *p == ' ')
		p++;
	for (n = 0, i = 0; p + i < end && n < sizeof(st->reason) - 1; i++)
		st->reason[n++] = (unsigned char)p[i] < 32 || p[i] == 127 ? ' ' : p[i];
	st->reason[n] = '\0';
	return 0;
bad:
	memset(st, 0, sizeof(*st));
	return err_set(e, ERR_INPUT, "defer_status", "not an ANCHOR-DEFER status answer");
}
