/*
 * acme_router.c - /acme/<domain>/...: the directory, nonces, and the checks every signed
 * request passes before its handler sees it (RFC 8555 §6.2-6.5): content type, JWS form,
 * the url it names, the signature by the right key, the nonce.  Every answer, refusals
 * included, carries a fresh Replay-Nonce and a Link to the directory.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "acme.h"
#include "core/log.h"
#include "pki/name.h"
#include "store.h"

/* The base URL from the Host the client used: the URLs it is given are the ones it can
 * reach, and the url it signs must name this server as it sees it. */
static int base_url(struct acme_req *q, struct err *e)
{
	const char *host = q->r->http->host;

	if (host == NULL || *host == '\0' || strlen(host) > 255)
		return err_set(e, ERR_INPUT, "malformed", "the request has no usable Host header");
	for (const char *p = host; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr(".-:[]", *p) == NULL)
			return err_set(e, ERR_INPUT, "malformed",
			               "the Host header is not a host name");
	if (snprintf(q->base, sizeof(q->base), "https://%s/acme/%s", host, q->d->name) >=
	    ACME_URL_MAX - 64) /* room for the longest resource path */
		return err_set(e, ERR_INPUT, "malformed", "the Host header is too long");
	return 0;
}

static int load_domain(struct acme_req *q, const char *raw, struct err *e)
{
	char lc[DNS_DOMAIN_MAX];
	size_t i;

	if (!q->r->ks->cfg.acme)
		return err_set(e, ERR_NOTFOUND, "malformed", "this key server does not serve ACME");
	for (i = 0; i < sizeof(lc) - 1 && raw[i] != '\0'; i++)
		lc[i] = (char)tolower((unsigned char)raw[i]);
	lc[i] = '\0';
	if (raw[i] != '\0' || name_check_domain(lc, e) < 0)
		return err_set(e, ERR_NOTFOUND, "malformed", "no such domain here");
	if ((q->d = ks_store_domain(q->r->db, lc, e)) == NULL) {
		if (e->kind == ERR_NOTFOUND)
			err_set(e, ERR_NOTFOUND, "malformed", "%s is not served here", lc);
		return -1;
	}
	return base_url(q, e);
}

static void directory(struct acme_req *q, const char *purpose)
{
	char nonce[ACME_URL_MAX], acct[ACME_URL_MAX], order[ACME_URL_MAX], revoke[ACME_URL_MAX];

	acme_url(q, nonce, "new-nonce", NULL, NULL);
	acme_url(q, acct, "new-account", NULL, NULL);
	acme_url(q, order, "new-order", purpose, NULL);
	acme_url(q, revoke, "revoke-cert", NULL, NULL);
	acme_reply(q, 200,
	           json_pack("{s:s, s:s, s:s, s:s, s:{s:b}}", "newNonce", nonce, "newAccount", acct,
	                     "newOrder", order, "revokeCert", revoke, "meta",
	                     "externalAccountRequired", 0),
	           NULL);
}

/* RFC 8555 §7.2: HEAD answers 200, GET 204, both with a nonce and no body. */
static void new_nonce(struct acme_req *q)
{
	int head = strcmp(q->r->http->method, "HEAD") == 0;

	http_reply_text(q->r->resp, head ? 200 : 204, NULL, head ? strdup("") : NULL, 0);
	http_add_header(q->r->resp, "Cache-Control", "no-store");
}

/* The account kid names, with its key: it must be this domain's and valid. */
static EVP_PKEY *account_key(struct acme_req *q, struct err *e)
{
	char prefix[ACME_URL_MAX];
	const char *id;
	int found;

	acme_url(q, prefix, "acct/", NULL, NULL);
	if (strncmp(q->jws.kid, prefix, strlen(prefix)) != 0 ||
	    !ks_is_uuid(id = q->jws.kid + strlen(prefix))) {
		err_set(e, ERR_INPUT, "accountDoesNotExist", "kid is not an account URL of %s",
		        q->d->name);
		return NULL;
	}
	found = ks_store_acme_account_find(q->r->db, q->d->id, "id", id, &q->acct, e);
	if (found <= 0) {
		if (found == 0)
			err_set(e, ERR_INPUT, "accountDoesNotExist", "no such account");
		return NULL;
	}
	q->have_account = 1;
	if (strcmp(q->acct.status, "valid") != 0) {
		err_set(e, ERR_FORBIDDEN, "unauthorized", "the account is %s", q->acct.status);
		return NULL;
	}
	return jwk_to_key(q->acct.jwk, e);
}

/* jwk is for newAccount and revokeCert (by the certificate's key); kid for the rest. */
static int authenticate(struct acme_req *q, int jwk_ok, struct err *e)
{
	EVP_PKEY *key;
	int rc;

	if (q->jws.jwk != NULL && !jwk_ok)
		return err_set(e, ERR_INPUT, "malformed",
		               "this request is signed by an account: use kid, not jwk");
	if (q->jws.jwk == NULL && jwk_ok == 2)
		return err_set(e, ERR_INPUT, "malformed", "newAccount is signed with jwk, not kid");
	key = q->jws.jwk != NULL ? jwk_to_key(q->jws.jwk, e) : account_key(q, e);
	if (key == NULL) {
		if (strcmp(e->code, "bad_jwk") == 0)
			err_set(e, ERR_INPUT, "badPublicKey", "%s", e->msg);
		return -1;
	}
	rc = acme_jws_verify(&q->jws, key, e);
	EVP_PKEY_free(key);
	return rc;
}

static int content_type_ok(const char *ct)
{
	static const char want[] = "application/jose+json";

	return ct != NULL && strncasecmp(ct, want, sizeof(want) - 1) == 0 &&
	       (ct[sizeof(want) - 1] == '\0' || ct[sizeof(want) - 1] == ';');
}

/* Checks every signed request passes; the resource's own rules come after. */
static int check_post(struct acme_req *q, int jwk_ok, struct err *e)
{
	const struct http_request *h = q->r->http;
	char want[ACME_URL_MAX];

	if (!content_type_ok(h->content_type))
		return err_set(e, ERR_MEDIA, "malformed",
		               "a request is sent as application/jose+json");
	if (acme_jws_parse(h->body, h->body_len, &q->jws, e) < 0)
		return -1;
	/* The url names the resource the request was sent to (RFC 8555 §6.4). */
	if (snprintf(want, sizeof(want), "https://%s%s", h->host, h->path) >= (int)sizeof(want))
		return err_set(e, ERR_INPUT, "malformed", "the URL is too long");
	if (strcmp(q->jws.url, want) != 0)
		return err_set(e, ERR_FORBIDDEN, "unauthorized",
		               "the signed url is not the URL the request was sent to");
	/* The signature before the nonce: unsigned junk spends nobody's nonce. */
	if (authenticate(q, jwk_ok, e) < 0)
		return -1;
	return acme_nonce_use(q, q->jws.nonce, e);
}

/* POST resources: seg[2] is the resource, seg[3..] its id and sub-resource. */
static int run_post(struct acme_req *q, struct err *e)
{
	const struct http_request *h = q->r->http;
	const char *res = h->seg[2];
	int n = h->nseg;

	if (n == 3 && strcmp(res, "new-account") == 0)
		return check_post(q, 2, e) < 0 ? -1 : (acme_new_account(q), 0);
	if (n == 3 && strcmp(res, "revoke-cert") == 0)
		return check_post(q, 1, e) < 0 ? -1 : (acme_revoke_cert(q), 0);
	if (check_post(q, 0, e) < 0)
		return -1;
	if (n == 4 && strcmp(res, "acct") == 0)
		acme_account_post(q, h->seg[3]);
	else if ((n == 3 || n == 4) && strcmp(res, "new-order") == 0)
		acme_new_order(q, n == 4 ? h->seg[3] : "mta");
	else if (n == 4 && strcmp(res, "order") == 0)
		acme_order_get(q, h->seg[3]);
	else if (n == 5 && strcmp(res, "order") == 0 && strcmp(h->seg[4], "finalize") == 0)
		acme_order_finalize(q, h->seg[3]);
	else if (n == 4 && strcmp(res, "authz") == 0)
		acme_authz_get(q, h->seg[3]);
	else if (n == 5 && strcmp(res, "chall") == 0)
		acme_challenge_post(q, h->seg[3], h->seg[4]);
	else if (n == 4 && strcmp(res, "cert") == 0)
		acme_cert_get(q, h->seg[3]);
	else
		return err_set(e, ERR_NOTFOUND, "malformed", "no ACME resource at %s", h->path);
	return 0;
}

static int run(struct acme_req *q, struct err *e)
{
	const struct http_request *h = q->r->http;
	int get = strcmp(h->method, "GET") == 0 || strcmp(h->method, "HEAD") == 0;
	int n = h->nseg;

	if (n < 3 || load_domain(q, h->seg[1], e) < 0)
		return n < 3 ? err_set(e, ERR_NOTFOUND, "malformed", "no ACME resource here") : -1;
	if (get && strcmp(h->seg[2], "directory") == 0 && (n == 3 || n == 4)) {
		if (n == 4 && strcmp(h->seg[3], "keyserver") != 0)
			return err_set(e, ERR_NOTFOUND, "malformed", "directories: mta, keyserver");
		directory(q, n == 4 ? h->seg[3] : NULL);
		return 0;
	}
	if (get && n == 3 && strcmp(h->seg[2], "new-nonce") == 0) {
		new_nonce(q);
		return 0;
	}
	if (strcmp(h->method, "POST") != 0) {
		http_add_header(q->r->resp, "Allow", "%s", "POST");
		return err_set(e, ERR_INPUT, "malformed",
		               "ACME resources take POST (POST-as-GET to read them)");
	}
	return run_post(q, e);
}

void ks_acme_dispatch(struct ks_req *r)
{
	struct acme_req q = {.r = r};
	struct err e = {0};
	char dir[ACME_URL_MAX];

	if (run(&q, &e) < 0) {
		acme_problem(&q, &e);
		if (strcmp(r->http->method, "GET") != 0 && strcmp(r->http->method, "HEAD") != 0 &&
		    strcmp(r->http->method, "POST") != 0)
			r->resp->status = 405;
	}
	if (q.d != NULL) {
		struct err ne = {0};
		/* A nonce on every answer, refusals included: badNonce is retried with it. */
		if (acme_nonce_issue(&q, &ne) < 0)
			log_warn(r->http->reqid, "acme: no nonce for this answer: %s", ne.msg);
		acme_url(&q, dir, "directory", NULL, NULL);
		http_add_header(r->resp, "Link", "<%s>;rel=\"index\"", dir);
	}
	acme_jws_free(&q.jws);
	acme_account_clear(&q.acct);
	ks_domain_free(q.d);
}
