/*
 * issue.c - certificates come into being here, inside the signer process:
 * enrollment tokens, user enrollment (PKCS#10 proof of possession + one-time
 * token) and server certificates issued by the domain admin, and the
 * registration of a domain.
 *
 * The signer checks every authorisation itself, through its own database
 * connection: the token (or admin token) row must exist, be of this domain
 * and bear the signer's seal; the requested name must lie inside the domain
 * (the root's name constraints), and the certificate is verified against the
 * domain's chain, name constraints included, before it leaves the signer.
 *
 * Each issuance is one change of a batch (group.c): consume the token,
 * supersede the name's current certificate, log both, insert the new one
 * (the batch notifies the other nodes).  Every issuance of the domain queued meanwhile
 * shares the batch's transaction, and the signed tree head covering them all
 * is signed and stored in it too (publish.c), so the lot commits at once.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/name.h"
#include "pki/crypto.h"
#include "pki/jws.h"
#include "core/log.h"
#include "ks_signer.h"
#include "log_batch.h"
#include "renew_policy.h"
#include "store.h"
#include "ks_signer_proto.h"

/* What one issuance needs; filled step by step, released by issuance_free. */
struct issuance {
	const struct ks_signer_domain *sd;
	struct ks_req r; /* the signer's own: db only, for ks_log_append */
	enum cert_kind kind;
	enum cert_purpose purpose;
	X509_REQ *csr;
	EVP_PKEY *pub;      /* without a CSR: the key (an encryption key's), owned */
	const char *device; /* an encryption certificate's device, else NULL */
	char *name;
	X509 *cert;
	char key_id[CRYPTO_UUID_LEN];
	char revocation_secret[CRYPTO_TOKEN_LEN]; /* user certificates: shown once */
	int days;                                 /* validity; 0: cert_days */
	const char *renewal_of;                   /* the key id a renewal replaces, or NULL */
	/* An enrollment by token supersedes the name's current certificate as it claims the
	 * token (token_consume): those superseded, logged by issuance_store. */
	int claimed, nsuperseded;
	struct ks_cert_row *superseded;
};

static void issuance_free(struct issuance *is)
{
	X509_REQ_free(is->csr);
	EVP_PKEY_free(is->pub);
	free(is->name);
	X509_free(is->cert);
	free(is->superseded);
	OPENSSL_cleanse(is->revocation_secret, sizeof(is->revocation_secret));
}

/* Parse and check the request: proof of possession, allowed key, a name inside the domain. */
static int issuance_check_csr(struct issuance *is, const char *csr_pem, struct err *e)
{
	const char *domain = is->sd->d->name;

	if ((is->csr = csr_from_pem(csr_pem, strlen(csr_pem), e)) == NULL ||
	    csr_verify(is->csr, e) < 0 ||
	    (is->name = csr_requested_name(is->csr, is->kind, e)) == NULL)
		return -1;
	if (is->kind == CERT_USER && strcmp(ks_address_domain(is->name), domain) != 0)
		return err_set(e, ERR_INPUT, "address_outside_domain",
		               "the request is for %s, which is not an address of %s", is->name,
		               domain);
	if (is->kind == CERT_SERVER && !name_in_domain(is->name, domain))
		return err_set(e, ERR_INPUT, "address_outside_domain",
		               "the request is for %s, which is not %s or a name under it",
		               is->name, domain);
	return 0;
}

/* Sign, then verify the result against the domain's own chain (name constraints
 * included): a certificate the root would not vouch for never leaves the signer. */
static int issuance_sign(struct ks_signer *sg, struct issuance *is, struct err *e)
{
	struct cert_issue req = {.purpose = is->purpose,
	                         .name = is->name,
	                         .key_id = is->key_id,
	                         .days = is->days > 0 ? is->days : (int)sg->ks.cfg.cert_days};
	struct err why = {0};

	/* A token's claim made the key id already: it superseded the old certificate. */
	if (is->key_id[0] == '\0' && crypto_uuid_v4(is->key_id, e) < 0)
		return -1;
	is->cert = cert_issue_leaf(&req, is->csr ? X509_REQ_get0_pubkey(is->csr) : is->pub,
	                           is->sd->issuer, is->sd->key, e);
	if (is->cert == NULL)
		return -1;
	if (cert_verify_chain(is->cert, is->sd->issuer, is->sd->root, &why) < 0) {
		log_err(NULL,
		        "signer: a certificate for %s does not verify against the chain "
		        "of %s: %s; not issued",
		        is->name, is->sd->d->name, why.msg);
		return err_set(e, ERR_FORBIDDEN, "outside_constraints",
		               "the certificate for %s would not verify against the chain of %s",
		               is->name, is->sd->d->name);
	}
	return 0;
}

/* Supersede the name's current certificate for the purpose (unless the token's claim did),
 * and log each one superseded. */
static int supersede_current(struct issuance *is, struct err *e)
{
	const char *purpose = cert_purpose_name(is->purpose);
	struct ks_cert_row *rows = NULL;
	int n, rc = 0;

	if (is->claimed) {
		rows = is->superseded;
		n = is->nsuperseded;
		is->superseded = NULL;
	} else if ((n = ks_store_cert_supersede(is->r.db, is->sd->d->id, is->name, purpose,
	                                        is->device, is->key_id, &rows, e)) < 0)
		return -1;
	for (int i = 0; rc == 0 && i < n; i++) {
		json_t *details = json_pack("{s:s, s:s, s:s}", "fingerprint", rows[i].fingerprint,
		                            "purpose", purpose, "superseded_by", is->key_id);
		if (details != NULL && is->device != NULL)
			json_object_set_new(details, "device", json_string(is->device));
		struct ks_event ev = {.type = "superseded",
		                      .name = is->name,
		                      .key_id = rows[i].key_id,
		                      .details = details};
		rc = ks_log_append(&is->r, is->sd->d, &ev, NULL, e);
		json_decref(details);
	}
	free(rows);
	return rc;
}

/* The issuance's log entry and the certificate's row, in one statement. */
static int store_issued(struct issuance *is, struct ks_cert_new *c, struct err *e)
{
	json_t *details = json_pack("{s:s, s:s, s:s}", "fingerprint", c->fingerprint, "purpose",
	                            c->purpose, "kind", c->kind);
	struct ks_log_pending p;
	int rc = -1;

	/* A renewal says which key vouched for it, so an auditor can follow the lineage. */
	if (details != NULL && is->renewal_of != NULL)
		json_object_set_new(details, "renewal_of", json_string(is->renewal_of));
	if (details != NULL && is->device != NULL)
		json_object_set_new(details, "device", json_string(is->device));
	struct ks_event ev = {
	    .type = "issued", .name = is->name, .key_id = is->key_id, .details = details};
	if (ks_log_prepare(&is->r, is->sd->d, &ev, &p, e) == 0) {
		c->entry = &p.row;
		rc = ks_log_finish(&is->r, &p, ks_store_cert_insert(is->r.db, c, e));
		c->entry = NULL;
	}
	json_decref(details);
	return rc;
}

/* Inside the caller's transaction: supersede the current certificate, log both, insert
 * the new one (the batch sends the change notice).  A user certificate comes with a fresh
 * revocation secret (stored hashed). */
static int issuance_store(struct issuance *is, struct err *e)
{
	char fpr[CERT_FPR_LEN], secret_hash[CRYPTO_HEX256_LEN];
	char *pem = NULL, *serial = NULL;
	int rc = -1;

	if (cert_fingerprint(is->cert, fpr, e) < 0 || (pem = cert_to_pem(is->cert, e)) == NULL ||
	    (serial = cert_serial_hex(is->cert)) == NULL)
		goto out;
	if (is->kind == CERT_USER) {
		if (crypto_random_token(is->revocation_secret, e) < 0)
			goto out;
		crypto_token_hash(is->revocation_secret, secret_hash);
	}
	/* Two enrollments of one name at once would both see "no current certificate" and
	 * collide on insert: take the domain's lock (the log append needs it anyway) first,
	 * unless this runs in a batch, whose leader holds it. */
	if ((is->r.log_batch == NULL && ks_store_domain_lock(is->r.db, is->sd->d->id, e) < 0) ||
	    supersede_current(is, e) < 0)
		goto out;
	struct ks_cert_new c = {.key_id = is->key_id,
	                        .domain_id = is->sd->d->id,
	                        .kind = is->kind == CERT_USER ? "user" : "server",
	                        .purpose = cert_purpose_name(is->purpose),
	                        .name = is->name,
	                        .algorithm = crypto_key_alg_name(X509_get0_pubkey(is->cert)),
	                        .fingerprint = fpr,
	                        .serial = serial,
	                        .pem = pem,
	                        .not_before = (long long)cert_not_before(is->cert),
	                        .not_after = (long long)cert_not_after(is->cert),
	                        .secret_hash = is->kind == CERT_USER ? secret_hash : NULL,
	                        .device = is->device};
	rc = store_issued(is, &c, e);
out:
	free(pem);
	free(serial);
	return rc;
}

/*
 * Claim the token row and check it against the request; inside the transaction.  The
 * row must bear the seal the signer gave it when the admin asked for it: a row written
 * straight into the database (by a compromised HTTPS process) enrolls nobody.  The
 * claim marks a usable token used and supersedes the name's current certificate in the
 * same statement (one round trip); a refusal below rolls both back with the change.
 */
static int token_consume(struct ks_signer *sg, struct issuance *is, const char *token,
                         struct err *e)
{
	char hash[CRYPTO_HEX256_LEN], want[KS_SEAL_HEX];
	struct ks_token_claim claim = {.domain_id = is->sd->d->id,
	                               .token_hash = hash,
	                               .purpose = cert_purpose_name(is->purpose),
	                               .device = is->device,
	                               .new_key_id = is->key_id};
	struct ks_enroll_token t;
	int found;

	crypto_token_hash(token, hash);
	if (crypto_uuid_v4(is->key_id, e) < 0)
		return -1;
	free(is->superseded);
	is->superseded = NULL;
	found =
	    ks_store_enroll_token_claim(is->r.db, &claim, &t, &is->superseded, &is->nsuperseded, e);
	if (found < 0)
		return -1;
	is->claimed = 1;
	if (found == 0)
		return err_set(e, ERR_NOTFOUND, "token_unknown",
		               "the enrollment token is not known for %s", is->sd->d->name);
	if (t.used)
		return err_set(e, ERR_CONFLICT, "token_used",
		               "the enrollment token was already used");
	if (t.expired)
		return err_set(
		    e, ERR_GONE, "token_expired",
		    "the enrollment token has expired; ask the domain admin for a new one");
	ks_seal_enroll(sg, is->sd, t.address, hash, t.expires, want);
	if (!ks_seal_ok(t.sealed ? t.seal : NULL, want)) {
		log_err(NULL,
		        "signer: an enrollment token row of %s bears no valid seal: it was "
		        "not made by a signer; refused",
		        is->sd->d->name);
		return err_set(e, ERR_FORBIDDEN, "token_unsealed",
		               "the enrollment token was not issued through the key server");
	}
	if (strcmp(t.address, is->name) != 0)
		return err_set(e, ERR_INPUT, "address_mismatch",
		               "the request is for %s but the token was issued for %s", is->name,
		               t.address);
	return 0;
}

struct issue_change {
	struct ks_signer *sg;
	struct issuance *is;
	const char *token;                /* an enrollment: the token to consume */
	struct renewal *rn;               /* a renewal: the request to authorise */
	const struct ks_issue_hook *hook; /* an ACME order: checked before, marked after */
};

static int renewal_authorise(struct ks_signer *sg, struct issuance *is, struct renewal *rn,
                             struct err *e);

/* One issuance inside its batch's transaction (the domain's row locked by the batch). */
static int issue_change(struct ks_req *r, void *arg, struct err *e)
{
	struct issue_change *c = arg;

	c->is->r = *r;
	if ((c->token != NULL && token_consume(c->sg, c->is, c->token, e) < 0) ||
	    (c->rn != NULL && renewal_authorise(c->sg, c->is, c->rn, e) < 0))
		return -1;
	/* The batch's leader holds the domain's lock already, taken before the token's (or
	 * the order's) row, as everywhere (an erasure deletes the address's tokens under the
	 * domain's lock): the other order could deadlock with it. */
	if (c->hook != NULL && c->hook->check(c->hook->arg, c->is->r.db, c->is->name, e) < 0)
		return -1;
	if (issuance_sign(c->sg, c->is, e) < 0 || issuance_store(c->is, e) < 0)
		return -1;
	return c->hook != NULL ? c->hook->done(c->hook->arg, c->is->r.db, c->is->key_id, e) : 0;
}

/* The batch's head, signed in its transaction: the changes and the head that covers
 * them commit together, one commit for the lot. */
int ks_signer_head_in_batch(void *ctx, struct ks_req *r, const struct ks_domain *d, struct err *e)
{
	const struct ks_head_ctx *h = ctx;
	struct ks_log_own own = {0};
	long long size = 0;
	int rc;

	(void)d;
	ks_log_batch_own(r->log_batch, &own.from, &own.to);
	rc = ks_publish_heads_in(h->sg, r->db, h->sd, ks_log_batch_nodes(r->log_batch), &own, &size,
	                         e);
	if (rc == 0 && own.jws != NULL) /* its changes' answers may carry it (route_set.c) */
		ks_log_batch_signed(r->log_batch, size, own.jws);
	free(own.jws);
	return rc;
}

static int issue_in_transaction(struct ks_signer *sg, struct issuance *is, const char *token,
                                struct renewal *rn, const struct ks_issue_hook *hook, struct err *e)
{
	struct ks_req r = is->r;
	struct ks_head_ctx hc = {.sg = sg, .sd = is->sd};
	struct ks_batch_ops ops = {.before_commit = ks_signer_head_in_batch, .ctx = &hc};
	struct issue_change ic = {.sg = sg, .is = is, .token = token, .rn = rn, .hook = hook};
	struct ks_change c = {.fn = issue_change, .arg = &ic, .r = &r};
	int rc = ks_group_change(sg->ks.changes, is->sd->d, &c, &ops, e);

	free(c.head_jws); /* the answer reads its head with the certificate */
	return rc;
}

int ks_issue_user(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                  const char *token, const char *csr_pem, char key_id[CRYPTO_UUID_LEN],
                  char secret[CRYPTO_TOKEN_LEN], struct err *e)
{
	struct issuance is = {.sd = sd, .kind = CERT_USER, .purpose = CERT_PURPOSE_SMIME};
	int rc = -1;

	is.r.ks = &sg->ks;
	is.r.db = db;
	if (issuance_check_csr(&is, csr_pem, e) == 0 &&
	    issue_in_transaction(sg, &is, token, NULL, NULL, e) == 0) {
		memcpy(key_id, is.key_id, CRYPTO_UUID_LEN);
		memcpy(secret, is.revocation_secret, CRYPTO_TOKEN_LEN);
		log_info(NULL, "signer: enrolled %s key_id=%s", is.name, is.key_id);
		rc = 0;
	}
	issuance_free(&is);
	return rc;
}

int ks_issue_server(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                    const char *purpose, const char *csr_pem, char key_id[CRYPTO_UUID_LEN],
                    struct err *e)
{
	return ks_issue_server_hooked(sg, db, sd, purpose, csr_pem, NULL, key_id, e);
}

int ks_issue_server_hooked(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                           const char *purpose, const char *csr_pem,
                           const struct ks_issue_hook *hook, char key_id[CRYPTO_UUID_LEN],
                           struct err *e)
{
	struct issuance is = {.sd = sd, .kind = CERT_SERVER};
	int rc = -1;

	is.r.ks = &sg->ks;
	is.r.db = db;
	if (cert_purpose_parse(purpose, &is.purpose, e) < 0)
		return -1;
	if (is.purpose == CERT_PURPOSE_SMIME)
		return err_set(
		    e, ERR_INPUT, "bad_request",
		    "server certificates are for mta, keyserver or signing; users enroll");
	if (issuance_check_csr(&is, csr_pem, e) == 0 &&
	    issue_in_transaction(sg, &is, NULL, NULL, hook, e) == 0) {
		memcpy(key_id, is.key_id, CRYPTO_UUID_LEN);
		log_info(NULL, "signer: issued %s certificate for %s key_id=%s", purpose, is.name,
		         is.key_id);
		rc = 0;
	}
	issuance_free(&is);
	return rc;
}

/* An encryption certificate for a key that proved itself without a CSR (enc_issue.c):
 * the token (if any) is consumed and the hook checked in the issuance's transaction. */
int ks_issue_user_key(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                      const struct ks_issue_key *k, char key_id[CRYPTO_UUID_LEN],
                      char secret[CRYPTO_TOKEN_LEN], struct err *e)
{
	struct issuance is = {
	    .sd = sd, .kind = CERT_USER, .purpose = CERT_PURPOSE_ENCRYPTION, .device = k->device};
	int rc = -1;

	is.r.ks = &sg->ks;
	is.r.db = db;
	if ((is.name = strdup(k->name)) == NULL || EVP_PKEY_up_ref(k->pub) != 1) {
		issuance_free(&is);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	is.pub = k->pub;
	if (issue_in_transaction(sg, &is, k->token, NULL, k->hook, e) == 0) {
		memcpy(key_id, is.key_id, CRYPTO_UUID_LEN);
		memcpy(secret, is.revocation_secret, CRYPTO_TOKEN_LEN);
		log_info(NULL, "signer: encryption certificate for %s device %s key_id=%s", is.name,
		         is.device, is.key_id);
		rc = 0;
	}
	issuance_free(&is);
	return rc;
}

/* ---- renewal by the current key (PROTOCOL.md §5.3) ---- */

/* What a renewal carries besides the issuance: the verified request and its signer. */
struct renewal {
	struct jws_verified v;
	json_t *payload;
	struct ks_renew_request req;
	char signer_fpr[CERT_FPR_LEN];
	struct ks_renew_row old;
};

static void renewal_free(struct renewal *rn)
{
	json_decref(rn->payload);
	jws_verified_free(&rn->v);
}

/* The JWS verifies to this domain's root (the signer's own copy, not the pins column) and
 * carries a well-formed, fresh renewal request. */
static int renewal_verify(const struct ks_signer_domain *sd, const char *jws, struct renewal *rn,
                          struct err *e)
{
	char pin[CRYPTO_PIN_MAX];
	const char *pins[1] = {pin};

	if (crypto_key_pin(X509_get0_pubkey(sd->root), pin, e) < 0)
		return -1;
	if (jws_verify(jws, strlen(jws), pins, 1, &rn->v, e) < 0) {
		/* An expired key is the one refusal a holder must act on differently: it has
		 * to enroll again.  Say so with its own code rather than a chain failure. */
		if (strcmp(e->code, "jws_signature") == 0 &&
		    strstr(e->msg, X509_verify_cert_error_string(X509_V_ERR_CERT_HAS_EXPIRED)))
			return err_set(e, ERR_FORBIDDEN, "cert_expired",
			               "the signing certificate has expired: an expired key renews "
			               "nothing; enroll again with a token from the domain admin");
		return -1;
	}
	if (rn->v.typ == NULL || strcmp(rn->v.typ, KS_RENEW_JWS_TYP) != 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "a renewal request is a JWS of typ " KS_RENEW_JWS_TYP);
	rn->payload = json_loadb(rn->v.payload, rn->v.payload_len, JSON_REJECT_DUPLICATES, NULL);
	if (ks_renew_request_parse(rn->payload, (long long)time(NULL), &rn->req, e) < 0)
		return -1;
	return cert_fingerprint(rn->v.leaf, rn->signer_fpr, e);
}

/* Inside the transaction: the signing certificate's row, locked, is the name's current
 * one of the purpose, and the domain's limits allow renewing it now. */
static int renewal_authorise(struct ks_signer *sg, struct issuance *is, struct renewal *rn,
                             struct err *e)
{
	const struct ks_settings *cfg = &sg->ks.cfg;
	const struct ks_renew_policy server = {.window = cfg->renew_window,
	                                       .min_interval = cfg->renew_min_interval,
	                                       .max_lifetime = cfg->renew_max_lifetime,
	                                       .cert_days = cfg->cert_days};
	const struct ks_domain *d = is->sd->d;
	const struct ks_renew_limits own = {d->renew_window, d->renew_min_interval,
	                                    d->renew_max_lifetime};
	struct ks_renew_policy p;
	int found;

	/* The domain's own limits, held within the server's here too: a row changed
	 * behind the HTTPS process's checks still cannot loosen them. */
	ks_renew_policy_for(&server, &own, &p);

	/* The domain's lock first (a batch's leader holds it already), as every issuance
	 * takes it before touching a certificate row: two renewals (or a renewal and an enrollment)
	 * of one name then queue on it instead of deadlocking, and the second sees the first's
	 * supersession. */
	if (is->r.log_batch == NULL && ks_store_domain_lock(is->r.db, is->sd->d->id, e) < 0)
		return -1;
	found = ks_store_cert_for_renewal(is->r.db, is->sd->d->id, rn->signer_fpr, &rn->old, e);
	if (found < 0)
		return -1;
	if (found == 0 || strcmp(rn->old.name, is->name) != 0 ||
	    strcmp(rn->old.purpose, cert_purpose_name(is->purpose)) != 0)
		return err_set(e, ERR_FORBIDDEN, "not_current_key",
		               "the request is not signed by a %s certificate of %s",
		               cert_purpose_name(is->purpose), is->name);
	if (strcmp(rn->old.status, "revoked") == 0)
		return err_set(e, ERR_FORBIDDEN, "key_revoked",
		               "the signing key %s is revoked: a revoked key renews nothing",
		               rn->old.key_id);
	if (strcmp(rn->old.status, "current") != 0)
		return err_set(e, ERR_FORBIDDEN, "key_superseded",
		               "the signing key %s was superseded; sign with the current key",
		               rn->old.key_id);
	struct ks_renew_state st = {.now = (long long)time(NULL),
	                            .not_before = rn->old.not_before,
	                            .not_after = rn->old.not_after,
	                            .issued_at = rn->old.issued_at};
	if (ks_renew_check(&p, &st, e) < 0)
		return -1;
	is->days = ks_renew_days(&p);
	is->renewal_of = rn->old.key_id;
	return 0;
}

int ks_issue_renew(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                   const char *jws, char key_id[CRYPTO_UUID_LEN], char secret[CRYPTO_TOKEN_LEN],
                   struct err *e)
{
	struct issuance is = {.sd = sd};
	struct renewal rn = {0};
	int rc = -1;

	is.r.ks = &sg->ks;
	is.r.db = db;
	if (renewal_verify(sd, jws, &rn, e) < 0 ||
	    cert_purpose_parse(rn.req.purpose, &is.purpose, e) < 0)
		goto out;
	is.kind = is.purpose == CERT_PURPOSE_SMIME ? CERT_USER : CERT_SERVER;
	if (issuance_check_csr(&is, rn.req.csr, e) < 0)
		goto out;
	if (strcmp(is.name, rn.req.name) != 0) {
		err_set(e, ERR_INPUT, "name_mismatch",
		        "the request renews %s but its CSR is for %s", rn.req.name, is.name);
		goto out;
	}
	if (issue_in_transaction(sg, &is, NULL, &rn, NULL, e) < 0)
		goto out;
	memcpy(key_id, is.key_id, CRYPTO_UUID_LEN);
	memcpy(secret, is.revocation_secret, CRYPTO_TOKEN_LEN);
	log_info(NULL, "signer: renewed %s %s key_id=%s (was %s)", cert_purpose_name(is.purpose),
	         is.name, is.key_id, rn.old.key_id);
	rc = 0;
out:
	renewal_free(&rn);
	issuance_free(&is);
	return rc;
}

int ks_issue_token(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                   const char *address, long long ttl, char token[CRYPTO_TOKEN_LEN],
                   char expires[32], struct err *e)
{
	char hash[CRYPTO_HEX256_LEN], expbuf[24], seal[KS_SEAL_HEX];
	time_t exp = time(NULL) + (time_t)ttl;
	struct tm tm;
	struct err why = {0};

	if (name_check_address(address, &why) < 0)
		return err_set(e, why.kind, why.code, "%s", why.msg);
	if (strcmp(ks_address_domain(address), sd->d->name) != 0)
		return err_set(e, ERR_INPUT, "address_outside_domain", "%s is not an address of %s",
		               address, sd->d->name);
	if (ttl < KS_TOKEN_TTL_MIN || ttl > KS_TOKEN_TTL_MAX)
		return err_set(e, ERR_INPUT, "bad_request", "a ttl out of bounds");
	if (crypto_random_token(token, e) < 0)
		return -1;
	crypto_token_hash(token, hash);
	snprintf(expbuf, sizeof(expbuf), "%lld", (long long)exp);
	ks_seal_enroll(sg, sd, address, hash, expbuf, seal);
	if (ks_store_enroll_token_add(db, sd->d->id, hash, address, expbuf, seal, e) < 0) {
		OPENSSL_cleanse(token, CRYPTO_TOKEN_LEN);
		return -1;
	}
	gmtime_r(&exp, &tm);
	strftime(expires, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_info(NULL, "signer: enrollment token for %s (hash %.8s) expires %s", address, hash,
	         expires);
	return 0;
}

/* ---- registration ---- */

struct reg {
	const char *domain, *policy, *mode;
	X509 *root, *issuer;
	EVP_PKEY *key;
	char pin[CRYPTO_PIN_MAX];
};

static int reg_parse(struct reg *g, char *const pem[3], struct err *e)
{
	if ((g->root = cert_from_pem(pem[0], strlen(pem[0]), e)) == NULL ||
	    (g->issuer = cert_from_pem(pem[1], strlen(pem[1]), e)) == NULL ||
	    (g->key = crypto_key_private_from_pem(pem[2], strlen(pem[2]), e)) == NULL)
		return -1;
	if (cert_check_domain_set(g->domain, g->root, g->issuer, g->key, e) < 0)
		return -1;
	return crypto_key_pin(X509_get0_pubkey(g->root), g->pin, e);
}

/* The log's first entry: the domain, its pin, its policy. */
static int reg_log(struct ks_signer *sg, struct db *db, const struct reg *g, struct err *e)
{
	struct ks_req r = {.ks = &sg->ks, .db = db};
	struct ks_domain *d = ks_store_domain(db, g->domain, e);
	json_t *details =
	    json_pack("{s:[s], s:s, s:s}", "pins", g->pin, "policy", g->policy, "mode", g->mode);
	struct ks_event ev = {.type = "registered", .details = details};
	int rc = d == NULL ? -1 : ks_log_append(&r, d, &ev, NULL, e);

	json_decref(details);
	ks_domain_free(d);
	return rc;
}

static int reg_store(struct ks_signer *sg, struct db *db, struct reg *g, char *const pem[3],
                     const char *token_hash, struct err *e)
{
	struct ks_signer_domain sd = {0};
	struct ks_domain dn = {.name = (char *)g->domain};
	char seal[KS_SEAL_HEX], admin_seal[KS_SEAL_HEX];
	char *sealed = keywrap_seal(sg->kek, g->domain, g->key, e);

	if (sealed == NULL)
		return -1;
	sd.d = &dn;
	if (ks_cert_fpr_hex(g->root, sd.root_fpr, e) < 0 ||
	    ks_cert_fpr_hex(g->issuer, sd.issuer_fpr, e) < 0 || db_begin(db, e) < 0) {
		free(sealed);
		return -1;
	}
	ks_seal_domain(sg, g->domain, sd.root_fpr, sd.issuer_fpr, seal);
	ks_seal_admin(sg, &sd, token_hash, admin_seal);
	struct ks_domain_new n = {.name = g->domain,
	                          .root_pem = pem[0],
	                          .issuer_pem = pem[1],
	                          .pin = g->pin,
	                          .policy = g->policy,
	                          .mode = g->mode,
	                          .issuer_key_sealed = sealed,
	                          .signer_seal = seal};
	long long id = 0;
	int rc = ks_store_domain_add(db, &n, &id, e);

	free(sealed);
	if (rc < 0) {
		if (e->kind == ERR_CONFLICT)
			err_set(e, ERR_CONFLICT, "conflict", "%s is already registered", g->domain);
		goto fail;
	}
	rc = ks_store_admin_token_add(db, id, token_hash, admin_seal, e);
	if (rc < 0 || reg_log(sg, db, g, e) < 0 || ks_store_notify_change(db, g->domain, e) < 0 ||
	    db_commit(db, e) < 0)
		goto fail;
	return 0;
fail:
	db_rollback(db);
	return -1;
}

int ks_issue_register(struct ks_signer *sg, struct db *db, const char *domain, char *const pem[3],
                      const char *policy, const char *mode, const char *operator_token,
                      char pin[CRYPTO_PIN_MAX], char admin_token[CRYPTO_TOKEN_LEN], struct err *e)
{
	struct reg g = {
	    .domain = domain, .policy = *policy ? policy : "isp", .mode = *mode ? mode : "enforce"};
	char hash[CRYPTO_HEX256_LEN];
	int rc = -1;

	/* The operator's token, checked here against the settings, as the HTTPS process
	 * checks it: a process that never saw it cannot register a domain. */
	if (sg->ks.cfg.operator_token_hash == NULL)
		return err_set(e, ERR_FORBIDDEN, "forbidden", "the operator API is disabled");
	crypto_token_hash(operator_token, hash);
	if (!*operator_token || !crypto_ct_equal(hash, sg->ks.cfg.operator_token_hash, 64))
		return err_set(e, ERR_AUTH, "unauthorized", "the operator token is not valid");
	if (ks_check_policy_words(g.policy, g.mode, e) < 0)
		return -1;
	if (strcmp(g.policy, "corporate") == 0)
		return err_set(e, ERR_INPUT, "bad_policy",
		               "register with isp or groups, then set the corporate policy "
		               "with its corporate_address");
	if (reg_parse(&g, pem, e) == 0 && crypto_random_token(admin_token, e) == 0) {
		crypto_token_hash(admin_token, hash);
		rc = reg_store(sg, db, &g, pem, hash, e);
	}
	if (rc == 0) {
		memcpy(pin, g.pin, CRYPTO_PIN_MAX);
		log_info(NULL, "signer: registered domain %s pin=%s", domain, g.pin);
	} else {
		OPENSSL_cleanse(admin_token, CRYPTO_TOKEN_LEN);
	}
	X509_free(g.root);
	X509_free(g.issuer);
	EVP_PKEY_free(g.key);
	return rc;
}
