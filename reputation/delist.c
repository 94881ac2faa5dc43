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
#include "handlers.h"
#include "core/log.h"

#define REP_TYPE_DELIST "anchor-delist-request"
#define REP_DELIST_MAX_AGE 86400 /* a signed request is good for a day */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

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
	char *snapshot;
	const char *params[7];
	long long id = -1;
	PGresult *res = NULL;

	if (rep_score_get(r->rep, r->db, &p->subject, &sc, e) < 0)
		return -1;
	json_t *doc = rep_score_json(&p->subject, &sc);

	snapshot = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	rep_score_clear(&sc);
	params[0] = p->subject.text;
	params[1] = p->method;
	params[2] = p->proven_by;
	params[3] = p->proof;
	params[4] = p->reason ? p->reason : "";
	params[5] = p->contact ? p->contact : "";
	params[6] = snapshot;
	if (snapshot == NULL || db_begin(r->db, e) < 0)
		goto out;
	res = db_exec(r->db,
	              "INSERT INTO rep_delist_requests (subject, method, proven_by, proof, reason, "
	              "contact, score_at_request) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
	              7, params, e);
	if (res == NULL)
		goto fail;
	params[0] = PQgetvalue(res, 0, 0);
	params[1] = p->proven_by;
	if (db_run(r->db,
	           "INSERT INTO rep_delist_events (request, event, detail) "
	           "VALUES ($1, 'requested', 'ownership proven by ' || $2)",
	           2, params, e) < 0 ||
	    db_commit(r->db, e) < 0)
		goto fail;
	id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	goto out;
fail:
	db_rollback(r->db);
out:
	PQclear(res);
	free(snapshot);
	if (snapshot == NULL && e->kind == ERR_NONE)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
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

#define REQUEST_COLUMNS                                                                            \
	"id, subject, method, proven_by, reason, status, " TS("created") ", " TS(                  \
	    "decided") ", "                                                                        \
	               "coalesce(decision_note, ''), score_at_request::text"

static json_t *request_json(PGresult *res, int i)
{
	json_t *snap = json_loads(PQgetvalue(res, i, 9), 0, NULL);

	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:o?}", "id",
	                 (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10), "subject",
	                 PQgetvalue(res, i, 1), "method", PQgetvalue(res, i, 2), "proven_by",
	                 PQgetvalue(res, i, 3), "reason", PQgetvalue(res, i, 4), "status",
	                 PQgetvalue(res, i, 5), "created", PQgetvalue(res, i, 6), "decided",
	                 PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7), "decision_note",
	                 PQgetvalue(res, i, 8)[0] ? PQgetvalue(res, i, 8) : NULL,
	                 "score_at_request", snap);
}

static int parse_id(const char *text, long long *id)
{
	char *end;

	*id = strtoll(text, &end, 10);
	return *end == '\0' && *id > 0 && strlen(text) <= 18 ? 0 : -1;
}

void rep_delist_get(struct rep_req *r, const char *id_text)
{
	const char *params[1] = {id_text};
	json_t *obj, *events;
	struct err e = {0};
	PGresult *res;
	long long id;

	if (parse_id(id_text, &id) < 0)
		return http_reply_errorf(r->resp, ERR_NOTFOUND, "not_found",
		                         "no delisting request %.20s", id_text);
	res = db_exec(r->db, "SELECT " REQUEST_COLUMNS " FROM rep_delist_requests WHERE id = $1", 1,
	              params, &e);
	if (res == NULL)
		return rep_fail(r, &e);
	if (PQntuples(res) != 1) {
		PQclear(res);
		return http_reply_errorf(r->resp, ERR_NOTFOUND, "not_found",
		                         "no delisting request %lld", id);
	}
	obj = request_json(res, 0);
	PQclear(res);
	res =
	    db_exec(r->db,
	            "SELECT event, " TS("at") ", detail FROM rep_delist_events WHERE request = $1 "
	                                      "ORDER BY id",
	            1, params, &e);
	if (res == NULL) {
		json_decref(obj);
		return rep_fail(r, &e);
	}
	events = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(
		    events, json_pack("{s:s, s:s, s:s}", "event", PQgetvalue(res, i, 0), "at",
		                      PQgetvalue(res, i, 1), "detail", PQgetvalue(res, i, 2)));
	PQclear(res);
	json_object_set_new(obj, "events", events);
	http_reply_json(r->resp, 200, obj);
}

void rep_delist_list(struct rep_req *r)
{
	const char *subject = http_query_arg(r->http, "subject");
	const char *status = http_query_arg(r->http, "status");
	const char *limit_text = http_query_arg(r->http, "limit");
	char limit[16];
	const char *params[3] = {subject, status, limit};
	struct rep_subject s;
	struct err e = {0};
	json_t *list;
	PGresult *res;
	long long n = limit_text ? strtoll(limit_text, NULL, 10) : 100;

	if (n < 1 || n > 1000)
		return http_reply_errorf(r->resp, ERR_INPUT, "bad_request",
		                         "limit must be 1 to 1000");
	if (subject != NULL) {
		if (rep_subject_parse(subject, &s, &e) < 0)
			return rep_fail(r, &e);
		params[0] = s.text;
	}
	snprintf(limit, sizeof(limit), "%lld", n);
	res = db_exec(
	    r->db,
	    "SELECT " REQUEST_COLUMNS " FROM rep_delist_requests "
	    "WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR status = $2) "
	    "ORDER BY id DESC LIMIT $3::int",
	    3, params, &e);
	if (res == NULL)
		return rep_fail(r, &e);
	list = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(list, request_json(res, i));
	PQclear(res);
	http_reply_json(r->resp, 200, json_pack("{s:o}", "requests", list));
}

/* ------------------------------------------------------------------ the decision */

static int apply_delisting(struct rep_req *r, const char *id, const char *subject, struct err *e)
{
	const char *params[2] = {subject, id};

	return db_run(r->db, "UPDATE rep_contrib SET bad = 0 WHERE subject = $1", 1, params, e) <
	                   0 ||
	               rep_subject_refresh(r->rep, r->db, subject, (long long)time(NULL), e) < 0 ||
	               db_run(r->db,
	                      "UPDATE rep_subject_scores SET delisted_at = now(), "
	                      "delist_request = $2::bigint WHERE subject = $1",
	                      2, params, e) < 0
	           ? -1
	           : 0;
}

void rep_delist_decide(struct rep_req *r, const char *id_text)
{
	struct err e = {0};
	const char *outcome, *note;
	const char *params[3] = {id_text, NULL, NULL};
	char subject[REP_SUBJECT_MAX + 16];
	PGresult *res;
	long long id;

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
	params[1] = outcome;
	params[2] = note ? note : "";
	if (db_begin(r->db, &e) < 0)
		return rep_fail(r, &e);
	res = db_exec(r->db,
	              "UPDATE rep_delist_requests SET status = $2, decided = now(), "
	              "decision_note = $3 WHERE id = $1 AND status = 'pending' RETURNING subject",
	              3, params, &e);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) != 1) {
		PQclear(res);
		db_rollback(r->db);
		res = db_exec(r->db, "SELECT status FROM rep_delist_requests WHERE id = $1", 1,
		              params, &e);
		if (res != NULL && PQntuples(res) == 1)
			err_set(&e, ERR_CONFLICT, "already_decided",
			        "request %lld was already decided (%s)", id, PQgetvalue(res, 0, 0));
		else if (res != NULL)
			err_set(&e, ERR_NOTFOUND, "not_found", "no delisting request %lld", id);
		PQclear(res);
		return rep_fail(r, &e);
	}
	snprintf(subject, sizeof(subject), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (db_run(r->db,
	           "INSERT INTO rep_delist_events (request, event, detail) VALUES ($1, $2, $3)", 3,
	           params, &e) < 0 ||
	    (strcmp(outcome, "delisted") == 0 && apply_delisting(r, id_text, subject, &e) < 0) ||
	    db_commit(r->db, &e) < 0)
		goto fail;
	rep_cache_forget(r->rep->cache, subject);
	log_info(r->http->reqid, "delisting request %lld for %s: %s", id, subject, outcome);
	rep_delist_get(r, id_text);
	return;
fail:
	db_rollback(r->db);
	rep_fail(r, &e);
}
