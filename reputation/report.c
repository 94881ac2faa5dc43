/*
 * report.c - report intake: signed reports (JWS by a key anchored in the reporter's
 * domain), ARF reports from registered reporters, and storing a report with its effect
 * on the subjects' evidence in one transaction.
 *
 * A report that is unsigned, signed by a key that does not chain to the reporter
 * domain's pinned root, signed by a certificate outside that domain or one that is no
 * longer current (revoked or superseded: lib/certauth asks the domain's key server),
 * about a malformed subject or otherwise malformed gets a precise 4xx and changes
 * nothing; when the key's status cannot be had it is a 503 with Retry-After.  A repeated
 * (reporter, id) is answered 200 {"duplicate": true} and counted once.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "pki/cert.h"
#include "pki/name.h"
#include "pki/crypto.h"
#include "handlers.h"
#include "core/log.h"

/* ------------------------------------------------------------------ signatures */

json_t *rep_jws_peek(const char *jws, size_t len, struct err *e)
{
	json_t *obj = json_loadb(jws, len, JSON_REJECT_DUPLICATES, NULL), *payload = NULL;
	const char *b64 = json_string_value(json_object_get(obj, "payload"));
	uint8_t *raw = NULL;
	size_t rawlen = 0;

	if (!json_is_object(obj) || b64 == NULL ||
	    !json_is_string(json_object_get(obj, "protected")) ||
	    !json_is_string(json_object_get(obj, "signature"))) {
		err_set(e, ERR_INPUT, "bad_jws",
		        "the body must be a JWS (flattened JSON: protected, payload, signature) "
		        "signed with a key of the reporter's anchored domain");
		goto out;
	}
	if ((raw = crypto_b64url_decode(b64, &rawlen)) == NULL ||
	    (payload = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL)) ==
	        NULL ||
	    !json_is_object(payload)) {
		json_decref(payload);
		payload = NULL;
		err_set(e, ERR_INPUT, "bad_jws", "the JWS payload is not a base64url JSON object");
	}
out:
	free(raw);
	json_decref(obj);
	return payload;
}

int rep_verify_anchored(struct rep *rep, const char *jws, size_t len, const char *claimed,
                        struct jws_verified *v, char signer[320], struct err *e)
{
	struct certauth_want want = {.name = claimed,
	                             .rule = CERTAUTH_IN_DOMAIN,
	                             .unanchored_code = "reporter_not_anchored"};

	return certauth_verify_jws(rep->auth, jws, len, &want, v, signer, e);
}

/* ------------------------------------------------------------------ storing */

static int add_evidence(struct rep *rep, struct db *db, const struct rep_report *r,
                        const char *subject, struct err *e)
{
	char bad[32], good[32], t[24], cats[16], hl[32];
	int is_good;
	double w = rep_category_weight(r->category, r->verified_identity, &is_good);
	const char *params[8] = {subject, r->reporter, r->reporter_net, bad, good, t, cats, hl};

	snprintf(bad, sizeof(bad), "%.17g", is_good ? 0.0 : w);
	snprintf(good, sizeof(good), "%.17g", is_good ? w : 0.0);
	snprintf(t, sizeof(t), "%lld", (long long)r->observed);
	snprintf(cats, sizeof(cats), "%u", 1u << r->category);
	snprintf(hl, sizeof(hl), "%.17g", rep->p.half_life);
	return db_run(
	    db,
	    "INSERT INTO rep_contrib AS c (subject, reporter, net, bad, good, t, categories, "
	    "reports, first_seen, last_seen) "
	    "VALUES ($1, $2, $3, $4, $5, $6::bigint, $7, 1, to_timestamp($6::bigint), "
	    "to_timestamp($6::bigint)) "
	    "ON CONFLICT (subject, reporter) DO UPDATE SET "
	    "bad = rep_decay(c.bad, greatest(c.t, EXCLUDED.t) - c.t, $8) + "
	    "rep_decay(EXCLUDED.bad, greatest(c.t, EXCLUDED.t) - EXCLUDED.t, $8), "
	    "good = rep_decay(c.good, greatest(c.t, EXCLUDED.t) - c.t, $8) + "
	    "rep_decay(EXCLUDED.good, greatest(c.t, EXCLUDED.t) - EXCLUDED.t, $8), "
	    "t = greatest(c.t, EXCLUDED.t), net = EXCLUDED.net, "
	    "categories = c.categories | EXCLUDED.categories, reports = c.reports + 1, "
	    "first_seen = least(c.first_seen, EXCLUDED.first_seen), "
	    "last_seen = greatest(c.last_seen, EXCLUDED.last_seen)",
	    8, params, e);
}

static int subject_order(const void *a, const void *b)
{
	return strcmp(((const struct rep_subject *)a)->text, ((const struct rep_subject *)b)->text);
}

/* Insert the report row; 0 when the (reporter, id) was already there. */
static int insert_report(struct db *db, const struct rep_report *r, long long *rowid, struct err *e)
{
	char observed[24], subjects[8 * (REP_SUBJECT_MAX + 24)];
	const char *params[10];
	size_t len = 0;
	PGresult *res;
	int fresh;

	snprintf(observed, sizeof(observed), "%lld", (long long)r->observed);
	/* A text[] literal: subjects never hold quotes, backslashes, braces or commas
	 * unquoted, but every element is quoted anyway. */
	len += (size_t)snprintf(subjects + len, sizeof(subjects) - len, "{");
	for (int i = 0; i < r->nsubjects; i++)
		len += (size_t)snprintf(subjects + len, sizeof(subjects) - len, "%s\"%s\"",
		                        i ? "," : "", r->subjects[i].text);
	snprintf(subjects + len, sizeof(subjects) - len, "}");
	params[0] = r->reporter;
	params[1] = r->id;
	params[2] = rep_category_name(r->category);
	params[3] = observed;
	params[4] = subjects;
	params[5] = r->verified_identity ? "t" : "f";
	params[6] = r->evidence;
	params[7] = r->source[0] ? r->source : "jws";
	params[8] = r->reporter_net;
	params[9] = r->raw;
	res = db_exec(db,
	              "INSERT INTO rep_reports (reporter, report_id, category, observed, subjects, "
	              "verified, evidence, source, reporter_net, raw) "
	              "VALUES ($1, $2, $3, to_timestamp($4), $5, $6, $7, $8, $9, $10) "
	              "ON CONFLICT (reporter, report_id) DO NOTHING RETURNING id",
	              10, params, e);
	if (res == NULL)
		return -1;
	fresh = PQntuples(res) == 1;
	if (fresh)
		*rowid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return fresh;
}

int rep_report_ingest(struct rep *rep, struct db *db, const struct rep_report *in, struct err *e)
{
	struct rep_report r = *in;
	const char *params[2] = {r.reporter, NULL};
	char rowid_text[24];
	long long rowid = 0, now = (long long)time(NULL);
	int fresh;

	if (r.nsubjects < 1)
		return err_set(e, ERR_INPUT, "bad_subject", "a report needs at least one subject");
	/* One order for every transaction that touches several subjects: no deadlocks. */
	qsort(r.subjects, (size_t)r.nsubjects, sizeof(r.subjects[0]), subject_order);
	if (db_begin(db, e) < 0)
		return -1;
	if (db_run(db,
	           "INSERT INTO rep_reporters (domain) VALUES ($1) "
	           "ON CONFLICT (domain) DO UPDATE SET last_seen = now()",
	           1, params, e) < 0 ||
	    (fresh = insert_report(db, &r, &rowid, e)) < 0)
		goto fail;
	if (!fresh) {
		db_rollback(db);
		return 0;
	}
	snprintf(rowid_text, sizeof(rowid_text), "%lld", rowid);
	if (db_run(db, "UPDATE rep_reporters SET reports = reports + 1 WHERE domain = $1", 1,
	           params, e) < 0)
		goto fail;
	for (int i = 0; i < r.nsubjects; i++) {
		const char *sp[2] = {r.subjects[i].text, rowid_text};

		if (db_run(db, "INSERT INTO rep_report_subjects (subject, report) VALUES ($1, $2)",
		           2, sp, e) < 0 ||
		    add_evidence(rep, db, &r, r.subjects[i].text, e) < 0 ||
		    rep_subject_refresh(rep, db, r.subjects[i].text, now, e) < 0)
			goto fail;
	}
	if (db_commit(db, e) < 0)
		goto fail;
	for (int i = 0; i < r.nsubjects; i++)
		rep_cache_forget(rep->cache, r.subjects[i].text);
	return 1;
fail:
	db_rollback(db);
	return -1;
}

/* ------------------------------------------------------------------ handlers */

static int reporter_rate_ok(struct rep_req *r, const char *reporter, struct err *e)
{
	double retry = 0;

	if (r->rep->report_rl == NULL ||
	    ratelimit_take(r->rep->report_rl, reporter, ratelimit_now(), &retry))
		return 1;
	http_add_header(r->resp, "Retry-After", "%d", (int)(retry + 0.999));
	err_set(e, ERR_RATE, "rate_limited",
	        "too many reports from %s; retry in %d s (at most %g reports per second)", reporter,
	        (int)(retry + 0.999), r->rep->p.report_rate);
	return 0;
}

static void answer_ingest(struct rep_req *r, struct rep_report *rep_r)
{
	struct err e = {0};
	json_t *subjects = json_array();
	int rc;

	rep_network_of(r->http->client_ip, r->rep->p.prefix4, r->rep->p.prefix6,
	               rep_r->reporter_net, sizeof(rep_r->reporter_net));
	rc = rep_report_ingest(r->rep, r->db, rep_r, &e);
	if (rc < 0) {
		json_decref(subjects);
		atomic_fetch_add(&r->rep->reports_refused, 1);
		rep_fail(r, &e);
		return;
	}
	if (rc == 0) {
		json_decref(subjects);
		atomic_fetch_add(&r->rep->reports_duplicate, 1);
		log_info(r->http->reqid, "report %s/%s: duplicate", rep_r->reporter, rep_r->id);
		http_reply_json(r->resp, 200,
		                json_pack("{s:b, s:s, s:s}", "duplicate", 1, "reporter",
		                          rep_r->reporter, "id", rep_r->id));
		return;
	}
	for (int i = 0; i < rep_r->nsubjects; i++)
		json_array_append_new(subjects, json_string(rep_r->subjects[i].text));
	atomic_fetch_add(&r->rep->reports_accepted, 1);
	log_info(r->http->reqid, "report %s/%s: %s about %d subject(s) from %s", rep_r->reporter,
	         rep_r->id, rep_category_name(rep_r->category), rep_r->nsubjects,
	         rep_r->reporter_net);
	http_reply_json(r->resp, 201,
	                json_pack("{s:b, s:b, s:s, s:s, s:s, s:o}", "accepted", 1, "duplicate", 0,
	                          "reporter", rep_r->reporter, "id", rep_r->id, "category",
	                          rep_category_name(rep_r->category), "subjects", subjects));
}

static void refuse(struct rep_req *r, const struct err *e)
{
	atomic_fetch_add(&r->rep->reports_refused, 1);
	rep_fail(r, e);
}

void rep_report_post(struct rep_req *r)
{
	const struct rep_settings *cfg = &r->rep->cfg;
	struct jws_verified v = {0};
	struct rep_report rr;
	struct err e = {0};
	char claimed[256], signer[320];
	json_t *peek;
	const char *rep_name;

	if ((peek = rep_jws_peek(r->http->body, r->http->body_len, &e)) == NULL)
		return refuse(r, &e);
	rep_name = json_string_value(json_object_get(peek, "reporter"));
	if (rep_name == NULL || strlen(rep_name) >= sizeof(claimed) ||
	    name_check_domain(rep_name, &e) < 0) {
		json_decref(peek);
		err_set(&e, ERR_INPUT, "bad_reporter",
		        "the payload's \"reporter\" must be the reporter's domain, in lowercase");
		return refuse(r, &e);
	}
	snprintf(claimed, sizeof(claimed), "%s", rep_name);
	json_decref(peek);
	if (rep_verify_anchored(r->rep, r->http->body, r->http->body_len, claimed, &v, signer, &e) <
	    0)
		return refuse(r, &e);
	if (rep_report_from_json(v.payload, v.payload_len, (long long)time(NULL), &r->rep->p,
	                         cfg->max_report_age, cfg->max_clock_skew, &rr, &e) < 0 ||
	    !reporter_rate_ok(r, rr.reporter, &e)) {
		jws_verified_free(&v);
		return refuse(r, &e);
	}
	jws_verified_free(&v);
	rr.raw = r->http->body;
	log_debug(r->http->reqid, "report %s/%s signed by %s", rr.reporter, rr.id, signer);
	answer_ingest(r, &rr);
}

/* The same bounds on the observation time as for signed reports. */
static int arf_time_ok(struct rep_req *r, struct rep_report *rr, struct err *e)
{
	long long now = (long long)time(NULL), t = (long long)rr->observed;

	if (t > now + r->rep->cfg.max_clock_skew)
		return err_set(e, ERR_INPUT, "bad_time",
		               "the report's Arrival-Date lies in the future");
	if (t < now - r->rep->cfg.max_report_age)
		return err_set(e, ERR_INPUT, "report_too_old",
		               "the report's Arrival-Date is older than %lld days: such reports no "
		               "longer count",
		               r->rep->cfg.max_report_age / 86400);
	if (t > now)
		rr->observed = (time_t)now;
	return 0;
}

/* ARF arrives wrapped in JSON ({"message": "<RFC 5965 message>"}): the HTTPS layer takes
 * JSON bodies only, and the wrapper keeps the message's bytes intact. */
void rep_report_arf_post(struct rep_req *r)
{
	const char *token = http_bearer_token(r->http), *msg;
	char hash[CRYPTO_HEX256_LEN];
	const char *params[1] = {hash};
	struct rep_report rr;
	struct err e = {0};
	PGresult *res;

	if (token == NULL || *token == '\0') {
		err_set(&e, ERR_AUTH, "unauthorized",
		        "ARF reports need the reporter's token (Authorization: Bearer)");
		return refuse(r, &e);
	}
	crypto_token_hash(token, hash);
	if ((res = db_exec(r->db, "SELECT domain FROM rep_reporters WHERE arf_token_hash = $1", 1,
	                   params, &e)) == NULL)
		return refuse(r, &e);
	if (PQntuples(res) != 1) {
		PQclear(res);
		err_set(&e, ERR_AUTH, "unauthorized", "the reporter token is not valid");
		return refuse(r, &e);
	}
	if ((msg = http_json_str(r->http->json, "message", 1, &e)) == NULL) {
		PQclear(res);
		return refuse(r, &e);
	}
	memset(&rr, 0, sizeof(rr));
	if (arf_parse(msg, strlen(msg), &rr, &e) < 0) {
		PQclear(res);
		return refuse(r, &e);
	}
	snprintf(rr.reporter, sizeof(rr.reporter), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (arf_time_ok(r, &rr, &e) < 0)
		return refuse(r, &e);
	snprintf(rr.source, sizeof(rr.source), "arf");
	rr.raw = msg;
	if (!reporter_rate_ok(r, rr.reporter, &e))
		return refuse(r, &e);
	answer_ingest(r, &rr);
}

/* Operator: register (or re-key) a reporter for ARF; the token is shown once. */
void rep_reporter_register(struct rep_req *r)
{
	char token[CRYPTO_TOKEN_LEN], hash[CRYPTO_HEX256_LEN], domain[256];
	const char *params[2] = {domain, hash};
	struct err e = {0};
	const char *d;

	if (rep_auth_operator(r, &e) < 0 ||
	    (d = http_json_str(r->http->json, "domain", 1, &e)) == NULL)
		return rep_fail(r, &e);
	snprintf(domain, sizeof(domain), "%s", d);
	for (char *c = domain; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (strlen(d) >= sizeof(domain) || name_check_domain(domain, &e) < 0)
		return rep_fail(r, &e);
	if (crypto_random_token(token, &e) < 0)
		return rep_fail(r, &e);
	crypto_token_hash(token, hash);
	if (db_run(r->db,
	           "INSERT INTO rep_reporters (domain, arf_token_hash, arf_registered_at) "
	           "VALUES ($1, $2, now()) ON CONFLICT (domain) DO UPDATE SET "
	           "arf_token_hash = EXCLUDED.arf_token_hash, arf_registered_at = now()",
	           2, params, &e) < 0)
		return rep_fail(r, &e);
	log_info(r->http->reqid, "reporter %s registered for ARF (token %.8s...)", domain, hash);
	http_reply_json(r->resp, 201,
	                json_pack("{s:s, s:s}", "domain", domain, "arf_token", token));
}

void rep_reporter_get(struct rep_req *r, const char *domain)
{
	char def[32];
	const char *params[2] = {domain, def};
	struct err e = {0};
	PGresult *res;

	snprintf(def, sizeof(def), "%.17g", r->rep->p.standing_default);
	res = db_exec(r->db,
	              "SELECT domain, coalesce(standing, $2::float8), agreements, disagreements, "
	              "reports, arf_token_hash IS NOT NULL, "
	              "to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	              "to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
	              "FROM rep_reporters WHERE domain = lower($1)",
	              2, params, &e);
	if (res == NULL)
		return rep_fail(r, &e);
	if (PQntuples(res) != 1) {
		PQclear(res);
		err_set(&e, ERR_NOTFOUND, "not_found", "no reports from %.253s", domain);
		return rep_fail(r, &e);
	}
	http_reply_json(
	    r->resp, 200,
	    json_pack("{s:s, s:f, s:I, s:I, s:I, s:b, s:s, s:s}", "domain", PQgetvalue(res, 0, 0),
	              "standing", strtod(PQgetvalue(res, 0, 1), NULL), "agreements",
	              (json_int_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10), "disagreements",
	              (json_int_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10), "reports",
	              (json_int_t)strtoll(PQgetvalue(res, 0, 4), NULL, 10), "arf",
	              strcmp(PQgetvalue(res, 0, 5), "t") == 0, "first_seen", PQgetvalue(res, 0, 6),
	              "last_seen", PQgetvalue(res, 0, 7)));
	PQclear(res);
}
