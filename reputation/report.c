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
#include "core/log.h"
#include "handlers.h"
#include "store.h"

/* ------------------------------------------------------------------ storing */

/* Sort the subjects (one order for every transaction: no deadlocks), each with its
 * signature id. */
static void sort_subjects(struct rep_report *r)
{
	for (int i = 1; i < r->nsubjects; i++)
		for (int k = i; k > 0 && strcmp(r->subjects[k - 1].text, r->subjects[k].text) > 0;
		     k--) {
			struct rep_subject t = r->subjects[k];
			char sig[sizeof(r->sig_id[0])];

			r->subjects[k] = r->subjects[k - 1];
			r->subjects[k - 1] = t;
			memcpy(sig, r->sig_id[k], sizeof(sig));
			memcpy(r->sig_id[k], r->sig_id[k - 1], sizeof(sig));
			memcpy(r->sig_id[k - 1], sig, sizeof(sig));
		}
}

/* What one subject of a report adds.  A domain, signer or address subject counts only
 * with a signature verified for it that no earlier report brought (evidence.c), and then
 * a not-spam report needs nothing more; any other subject as its category says
 * (not-spam: the identity verified by the reporter, which CSA backs at query time). */
static int subject_weight(const struct rep *rep, struct db *db, const struct rep_report *r, int i,
                          long long rowid, double *bad, double *good, struct err *e)
{
	int is_good, fresh = 1, verified = r->verified_identity;
	double w;

	if (rep->cfg.signed_evidence && rep_evidence_needed(&r->subjects[i])) {
		verified = r->sig_id[i][0] != '\0';
		if (verified && (fresh = rep_store_signature_claim(db, r->subjects[i].text,
		                                                   r->sig_id[i], rowid, e)) < 0)
			return -1;
		if (!verified || !fresh) {
			*bad = *good = 0;
			return 0;
		}
	}
	w = rep_category_weight(r->category, verified, &is_good);
	*bad = is_good ? 0.0 : w;
	*good = is_good ? w : 0.0;
	return 0;
}

/* Each subject: linked to the report, the report's weight folded into the reporter's
 * evidence, the summary recomputed.  Inside the ingest transaction. */
static int add_subjects(struct rep *rep, struct db *db, const struct rep_report *r, long long rowid,
                        long long now, int *held, struct err *e)
{
	for (int i = 0; i < r->nsubjects; i++) {
		const char *s = r->subjects[i].text;
		double bad, good;
		int burst = 0;

		if (rep_store_report_subject(db, s, rowid, e) < 0 ||
		    subject_weight(rep, db, r, i, rowid, &bad, &good, e) < 0 ||
		    rep_store_evidence_add(db, s, r, bad, good, rep->p.half_life, e) < 0)
			return -1;
		/* a trap hit is ground truth about what it counts for (checked at intake) */
		if (r->trap[0] != '\0' && bad > 0 && rep_store_truth_hit(db, s, rowid, e) < 0)
			return -1;
		if (rep_subject_refresh_held(rep, db, s, now, &burst, e) < 0)
			return -1;
		if (burst > 0) {
			log_warn(NULL,
			         "burst: %d reporters first seen within burst_window converged on "
			         "%s; held back (report %s/%s)",
			         burst, s, r->reporter, r->id);
			*held = 1;
		}
	}
	return 0;
}

int rep_report_ingest(struct rep *rep, struct db *db, const struct rep_report *in,
                      char evidence_id[REP_EVIDENCE_ID_MAX], struct err *e)
{
	char public_id[REP_EVIDENCE_ID_MAX] = "";
	struct rep_report r = *in;
	long long rowid = 0, now = (long long)time(NULL);
	int fresh, held = 0;

	if (r.nsubjects < 1)
		return err_set(e, ERR_INPUT, "bad_subject", "a report needs at least one subject");
	sort_subjects(&r);
	if (db_begin(db, e) < 0)
		return -1;
	if (rep_store_reporter_seen(db, r.reporter, e) < 0 ||
	    (fresh = rep_store_report_insert(db, &r, &rowid, public_id, e)) < 0)
		goto fail;
	if (!fresh) {
		db_rollback(db);
		return 0;
	}
	if (rep_store_reporter_counted(db, r.reporter, e) < 0 ||
	    add_subjects(rep, db, &r, rowid, now, &held, e) < 0 || db_commit(db, e) < 0)
		goto fail;
	for (int i = 0; i < r.nsubjects; i++)
		rep_changed(rep, r.subjects[i].text);
	if (held)
		atomic_fetch_add(&rep->reports_burst, 1);
	if (evidence_id != NULL)
		snprintf(evidence_id, REP_EVIDENCE_ID_MAX, "%s", public_id);
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

/* A spamtrap hit is ground truth only from a vetted reporter about a configured trap. */
static int trap_ok(const struct rep *rep, const struct rep_report *rr, struct err *e)
{
	if (rr->trap[0] == '\0')
		return 0;
	if (rep_vetted_weight(&rep->p, rr->reporter) < 0)
		return err_set(e, ERR_FORBIDDEN, "not_vetted",
		               "spamtrap hits are ground truth only from reporters the operator "
		               "vetted; %s is not one",
		               rr->reporter);
	if (!rep_trap_match(&rep->p, rr->trap))
		return err_set(e, ERR_INPUT, "not_a_trap",
		               "%s is not one of this service's spamtraps", rr->trap);
	return 0;
}

static void answer_ingest(struct rep_req *r, struct rep_report *rep_r)
{
	char evidence_id[REP_EVIDENCE_ID_MAX] = "";
	struct err e = {0};
	json_t *subjects = json_array(), *unverified = json_array();
	int rc;

	/* the reporter's networks from its own DNS, never the address it sends from */
	rep_reporter_networks(r->rep, rep_r->reporter, rep_r->reporter_net);
	rc = rep_report_ingest(r->rep, r->db, rep_r, evidence_id, &e);
	if (rc < 0) {
		json_decref(subjects);
		json_decref(unverified);
		atomic_fetch_add(&r->rep->reports_refused, 1);
		rep_fail(r, &e);
		return;
	}
	if (rc == 0) {
		json_decref(subjects);
		json_decref(unverified);
		atomic_fetch_add(&r->rep->reports_duplicate, 1);
		log_info(r->http->reqid, "report %s/%s: duplicate", rep_r->reporter, rep_r->id);
		http_reply_json(r->resp, 200,
		                json_pack("{s:b, s:s, s:s}", "duplicate", 1, "reporter",
		                          rep_r->reporter, "id", rep_r->id));
		return;
	}
	for (int i = 0; i < rep_r->nsubjects; i++) {
		json_array_append_new(subjects, json_string(rep_r->subjects[i].text));
		if (r->rep->cfg.signed_evidence && rep_evidence_needed(&rep_r->subjects[i]) &&
		    rep_r->sig_id[i][0] == '\0')
			json_array_append_new(unverified, json_string(rep_r->subjects[i].text));
	}
	atomic_fetch_add(&r->rep->reports_accepted, 1);
	log_info(r->http->reqid, "report %s/%s: %s about %d subject(s) from %s", rep_r->reporter,
	         rep_r->id, rep_category_name(rep_r->category), rep_r->nsubjects,
	         rep_r->reporter_net);
	http_reply_json(r->resp, 201,
	                json_pack("{s:b, s:b, s:s, s:s, s:s, s:s, s:o, s:o}", "accepted", 1,
	                          "duplicate", 0, "reporter", rep_r->reporter, "id", rep_r->id,
	                          "evidence_id", evidence_id, "category",
	                          rep_category_name(rep_r->category), "subjects", subjects,
	                          "unverified", unverified));
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
	    trap_ok(r->rep, &rr, &e) < 0 || !reporter_rate_ok(r, rr.reporter, &e) ||
	    rep_evidence_verify(r->rep, v.payload, v.payload_len, &rr, &e) < 0) {
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
	char hash[CRYPTO_HEX256_LEN], reporter[256];
	struct rep_report rr;
	struct err e = {0};
	int found;

	if (token == NULL || *token == '\0') {
		err_set(&e, ERR_AUTH, "unauthorized",
		        "ARF reports need the reporter's token (Authorization: Bearer)");
		return refuse(r, &e);
	}
	crypto_token_hash(token, hash);
	if ((found = rep_store_reporter_by_token(r->db, hash, reporter, &e)) < 0)
		return refuse(r, &e);
	if (found == 0) {
		err_set(&e, ERR_AUTH, "unauthorized", "the reporter token is not valid");
		return refuse(r, &e);
	}
	if ((msg = http_json_str(r->http->json, "message", 1, &e)) == NULL)
		return refuse(r, &e);
	memset(&rr, 0, sizeof(rr));
	if (arf_parse(msg, strlen(msg), &rr, &e) < 0)
		return refuse(r, &e);
	snprintf(rr.reporter, sizeof(rr.reporter), "%s", reporter);
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
	if (rep_store_reporter_register(r->db, domain, hash, &e) < 0)
		return rep_fail(r, &e);
	log_info(r->http->reqid, "reporter %s registered for ARF (token %.8s...)", domain, hash);
	http_reply_json(r->resp, 201,
	                json_pack("{s:s, s:s}", "domain", domain, "arf_token", token));
}

void rep_reporter_get(struct rep_req *r, const char *domain)
{
	struct rep_reporter rr;
	struct err e = {0};
	int found = rep_store_reporter_get(r->db, domain, r->rep->p.standing_default, &rr, &e);
	double vetted;

	if (found < 0)
		return rep_fail(r, &e);
	if (found == 0) {
		err_set(&e, ERR_NOTFOUND, "not_found", "no reports from %.253s", domain);
		return rep_fail(r, &e);
	}
	vetted = rep_vetted_weight(&r->rep->p, rr.domain);
	http_reply_json(
	    r->resp, 200,
	    json_pack("{s:s, s:b, s:f, s:I, s:I, s:I, s:b, s:s, s:s}", "domain", rr.domain,
	              "vetted", vetted >= 0, "standing", vetted >= 0 ? vetted : rr.standing,
	              "agreements", (json_int_t)rr.agreements, "disagreements",
	              (json_int_t)rr.disagreements, "reports", (json_int_t)rr.reports, "arf",
	              rr.arf, "first_seen", rr.first_seen, "last_seen", rr.last_seen));
}
