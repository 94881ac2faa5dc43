/*
 * acme_nonce.c - Replay-Nonce (RFC 8555 §6.5): every ACME answer carries a fresh nonce,
 * and every signed request must use one, once.  Nonces live in the database (not in a
 * node's memory), so a client may get one from any node and spend it on any other, and
 * a replay is refused whichever node it reaches: spending is one DELETE ... RETURNING.
 */
#include <string.h>

#include "acme.h"
#include "pki/crypto.h"
#include "store.h"

int acme_nonce_issue(struct acme_req *q, struct err *e)
{
	uint8_t raw[16];
	char *nonce;
	int rc;

	if (crypto_random_bytes(raw, sizeof(raw), e) < 0)
		return -1;
	if ((nonce = crypto_b64url_encode(raw, sizeof(raw))) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	rc = ks_store_acme_nonce_add(q->r->db, nonce, ACME_NONCE_TTL, e);
	if (rc == 0)
		http_add_header(q->r->resp, "Replay-Nonce", "%s", nonce);
	free(nonce);
	return rc;
}

int acme_nonce_use(struct acme_req *q, const char *nonce, struct err *e)
{
	int found = ks_store_acme_nonce_use(q->r->db, nonce, e);

	if (found < 0)
		return -1;
	if (found == 0)
		return err_set(e, ERR_INPUT, "badNonce",
		               "the nonce is unknown, used already or expired; use the one in "
		               "this answer's Replay-Nonce");
	return 0;
}
