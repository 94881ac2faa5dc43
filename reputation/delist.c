/*
 * delist.c - review requests by the owner of a subject, and their public audit trail.
 *
 * Ownership is proven one of two ways, and nothing else is accepted:
 *   signature  a JWS by a key of an anchored domain (its chain ends in the domain's pin,
 *              its certificate names a host or address inside it) for a domain, signer,
 *              HELO or address subject inside that domain; for a key subject, by that key
 *   csa        the request comes from the IP whose HELO name passes CSA, for the subject
 *              ip:<that IP> or helo:<that name>
 * A request becomes a pending review; the operator decides it (delisted: the subject's
 * bad evidence so far is dropped; rejected: nothing changes).  Requests, outcomes and
 * every event stay readable by anyone, except the requester's contact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki/cert.h"
#include "pki/name.h"
#include "mail/csa.h"
#include "core/log.h"
#include "handlers.h"
#include "store.h"

#define REP_TYPE_DELIST "anchor-delist-request"
#define REP_DELIST_MAX_AGE 86400 /* a signed request is good for a day */

struct proof {
	const char *method;  /* "signature" or "csa" */
	char proven_by[400]; /* signer name, or "HELO <h> from <ip>" */
	char *proof;         /* the JWS, or the CSA result as JSON (malloc'd) */
	struct rep_subject subject;
	const char *reason, *contact;
	json_t *payload; /* the verified payload (signature), owns reason/contact */
};

static void proof_clear(struct proof *p)
{
	free(p->proof);
	json_decref(p->payload);
}

static int owns_subject(const struct rep_subject *s, const char *domain, X509 *leaf, struct err *e)
{
	char fpr[CERT_FPR_LEN];
	const char *host = s->value;

	switch (s->kind) {
	case REP_IP:
		return err_set(e, ERR_FORBIDDEN, "ownership_not_proven",
		               "an IP address is proven by CSA: send the request from that address "
		               "with a HELO name whose CSA record authorises it");
	case REP_KEY:
		if (cert_fingerprint(leaf, fpr, e) < 0)
			return -1;
		if (strcmp(fpr, s->value) != 0)
			return err_set(e, ERR_FORBIDDEN, "ownership_not_proven",
			               "a key subject is proven by a request signed with that key");
		return 0;
	case REP_ADDRESS:
		host = strrchr(s->value, '@') + 1;
		break;
	default:
		break;
	}
	if (!name_in_domain(host, domain))
		return err_set(e, ERR_FORBIDDEN, "ownership_not_proven",
		               "%s is not inside %s, whose key signed the request", s->text,
		               domain);
	return 0;
}

static int prove_by_signature(struct rep_req *r, const char *jws, struct proof *p, struct err *e)
{
	struct jws_verified v = {0};
	json_t *peek = rep_jws_peek(jws, strlen(jws), e);
	const char *domain = json_string_value(json_object_get(peek, "domain"));
	const char *subject, *issued, *type;
	char claimed[256];
	long long t, now = (long long)time(NULL);
	int rc = -1;

	if (peek == NULL)
		return -1;
	if (domain == NULL || strlen(domain) >= sizeof(claimed) ||
	    name_check_domain(domain, e) < 0) {
		json_decref(peek);
		return err_set(e, ERR_INPUT, "bad_request",
		               "the signed request needs \"domain\": the anchored domain whose key "
		               "signs it");
	}
	snprintf(claimed, sizeof(claimed), "%s", domain);
	json_decref(peek);
	if (rep_verify_anchored(r->rep, jws, strlen(jws), claimed, &v, p->proven_by, e) < 0)
		return -1;
	p->payload = json_loadb(v.payload, v.payload_len, JSON_REJECT_DUPLICATES, NULL);
	type = http_json_str(p->payload, "type", 1, e);
	if (type == NULL)
		goto out;
	if (strcmp(type, REP_TYPE_DELIST) != 0) {
		err_set(e, ERR_INPUT, "bad_request", "\"type\" must be \"%s\"", REP_TYPE_DELIST);
		goto out;
	}
	if ((issued = http_json_str(p->payload, "issued", 1, e)) == NULL)
		goto out;
	if (rep_time_parse(issued, &t) < 0 || t > now + r->rep->cfg.max_clock_skew ||
	    t < now - REP_DELIST_MAX_AGE) {
		err_set(e, ERR_INPUT, "stale_request",
		        "\"issued\" must be an RFC 3339 time within the last day");
		goto out;
	}
	if ((subject = http_json_str(p->payload, "subject", 1, e)) == NULL ||
	    rep_subject_parse(subject, &p->subject, e) < 0 ||
	    owns_subject(&p->subject, claimed, v.leaf, e) < 0)
		goto out;
	p->reason = http_json_str(p->payload, "reason", 0, e);
	p->contact = http_json_str(p->payload, "contact", 0, e);
	if (e->kind != ERR_NONE)
		goto out;
	p->method = "signature";
	p->proof = strdup(jws);
	rc = p->proof ? 0 : err_set(e, ERR_INTERNAL, "internal", "out of memory");
out:
	jws_verified_free(&v);
	return rc;
}

static int prove_by_csa(struct rep_req *r, struct proof *p, struct err *e)
{
	json_t *body = r->http->json;
	const char *subject = http_json_str(body, "subject", 1, e);
	const char *helo = http_json_str(body, "helo", 1, e);
	const char *ip = r->http->client_ip;
	struct rep_subject h, a;
	struct csa_result csa;
	struct err ce = {0};

	if (subject == NULL || helo == NULL)
		return -1;
	if (rep_subject_parse(subject, &p->subject, e) < 0 ||
	    rep_subject_make(REP_HELO, helo, &h, e) < 0 || rep_subject_make(REP_IP, ip, &a, e) < 0)
		return -1;
	if (strcmp(p->subject.text, h.text) != 0 && strcmp(p->subject.text, a.text) != 0)
		return err_set(e, ERR_FORBIDDEN, "ownership_not_proven",
		               "CSA proves only %s and %s (this connection's address and the HELO "
		               "name given); use a signed request for %s",
		               a.text, h.text, p->subject.text);
	csa_check(discover_resolver(r->rep->disc), h.value, ip, &csa, &ce);
	if (csa.status != CSA_PASS)
		return err_set(e, ERR_FORBIDDEN, "ownership_not_proven",
		               "CSA for HELO %s from %s gives %s: %s", h.value, ip,
		               csa_status_name(csa.status), csa.reason);
	p->method = "csa";
	snprintf(p->proven_by, sizeof(p->proven_by), "HELO %s from %s", h.value, ip);
	json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "result", "pass", "code", csa.code,
	                        "reason", csa.reason, "helo", h.value, "ip", ip);

	p->proof = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(doc);
	p->reason = http_json_str(body, "reason", 0, e);
	p->contact = http_json_str(body, "contact", 0, e);
	if (e->kind != ERR_NONE)
		return -1;
	return p->proof ? 0 : err_set(e, ERR_INTERNAL, "internal", "out of memory");
}

static long long store_request(struct rep_req *r, struct proof *p, struct err *e)
{
	struct rep_score sc;
	struct rep_delist_new n = {.subject = p->subject.text,
	                           .method = p->method,
	                           .proven_by = p->proven_by,
	                           .proof = p->proof,
	                           .reason = p->reason ? p->reason : "",
	                           .contact = p->contact ? p->contact : ""};
	char *snapshot;
	long long id = -1;

	if (rep_score_get(r->rep, r->db, &p->subject, &sc, e) < 0)
		return -1;
	json_t *doc = rep_score_json(&p->subject, &sc);

	snapshot = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	rep_score_clear(&sc);
	n.snapshot = snapshot;
	if (snapshot == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	else if (rep_store_delist_create(r->db, &n, &id, e) < 0)
		id = -1;
	free(snapshot);
	return id;
}

void rep_delist_post(struct rep_req *r)
{
	struct err e = {0};
	const char *request = http_json_str(r->http->json, "request", 0, &e);
	struct proof p = {0};
	char path[64], *jws = NULL;
	long long id;

	if (r->http->json == NULL || e.kind != ERR_NONE) {
		err_set(&e, ERR_INPUT, "bad_request",
		        "a delisting request is {\"request\": \"<JWS compact or flattened, as a "
		        "string>\"}, or {\"subject\", \"helo\"} for CSA");
		return rep_fail(r, &e);
	}
	/* Both JWS serialisations arrive as one string; the checks read the flattened one. */
	if ((request != NULL && (jws = jws_flatten(request, &e)) == NULL) ||
	    (jws != NULL ? prove_by_signature(r, jws, &p, &e) : prove_by_csa(r, &p, &e)) < 0 ||
	    (id = store_request(r, &p, &e)) < 0) {
		free(jws);
		proof_clear(&p);
		return rep_fail(r, &e);
	}
	free(jws);
	log_info(r->http->reqid, "delisting request %lld for %s (%s)", id, p.subject.text,
	         p.proven_by);
	snprintf(path, sizeof(path), "/v1/delist/%lld", id);
	http_add_header(r->resp, "Location", "%s", path);
	http_reply_json(r->resp, 201,
	                json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)id, "subject",
	                          p.subject.text, "method", p.method, "proven_by", p.proven_by,
	                          "status", "pending", "url", path));
	proof_clear(&p);
}

/* ------------------------------------------------------------------ the trail */

static json_t *request_json(const struct rep_delist *d)
{
	json_t *snap = json_loads(d->snapshot, 0, NULL);

	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:o?}", "id",
	                 (json_int_t)d->id, "subject", d->subject, "method", d->method, "proven_by",
	                 d->proven_by, "reason", d->reason, "status", d->status, "created",
	                 d->created, "decided", d->decided[0] ? d->decided : NULL, "decision_note",
	                 d->note, "score_at_request", snap);
}

static json_t *events_json(const struct rep_delist_event *v, int n)
{
	json_t *events = json_array();

	for (int i = 0; i < n; i++)
		json_array_append_new(events, json_pack("{s:s, s:s, s:s}", "event", v[i].event,
		                                        "at", v[i].at, "detail", v[i].detail));
	return events;
}

static int parse_id(const char *text, long long *id)
{
	char *end;

	*id = strtoll(text, &end, 10);
	return *end == '\0' && *id > 0 && strlen(text) <= 18 ? 0 : -1;
}

void rep_delist_get(struct rep_req *r, const char *id_text)
{
	struct rep_delist d;
	struct rep_delist_event *events = NULL;
	struct err e = {0};
	json_t *obj;
	long long id;
	int found, n = 0;

	if (parse_id(id_text, &id) < 0)
		return http_reply_errorf(r->resp, ERR_NOTFOUND, "not_found",
		                         "no delisting request %.20s", id_text);
	if ((found = rep_store_delist_get(r->db, id, &d, &e)) < 0)
		return rep_fail(r, &e);
	if (found == 0)
		return http_reply_errorf(r->resp, ERR_NOTFOUND, "not_found",
		                         "no delisting request %lld", id);
	obj = request_json(&d);
	rep_delist_clear(&d);
	if (rep_store_delist_events(r->db, id, &events, &n, &e) < 0) {
		json_decref(obj);
		return rep_fail(r, &e);
	}
	json_object_set_new(obj, "events", events_json(events, n));
	rep_delist_events_free(events, n);
	http_reply_json(r->resp, 200, obj);
}

void rep_delist_list(struct rep_req *r)
{
	const char *subject = http_query_arg(r->http, "subject");
	const char *status = http_query_arg(r->http, "status");
	const char *limit_text = http_query_arg(r->http, "limit");
	struct rep_delist *v = NULL;
	struct rep_subject s;
	struct err e = {0};
	json_t *list;
	long long n = limit_text ? strtoll(limit_text, NULL, 10) : 100;
	int rows = 0;

	if (n < 1 || n > 1000)
		return http_reply_errorf(r->resp, ERR_INPUT, "bad_request",
		                         "limit must be 1 to 1000");
	if (subject != NULL) {
		if (rep_subject_parse(subject, &s, &e) < 0)
			return rep_fail(r, &e);
		subject = s.text;
	}
	if (rep_store_delist_list(r->db, subject, status, n, &v, &rows, &e) < 0)
		return rep_fail(r, &e);
	list = json_array();
	for (int i = 0; i < rows; i++) {
		json_array_append_new(list, request_json(&v[i]));
		rep_delist_clear(&v[i]);
	}
	free(v);
	http_reply_json(r->resp, 200, json_pack("{s:o}", "requests", list));
}

/* ------------------------------------------------------------------ the decision */

static int apply_delisting(struct rep_req *r, const char *id, const char *subject, struct err *e)
{
	return rep_store_evidence_drop_bad(r->db, subject, e) < 0 ||
	               rep_subject_refresh(r->rep, r->db, subject, (long long)time(NULL), e) < 0 ||
	               rep_store_mark_delisted(r->db, subject, id, e) < 0
	           ? -1
	           : 0;
}

/* Why a request could not be decided: already decided, or none such. */
static void not_pending(struct rep_req *r, long long id, struct err *e)
{
	char status[16];
	int found = rep_store_delist_status(r->db, id, status, e);

	if (found > 0)
		err_set(e, ERR_CONFLICT, "already_decided", "request %lld was already decided (%s)",
		        id, status);
	else if (found == 0)
		err_set(e, ERR_NOTFOUND, "not_found", "no delisting request %lld", id);
	rep_fail(r, e);
}

void rep_delist_decide(struct rep_req *r, const char *id_text)
{
	struct err e = {0};
	const char *outcome, *note;
	char subject[REP_SUBJECT_MAX + 16];
	long long id;
	int decided;

	if (rep_auth_operator(r, &e) < 0)
		return rep_fail(r, &e);
	if (parse_id(id_text, &id) < 0)
		return http_reply_errorf(r->resp, ERR_NOTFOUND, "not_found",
		                         "no delisting request %.20s", id_text);
	if ((outcome = http_json_str(r->http->json, "outcome", 1, &e)) == NULL)
		return rep_fail(r, &e);
	if (strcmp(outcome, "delisted") != 0 && strcmp(outcome, "rejected") != 0)
		return http_reply_errorf(r->resp, ERR_INPUT, "bad_request",
		                         "\"outcome\" must be \"delisted\" or \"rejected\"");
	note = http_json_str(r->http->json, "note", 0, &e);
	if (e.kind != ERR_NONE)
		return rep_fail(r, &e);
	if (note == NULL)
		note = "";
	if (db_begin(r->db, &e) < 0)
		return rep_fail(r, &e);
	if ((decided = rep_store_delist_decide(r->db, id, outcome, note, subject, &e)) < 0)
		goto fail;
	if (decided == 0) {
		db_rollback(r->db);
		return not_pending(r, id, &e);
	}
	if (rep_store_delist_event(r->db, id, outcome, note, &e) < 0 ||
	    (strcmp(outcome, "delisted") == 0 && apply_delisting(r, id_text, subject, &e) < 0) ||
	    db_commit(r->db, &e) < 0)
		goto fail;
	rep_changed(r->rep, subject);
	log_info(r->http->reqid, "delisting request %lld for %s: %s", id, subject, outcome);
	rep_delist_get(r, id_text);
	return;
fail:
	db_rollback(r->db);
	rep_fail(r, &e);
}
