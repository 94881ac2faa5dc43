/*
 * signback.c - sign and give back (PROTOCOL.md §12.6): POST /v1/sign on the control
 * API.  A submitter authenticated with its submission credentials (HTTP Basic, the
 * submission_users table SMTP AUTH uses) hands over a message and gets it back with
 * the relay's DKIM signatures on top (the domain's, and the user's own when the signer
 * holds it), made by the same signer process as the submission path's, under the same
 * rule: the From: address must be the authenticated address.  Nothing is queued and
 * nothing is sent.
 *
 * Why the control API and not an ESMTP extension: the answer is a whole message, which
 * an SMTP reply cannot carry (lines of at most 512 octets, no binary, a client's reply
 * parser in the way); HTTPS carries it as it is, over the TLS the control API already
 * requires, with its connection limits and rate limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "pki/crypto.h"
#include "relayd.h"
#include "signback.h"

#define BASIC_MAX 1024 /* decoded "address:password" */

int relay_signback_basic(const char *header, char user[RELAY_ADDR_MAX], char *pass,
                         size_t pass_size, struct err *e)
{
	uint8_t *raw;
	size_t len = 0;
	char *colon;

	if (header == NULL || strncasecmp(header, "Basic ", 6) != 0 ||
	    strlen(header) > 2 * BASIC_MAX)
		return err_set(e, ERR_AUTH, "unauthorized",
		               "give the submission credentials: Authorization: Basic");
	raw = crypto_b64_decode(header + 6, &len);
	if (raw == NULL || len == 0 || len >= BASIC_MAX || memchr(raw, '\0', len) != NULL ||
	    (colon = memchr(raw, ':', len)) == NULL ||
	    (size_t)((char *)colon - (char *)raw) >= RELAY_ADDR_MAX ||
	    len - (size_t)((char *)colon - (char *)raw) > pass_size) {
		free(raw);
		return err_set(e, ERR_AUTH, "unauthorized", "malformed Basic credentials");
	}
	memcpy(user, raw, (size_t)((char *)colon - (char *)raw));
	user[(char *)colon - (char *)raw] = '\0';
	memcpy(pass, colon + 1, len - (size_t)((char *)colon - (char *)raw) - 1);
	pass[len - (size_t)((char *)colon - (char *)raw) - 1] = '\0';
	explicit_bzero(raw, len);
	free(raw);
	for (char *p = user; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return 0;
}

/* The caller's address, when its credentials are a submission user's. */
static int authenticate(const struct relay_settings *s, const struct http_request *req,
                        char user[RELAY_ADDR_MAX], struct err *e)
{
	struct relayd_users *u;
	char pass[BASIC_MAX];
	int ok;

	if (s->submission_users == NULL || strcmp(s->submission_auth, "required") != 0)
		return err_set(e, ERR_FORBIDDEN, "signback_unavailable",
		               "signing without sending needs submission_auth = required");
	if (relay_signback_basic(req->authorization, user, pass, sizeof(pass), e) < 0)
		return -1;
	/* read per request: the control API's threads share no table with the loop's */
	if ((u = relayd_users_load(s->submission_users, e)) == NULL) {
		explicit_bzero(pass, sizeof(pass));
		log_err(req->reqid, "control: %s", e->msg);
		return err_set(e, ERR_TEMP, "unavailable", "the users table cannot be read");
	}
	ok = relayd_users_check(u, user, pass);
	explicit_bzero(pass, sizeof(pass));
	relayd_users_free(u);
	if (!ok) {
		log_info(req->reqid, "control: sign refused: bad credentials for <%s>", user);
		return err_set(e, ERR_AUTH, "unauthorized", "wrong address or password");
	}
	return 0;
}

/* The message from {"message": "<base64>"}; its From: must be the caller's. */
static uint8_t *message_of(const struct http_request *req, const char *user, size_t *len,
                           struct err *e)
{
	const char *b64 = req->json ? http_json_str(req->json, "message", 1, e) : NULL;
	char from[RELAY_ADDR_MAX] = "";
	uint8_t *msg;

	if (b64 == NULL) {
		if (e->kind == ERR_NONE)
			err_set(e, ERR_INPUT, "bad_request", "the body is {\"message\": <base64>}");
		return NULL;
	}
	if ((msg = crypto_b64_decode(b64, len)) == NULL || *len == 0) {
		free(msg);
		err_set(e, ERR_INPUT, "bad_message",
		        "message must be the raw message in standard base64");
		return NULL;
	}
	/* HTTP is 8-bit clean: a UTF-8 From is read as under SMTPUTF8 (RFC 6532). */
	if (relay_from_address((const char *)msg, *len, 1, from, sizeof(from)) < 0 ||
	    strcasecmp(from, user) != 0) {
		free(msg);
		err_set(e, ERR_FORBIDDEN, "from_not_owned", "From address <%s> not owned by <%s>",
		        from, user);
		return NULL;
	}
	return msg;
}

void relay_signback_route(const struct relay_settings *s, struct relay_signer_client *sc,
                          const struct http_request *req, struct http_response *resp)
{
	char user[RELAY_ADDR_MAX];
	struct err e = {0};
	uint8_t *msg = NULL;
	char *sigs = NULL, *out = NULL, *b64 = NULL;
	size_t len = 0, slen;
	const char *domain;

	if (authenticate(s, req, user, &e) < 0 || (msg = message_of(req, user, &len, &e)) == NULL)
		goto fail;
	domain = strrchr(user, '@') + 1;
	if (relay_signer_sign(sc, (const char *)msg, len, domain, user, &sigs, &e) < 0)
		goto fail;
	slen = strlen(sigs);
	if ((out = malloc(slen + len)) == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	memcpy(out, sigs, slen);
	memcpy(out + slen, msg, len);
	if ((b64 = crypto_b64_encode(out, slen + len)) == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	log_info(req->reqid, "control: signed and given back for <%s> (%zu bytes), not sent", user,
	         len);
	http_reply_json(resp, 200,
	                json_pack("{s:s, s:s, s:s}", "message", b64, "signer", user, "status",
	                          "signed, not sent"));
	goto out;
fail:
	http_reply_error(resp, &e);
	if (e.kind == ERR_AUTH)
		http_add_header(resp, "WWW-Authenticate", "Basic realm=\"anchor-relay\"");
out:
	free(msg);
	free(sigs);
	free(out);
	free(b64);
}
