/*
 * peers.c - who is an anchored peer (peers.h): the one lookup behind ANCHOR-DEFER and
 * ANCHOR-PARTIAL.  An address or an EHLO name is no authentication; the key of a TLS
 * certificate is, since the handshake proves its holder has the private key.
 */
#include <string.h>

#include <openssl/x509.h>

#include "core/log.h"
#include "defer.h"
#include "deliver_conn.h"
#include "partial.h"
#include "peers.h"
#include "pki/crypto.h"
#include "relayd.h"

/* One entry of the list, blanks trimmed: *p moved past it and its comma. */
static int next_entry(const char **p, const char **start, size_t *n)
{
	const char *end;

	while (**p == ' ' || **p == '\t')
		(*p)++;
	if (**p == '\0')
		return 0;
	end = strchr(*p, ',');
	*start = *p;
	*n = end != NULL ? (size_t)(end - *p) : strlen(*p);
	*p = end != NULL ? end + 1 : *p + *n;
	while (*n > 0 && ((*start)[*n - 1] == ' ' || (*start)[*n - 1] == '\t'))
		(*n)--;
	return 1;
}

int relay_peers_check(const char *list, struct err *e)
{
	const char *p = list != NULL ? list : "", *ent, *eq;
	size_t n;

	while (next_entry(&p, &ent, &n)) {
		eq = memchr(ent, '=', n);
		if (eq == NULL || eq == ent || (size_t)(eq - ent) >= RELAY_PEER_NAME_MAX ||
		    memchr(ent, ' ', (size_t)(eq - ent)) != NULL ||
		    memchr(ent, '\t', (size_t)(eq - ent)) != NULL ||
		    n - (size_t)(eq - ent) - 1 <= 7 || strncmp(eq + 1, "sha256:", 7) != 0)
			return err_set(
			    e, ERR_INPUT, "bad_config",
			    "anchored_peers: '%.*s' is not name=sha256:PIN (a name of at "
			    "most %d octets)",
			    (int)(n > 80 ? 80 : n), ent, RELAY_PEER_NAME_MAX - 1);
	}
	return 0;
}

int relay_peer_of_pin(const char *list, const char *pin, char *name, size_t size)
{
	const char *p = list != NULL ? list : "", *ent, *eq;
	size_t n, pl = strlen(pin);

	while (next_entry(&p, &ent, &n)) {
		eq = memchr(ent, '=', n);
		if (eq != NULL && eq > ent && (size_t)(eq - ent) < size &&
		    pl == n - (size_t)(eq - ent) - 1 && memcmp(eq + 1, pin, pl) == 0) {
			memcpy(name, ent, (size_t)(eq - ent));
			name[eq - ent] = '\0';
			return 1;
		}
	}
	return 0;
}

int relay_peer_of_ssl(const struct relay_settings *s, SSL *ssl, char *name, size_t size)
{
	X509 *cert;
	char pin[CRYPTO_PIN_MAX];
	struct err e = {0};
	int found = 0;

	name[0] = '\0';
	if (ssl == NULL || s->anchored_peers == NULL || *s->anchored_peers == '\0' ||
	    (cert = SSL_get1_peer_certificate(ssl)) == NULL)
		return 0;
	if (crypto_key_pin(X509_get0_pubkey(cert), pin, &e) == 0)
		found = relay_peer_of_pin(s->anchored_peers, pin, name, size);
	X509_free(cert);
	return found;
}

int relay_peer_require(const struct relay_settings *s, struct relay_dconn *c)
{
	char name[RELAY_PEER_NAME_MAX];

	if (relay_peer_of_ssl(s, c->ssl, name, sizeof(name)))
		return 0;
	relay_dconn_fail(c, "%s is not an anchored peer (no listed certificate key)", c->peer);
	c->polite = 1;
	return -1;
}

/* The client's certificate is checked against the pins after the handshake, not by
 * OpenSSL: any certificate (or none) lets the handshake complete. */
static int accept_any(int ok, X509_STORE_CTX *ctx)
{
	(void)ok;
	(void)ctx;
	return 1;
}

void relayd_peer_tls_prepare(const struct relayd_conn *c, SSL *ssl)
{
	if (c->side == RELAYD_INBOUND && c->d->s->anchored_peers != NULL &&
	    *c->d->s->anchored_peers != '\0') {
		/* a session resumed under SSL_VERIFY_PEER needs a context, or the handshake fails
		 */
		static const unsigned char sid_ctx[] = "anchor-relay inbound";

		SSL_set_session_id_context(ssl, sid_ctx, sizeof(sid_ctx) - 1);
		SSL_set_verify(ssl, SSL_VERIFY_PEER, accept_any);
	}
}

void relayd_peer_tls_ready(struct relayd_conn *c, SSL *ssl)
{
	c->peer[0] = '\0';
	if (c->side != RELAYD_INBOUND)
		return;
	if (!relay_peer_of_ssl(c->d->s, ssl, c->peer, sizeof(c->peer))) {
		log_debug(NULL, "conn %lu: no anchored peer's client certificate%s", c->id,
		          SSL_session_reused(ssl) ? " (resumed session)" : "");
		return;
	}
	if ((c->d->defer != NULL &&
	     smtp_session_add_ext(c->smtp, DEFER_KEYWORD, DEFER_VERBS) < 0) ||
	    smtp_session_add_ext(c->smtp, RELAY_PARTIAL_KEYWORD, RELAY_PARTIAL_VERBS) < 0)
		log_err(NULL, "conn %lu: too many SMTP extensions", c->id);
	log_info(NULL, "conn %lu: anchored peer %s (client certificate key)", c->id, c->peer);
}
