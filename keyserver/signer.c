/*
 * signer.c - the key server's signer process: the only holder of the KEK
 * and of the domains' unsealed issuer keys.
 *
 * The HTTPS process (main.c) starts it by executing its own binary again as
 * "anchor-keyserver --signer FD SOCKET [its own arguments]", before any
 * thread exists and again whenever it dies, and talks to it over SOCKET
 * (0600) in the frames of ks_signer_proto.h.  The signer reads the same
 * configuration, opens its own database connections (signer_db_conninfo,
 * so that a deployment may give it a role of its own) and answers each
 * request only after checking it against the database itself (ks_signer.h).
 * It ends when the HTTPS process closes its end of the pipe FD or dies.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/log.h"
#include "ks_signer.h"
#include "log_edge.h"
#include "ks_signer_proto.h"

#define SIGNER_MAX_CONN 32

static int auth_key_derive(struct ks_signer *sg, struct err *e)
{
	static const char label[] = "anchor-keyserver signer seals v1";
	size_t len = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, sg->kek, sizeof(sg->kek),
	              (const unsigned char *)label, sizeof(label) - 1, sg->auth_key,
	              sizeof(sg->auth_key), &len) == NULL ||
	    len != sizeof(sg->auth_key))
		return err_set_ssl(e, ERR_INTERNAL, "internal", "cannot derive the seal key");
	return 0;
}

/* ---- one request ---- */

struct answer {
	struct frame_field f[3];
	int n;
	char a[CRYPTO_UUID_LEN + CRYPTO_PIN_MAX];
	char b[CRYPTO_TOKEN_LEN + 32];
	unsigned char *der; /* malloc'd */
	char *text;         /* malloc'd */
};

struct publish_arg {
	struct ks_signer *sg;
	struct db *db;
	const struct ks_signer_domain *sd;
};

static int publish_round(void *arg, long long *size, struct err *e)
{
	const struct publish_arg *p = arg;

	return ks_publish_heads(p->sg, p->db, p->sd, size, e);
}

/* One head for every change committed before the round (group.c); the requests that
 * wait for a head meanwhile share the next one. */
static int publish(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                   long long *size, struct err *e)
{
	struct publish_arg p = {.sg = sg, .db = db, .sd = sd};

	return ks_group_run(sg->ks.heads, sd->d->id, publish_round, &p, size, e);
}

/* After a change the signer made itself: its head follows; a failure there leaves the
 * change standing (the next publish signs it) and is only logged. */
static void publish_after(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd)
{
	struct err e = {0};
	long long size = 0;

	if (publish(sg, db, sd, &size, &e) < 0)
		log_warn(NULL, "signer: the tree head of %s is not signed yet: %s (%s)",
		         sd->d->name, e.msg, e.code);
}

static int do_register(struct ks_signer *sg, struct db *db, struct ks_signer_request *q,
                       struct answer *a, struct err *e)
{
	struct ks_signer_domain sd = {0};

	if (ks_issue_register(sg, db, q->domain, q->pem, q->word, q->mode, q->token, a->a, a->b,
	                      e) < 0)
		return -1;
	if (ks_signer_domain_open(sg, db, q->domain, &sd, e) == 0) {
		publish_after(sg, db, &sd);
		ks_signer_domain_close(&sd);
	}
	err_clear(e);
	a->f[a->n++] = frame_str(a->a);
	a->f[a->n++] = frame_str(a->b);
	return 0;
}

/* A route answer: signed from the route rows (ROUTE), or after the route was stored with
 * the head that covers it (ROUTE_SET, route_set.c). */
static int route_answer(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                        const struct ks_signer_request *q, struct answer *a, struct err *e)
{
	a->text = q->op == KS_SIGNER_ROUTE_SET
	              ? ks_sign_route_set(sg, db, sd, q->name, q->token, q->pem[0], e)
	              : ks_sign_route(db, sd, q->name, NULL, e);
	if (a->text == NULL)
		return -1;
	a->f[a->n++] = frame_str(a->text);
	return 0;
}

static int do_op(struct ks_signer *sg, struct db *db, struct ks_signer_request *q,
                 const struct ks_signer_domain *sd, struct answer *a, struct err *e)
{
	long long size = 0;
	size_t len = 0;

	switch (q->op) {
	case KS_SIGNER_TOKEN:
		if (ks_signer_check_admin(sg, db, sd, q->token, e) < 0 ||
		    ks_issue_token(sg, db, sd, q->name, q->ttl, a->a, a->b, e) < 0)
			return -1;
		break;
	case KS_SIGNER_ENROLL:
		/* Issuances commit with the head that covers them (issue.c). */
		if (ks_issue_user(sg, db, sd, q->token, q->pem[0], a->a, a->b, e) < 0)
			return -1;
		break;
	case KS_SIGNER_SERVER:
		if (ks_signer_check_admin(sg, db, sd, q->token, e) < 0 ||
		    ks_issue_server(sg, db, sd, q->word, q->pem[0], a->a, e) < 0)
			return -1;
		a->f[a->n++] = frame_str(a->a);
		return 0;
	case KS_SIGNER_RENEW:
		if (ks_issue_renew(sg, db, sd, q->pem[0], a->a, a->b, e) < 0)
			return -1;
		break;
	case KS_SIGNER_ENCRYPT:
		if (ks_issue_encryption(sg, db, sd, q->challenge, q->answer, q->token, q->pem[0],
		                        a->a, a->b, e) < 0)
			return -1;
		break;
	case KS_SIGNER_ACME:
		if (ks_issue_acme(sg, db, sd, q->token, q->pem[0], a->a, e) < 0)
			return -1;
		publish_after(sg, db, sd);
		a->f[a->n++] = frame_str(a->a);
		return 0;
	case KS_SIGNER_CRL:
		if ((a->der = ks_sign_crl(db, sd, &len, e)) == NULL)
			return -1;
		a->f[a->n].p = a->der;
		a->f[a->n++].len = len;
		return 0;
	case KS_SIGNER_ROUTE_SET:
	case KS_SIGNER_ROUTE:
		return route_answer(sg, db, sd, q, a, e);
	case KS_SIGNER_PUBLISH:
		if (publish(sg, db, sd, &size, e) < 0)
			return -1;
		snprintf(a->a, sizeof(a->a), "%lld", size);
		a->f[a->n++] = frame_str(a->a);
		return 0;
	case KS_SIGNER_REGISTER:
		return err_set(e, ERR_INTERNAL, "internal", "register is not a domain op");
	}
	a->f[a->n++] = frame_str(a->a);
	a->f[a->n++] = frame_str(a->b);
	return 0;
}

static void log_refusal(const struct ks_signer_request *q, const struct err *e)
{
	const char *op = ks_signer_op_name(q->op);

	if (e->kind == ERR_INTERNAL || e->kind == ERR_TEMP || e->kind == ERR_FORBIDDEN)
		log_warn(NULL, "signer: %s %s refused: %s (%s)", op, q->domain, e->msg, e->code);
	else
		log_debug(NULL, "signer: %s %s refused: %s (%s)", op, q->domain, e->msg, e->code);
}

static uint8_t *handle(void *ctx, const uint8_t *body, size_t len, size_t *outlen)
{
	struct ks_signer *sg = ctx;
	struct ks_signer_request q;
	struct ks_signer_domain sd = {0};
	struct answer a = {0};
	struct err e = {0};
	struct db *db = NULL;
	uint8_t *out = NULL;
	int rc = -1;

	if (ks_signer_request_parse(body, len, &q, &e) < 0) {
		log_warn(NULL, "signer: a malformed request: %s", e.msg);
		return frame_encode_error(&e, outlen);
	}
	db = db_pool_get(sg->ks.pool);
	if (q.op == KS_SIGNER_REGISTER)
		rc = do_register(sg, db, &q, &a, &e);
	else if (ks_signer_domain_open(sg, db, q.domain, &sd, &e) == 0)
		rc = do_op(sg, db, &q, &sd, &a, &e);
	ks_signer_domain_close(&sd);
	db_pool_put(sg->ks.pool, db);
	if (rc == 0)
		out = frame_encode(FRAME_OK, a.f, a.n, outlen, &e);
	if (out == NULL) {
		log_refusal(&q, &e);
		out = frame_encode_error(&e, outlen);
	}
	ks_signer_request_free(&q);
	OPENSSL_cleanse(a.b, sizeof(a.b)); /* a token or a revocation secret */
	free(a.der);
	free(a.text);
	return out;
}

/* ---- the process ---- */

static int signer_open(struct ks_signer *sg, struct err *e)
{
	const struct ks_settings *s = &sg->ks.cfg;
	const char *conninfo = s->signer_db_conninfo != NULL && *s->signer_db_conninfo
	                           ? s->signer_db_conninfo
	                           : s->db_conninfo;
	int created = 0;
	struct db *db;
	int rc;

	if (keywrap_kek_load(s->issuer_kek_file, 1, sg->kek, &created, e) < 0 ||
	    auth_key_derive(sg, e) < 0)
		return -1;
	if (created)
		log_warn(NULL,
		         "signer: made a new issuer_kek_file %s: every key-server node "
		         "sharing this database needs a copy of it, and it is needed to read "
		         "the issuer keys",
		         s->issuer_kek_file);
	if ((sg->ks.heads = ks_group_new()) == NULL || (sg->ks.changes = ks_group_new()) == NULL ||
	    (sg->memo = ks_signer_memo_new()) == NULL || (sg->ks.edge = ks_log_edge_new()) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if ((sg->ks.pool = db_pool_new(conninfo, (int)s->db_pool_size, e)) == NULL)
		return -1;
	db = db_pool_get(sg->ks.pool);
	rc = ks_signer_seal_legacy(sg, db, e);
	db_pool_put(sg->ks.pool, db);
	return rc;
}

int ks_signer_main(const struct ks_settings *s, const char *socket_path, int parent_fd)
{
	struct ks_signer *sg = OPENSSL_secure_zalloc(sizeof(*sg));
	struct err e = {0};
	int rc = 1;

	/* Die with the parent even if it could not close the pipe (SIGKILL). */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	if (sg == NULL) {
		log_err(NULL, "signer: out of memory");
		return 1;
	}
	sg->ks.cfg = *s; /* borrowed strings: s outlives the signer */
	if (signer_open(sg, &e) < 0) {
		log_err(NULL, "signer: %s", e.msg);
		goto out;
	}
	log_info(NULL, "signer: ready on %s", socket_path);
	rc = frame_serve(socket_path, parent_fd, SIGNER_MAX_CONN, handle, sg, &e);
	if (rc < 0) {
		log_err(NULL, "signer: %s", e.msg);
		rc = 1;
		goto out;
	}
	log_info(NULL, "signer: the key server has gone; stopping");
	if (rc > 0)
		return 0; /* a request still runs: leave it its keys, the process ends */
out:
	db_pool_free(sg->ks.pool);
	ks_group_free(sg->ks.heads);
	ks_group_free(sg->ks.changes);
	ks_log_edge_free(sg->ks.edge);
	ks_signer_memo_free(sg->memo);
	OPENSSL_secure_clear_free(sg, sizeof(*sg));
	return rc;
}
