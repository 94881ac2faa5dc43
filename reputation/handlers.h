/*
 * handlers.h - anchor-reputation's HTTPS handlers and the helpers they share.
 *
 * router.c picks a handler by method and path; auth.c says who asks, reply.c answers
 * errors.  Each handler parses the request, authorises it, asks the store (store.h,
 * the only SQL) on a database connection borrowed for the length of the request, and
 * answers through the http_reply_* helpers.  Errors are struct err values, answered (and logged) in
 * one place: rep_fail.
 */
#ifndef REP_HANDLERS_H
#define REP_HANDLERS_H

#include "rep.h"

struct rep_req {
	struct rep *rep;
	const struct http_request *http;
	struct http_response *resp;
	struct db *db;
};

void rep_dispatch(const struct http_request *req, struct http_response *resp, void *app);
size_t rep_metrics(char *buf, size_t len, void *app);
int rep_health(void *app, struct err *e);

/* reply.c: answer (and log) an error. */
void rep_fail(struct rep_req *r, const struct err *e);

/* auth.c: the operator's bearer token; 0 when it matches operator_token_hash. */
int rep_auth_operator(struct rep_req *r, struct err *e);

/* auth.c: verify a JWS whose signer must hold a current certificate of an anchored domain,
 * through lib/certauth (rep->auth): the domain named by `claimed` is discovered, the
 * chain must end in one of its pins, the leaf's name (dNSName or rfc822Name) must lie
 * inside it, and the domain's key server must say the certificate is current (not
 * revoked, not superseded).  *signer receives that name.  Reports, delisting requests
 * and federation feeds all come through here. */
int rep_verify_anchored(struct rep *rep, const char *jws, size_t len, const char *claimed,
                        struct jws_verified *v, char signer[320], struct err *e);
/* The payload of a JWS without any check (to learn whom to verify against). */
json_t *rep_jws_peek(const char *jws, size_t len, struct err *e);

/* report.c */
void rep_report_post(struct rep_req *r);
void rep_report_arf_post(struct rep_req *r);
void rep_reporter_register(struct rep_req *r);
void rep_reporter_get(struct rep_req *r, const char *domain);

/* query.c */
void rep_query_get(struct rep_req *r);
int rep_query_get_cached(struct rep *rep, const struct http_request *h, struct http_response *resp);
void rep_query_batch(struct rep_req *r);
void rep_export_csv(struct rep_req *r);

/* delist.c */
void rep_delist_post(struct rep_req *r);
void rep_delist_get(struct rep_req *r, const char *id);
void rep_delist_list(struct rep_req *r);
void rep_delist_decide(struct rep_req *r, const char *id);

/* federation.c */
void rep_federation_feed(struct rep_req *r);
int rep_federation_load_key(struct rep *rep, struct err *e);
struct rep_federation *rep_federation_start(struct rep *rep, struct err *e);
void rep_federation_stop(struct rep_federation *f); /* accepts NULL */

/* standing.c */
struct rep_standing *rep_standing_start(struct rep *rep, struct err *e);
void rep_standing_stop(struct rep_standing *s); /* accepts NULL */
/* One pass: recompute every reporter's standing from agreement with the others. */
int rep_standing_update(struct rep *rep, struct db *db, long long now, int *changed, struct err *e);
void rep_standing_post(struct rep_req *r);

#endif
