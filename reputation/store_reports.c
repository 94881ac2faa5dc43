/*
 * store_reports.c - rep_reports, every report as received (kept for disputes), and
 * rep_report_subjects, which report named which subject: the evidence ids an answer
 * cites.  See store.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int rep_store_report_insert(struct db *db, const struct rep_report *r, long long *rowid,
                            char public_id[REP_EVIDENCE_ID_MAX], struct err *e)
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
	              "ON CONFLICT (reporter, report_id) DO NOTHING RETURNING id, public_id",
	              10, params, e);
	if (res == NULL)
		return -1;
	fresh = PQntuples(res) == 1;
	if (fresh) {
		*rowid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		snprintf(public_id, REP_EVIDENCE_ID_MAX, "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return fresh;
}

int rep_store_report_subject(struct db *db, const char *subject, long long rowid, struct err *e)
{
	char id[24];
	const char *params[2] = {subject, id};

	snprintf(id, sizeof(id), "%lld", rowid);
	return db_run(db, "INSERT INTO rep_report_subjects (subject, report) VALUES ($1, $2)", 2,
	              params, e);
}

int rep_store_signature_claim(struct db *db, const char *subject, const char *sig_id,
                              long long rowid, struct err *e)
{
	char id[24];
	const char *params[3] = {subject, sig_id, id};
	PGresult *res;
	int fresh;

	snprintf(id, sizeof(id), "%lld", rowid);
	res = db_exec(db,
	              "INSERT INTO rep_evidence_signatures (subject, sig, report) "
	              "VALUES ($1, $2, $3) ON CONFLICT (subject, sig) DO NOTHING RETURNING report",
	              3, params, e);
	if (res == NULL)
		return -1;
	fresh = PQntuples(res) == 1;
	PQclear(res);
	return fresh;
}

int rep_store_evidence_ids(struct db *db, const char *subject, struct rep_evidence_ids *out,
                           struct err *e)
{
	const char *params[1] = {subject};
	PGresult *res;

	memset(out, 0, sizeof(*out));
	res = db_exec(db,
	              "SELECT r.public_id, r.category = 'not-spam' "
	              "FROM rep_report_subjects s JOIN rep_reports r ON r.id = s.report "
	              "WHERE s.subject = $1 ORDER BY r.observed DESC, r.id DESC LIMIT 40",
	              1, params, e);
	if (res == NULL)
		return -1;
	for (int k = 0; k < PQntuples(res); k++) {
		int good = strcmp(PQgetvalue(res, k, 1), "t") == 0;
		int *n = good ? &out->ngood : &out->nbad;
		char(*to)[REP_EVIDENCE_ID_MAX] = good ? out->good : out->bad;

		if (*n < REP_EVIDENCE_IDS)
			snprintf(to[(*n)++], sizeof(to[0]), "%s", PQgetvalue(res, k, 0));
	}
	PQclear(res);
	return 0;
}

int rep_store_truth_hit(struct db *db, const char *subject, long long rowid, struct err *e)
{
	char id[24];
	const char *params[2] = {subject, id};

	snprintf(id, sizeof(id), "%lld", rowid);
	return db_run(db,
	              "INSERT INTO rep_ground_truth (subject, hits, last_report) "
	              "VALUES ($1, 1, $2) ON CONFLICT (subject) DO UPDATE SET "
	              "hits = rep_ground_truth.hits + 1, last_hit = now(), last_report = $2",
	              2, params, e);
}

int rep_store_truth_get(struct db *db, const char *subject, long long *hits, long long *last,
                        struct err *e)
{
	const char *params[1] = {subject};
	PGresult *res;

	*hits = *last = 0;
	res = db_exec(db,
	              "SELECT hits, extract(epoch FROM last_hit)::bigint FROM rep_ground_truth "
	              "WHERE subject = $1",
	              1, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		*hits = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		*last = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	}
	PQclear(res);
	return 0;
}
