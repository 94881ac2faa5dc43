/*
 * route_set.c - the signer's side of a route set (ROUTE_SET, ks_signer_proto.h).
 *
 * The HTTPS process has authorised the change and checked its body; the signer checks
 * the body again (it is a request like any other), then stores the route with its log
 * entry in the domain's next batch of changes (group.c, shared with its issuances) and
 * signs the head that covers the batch inside the batch's transaction: entries and head
 * commit together, so a writer is answered only once both are durable, and a crash
 * leaves either the whole batch with its head or none of it.  The answer is signed from
 * the row the batch wrote (no read back) and carries the entry's inclusion proof to the
 * head signed with its batch, built from the entry's leaf and the nodes the batch left in
 * the signer's right edge (log_edge.c): nothing read back for it either.
 */
#include <string.h>

#include "core/log.h"
#include "ks_signer.h"
#include "route_json.h"

char *ks_sign_route_set(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                        const char *name, const char *set_by, const char *route_json, struct err *e)
{
	struct ks_head_ctx hc = {.sg = sg, .sd = sd};
	const struct ks_batch_ops ops = {.before_commit = ks_signer_head_in_batch, .ctx = &hc};
	struct ks_req r = {.ks = &sg->ks, .db = db};
	struct ks_route rt = {0};
	json_t *body = json_loads(route_json, 0, NULL);
	int domain_scope = strcmp(name, sd->d->name) == 0;
	struct ks_route_logged logged = {.seq = -1};
	char *jws = NULL;

	if (!domain_scope && strcmp(ks_address_domain(name), sd->d->name) != 0)
		err_set(e, ERR_INPUT, "address_outside_domain", "%s is not %s or an address of it",
		        name, sd->d->name);
	else if (body == NULL)
		err_set(e, ERR_INPUT, "bad_request", "the route is not JSON");
	else if (ks_route_parse(body, name, domain_scope, &rt, e) == 0 &&
	         ks_route_commit(&r, sg->ks.changes, sd->d, name, &rt, set_by, &ops, &logged, e) ==
	             0 &&
	         (jws = ks_sign_route(db, sd, name, &rt, e)) != NULL)
		jws = ks_route_with_proof(&r, sd->d, &logged, jws);
	ks_route_logged_free(&logged);
	json_decref(body);
	ks_route_free(&rt);
	return jws;
}
