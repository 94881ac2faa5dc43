/*
 * store_evidence.c - rep_contrib, each source's evidence about a subject as two decayed
 * sums (bad, good) with their reference time, and rep_subject_scores, the stored summary
 * of a subject: what the federation feed publishes in seq order, and where a delisting
 * is marked.  See store.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The columns every evidence read takes, in the order contribs_from() reads them;
 * $1 is the standing of a reporter never judged. */
#define CONTRIB_COLUMNS                                                                            \
	"c.subject, c.reporter, c.net, coalesce(r.standing, $1::float8), c.bad, c.good, c.t, "     \
	"c.categories, c.reports, extract(epoch FROM c.first_seen)::bigint, "                      \
	"extract(epoch FROM c.last_seen)::bigint, r.domain IS NULL, "                              \
	"coalesce(extract(epoch FROM r.first_seen)::bigint, 0) "                                   \
	"FROM rep_contrib c LEFT JOIN rep_reporters r ON r.domain = c.reporter "

static int contribs_from(PGresult *res, struct rep_contribs *out, struct err *e)
{
	int rows = PQntuples(res);
	struct rep_contrib *c = calloc((size_t)rows + 1, sizeof(*c));

	if (c == NULL) {
		PQclear(res);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		c[i].subject = PQgetvalue(res, i, 0);
		c[i].reporter = PQgetvalue(res, i, 1);
		c[i].net = PQgetvalue(res, i, 2);
		c[i].standing = strtod(PQgetvalue(res, i, 3), NULL);
		c[i].bad = strtod(PQgetvalue(res, i, 4), NULL);
		c[i].good = strtod(PQgetvalue(res, i, 5), NULL);
		c[i].t = strtoll(PQgetvalue(res, i, 6), NULL, 10);
		c[i].categories = (unsigned)strtoul(PQgetvalue(res, i, 7), NULL, 10);
		c[i].reports = strtol(PQgetvalue(res, i, 8), NULL, 10);
		c[i].first_seen = strtoll(PQgetvalue(res, i, 9), NULL, 10);
		c[i].last_seen = strtoll(PQgetvalue(res, i, 10), NULL, 10);
		c[i].peer = strcmp(PQgetvalue(res, i, 11), "t") == 0;
		c[i].reporter_since = strtoll(PQgetvalue(res, i, 12), NULL, 10);
	}
	out->v = c;
	out->n = rows;
	out->rows = res;
	return 0;
}

int rep_store_contribs(struct db *db, const char *subject, double standing_default,
                       struct rep_contribs *out, struct err *e)
{
	char def[32];
	const char *params[2] = {def, subject};
	PGresult *res;

	memset(out, 0, sizeof(*out));
	snprintf(def, sizeof(def), "%.17g", standing_default);
	res = db_exec(db, "SELECT " CONTRIB_COLUMNS "WHERE c.subject = $2", 2, params, e);
	return res == NULL ? -1 : contribs_from(res, out, e);
}

int rep_store_contribs_all(struct db *db, double standing_default, struct rep_contribs *out,
                           struct err *e)
{
	char def[32];
	const char *params[1] = {def};
	PGresult *res;

	memset(out, 0, sizeof(*out));
	snprintf(def, sizeof(def), "%.17g", standing_default);
	res = db_exec(db, "SELECT " CONTRIB_COLUMNS "ORDER BY c.subject", 1, params, e);
	return res == NULL ? -1 : contribs_from(res, out, e);
}

void rep_contribs_clear(struct rep_contribs *c)
{
	if (c == NULL)
		return;
	free(c->v);
	PQclear(c->rows);
	memset(c, 0, sizeof(*c));
}

int rep_store_evidence_add(struct db *db, const char *subject, const struct rep_report *r,
                           double bad, double good, double half_life, struct err *e)
{
	char b[32], g[32], t[24], cats[16], hl[32];
	const char *params[8] = {subject, r->reporter, r->reporter_net, b, g, t, cats, hl};

	snprintf(b, sizeof(b), "%.17g", bad);
	snprintf(g, sizeof(g), "%.17g", good);
	snprintf(t, sizeof(t), "%lld", (long long)r->observed);
	snprintf(cats, sizeof(cats), "%u", 1u << r->category);
	snprintf(hl, sizeof(hl), "%.17g", half_life);
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

int rep_store_evidence_import(struct db *db, const char *subject, const char *reporter, double bad,
                              double good, long long t, long long reports, struct err *e)
{
	char b[32], g[32], ts[24], n[24];
	const char *params[6] = {subject, reporter, b, g, ts, n};

	snprintf(b, sizeof(b), "%.17g", bad);
	snprintf(g, sizeof(g), "%.17g", good);
	snprintf(ts, sizeof(ts), "%lld", t);
	snprintf(n, sizeof(n), "%lld", reports);
	return db_run(db,
	              "INSERT INTO rep_contrib (subject, reporter, net, bad, good, t, categories, "
	              "reports, first_seen, last_seen) VALUES ($1, $2, $2, $3, $4, $5::bigint, 0, "
	              "$6, to_timestamp($5::bigint), to_timestamp($5::bigint)) ON CONFLICT "
	              "(subject, reporter) DO UPDATE "
	              "SET bad = EXCLUDED.bad, good = EXCLUDED.good, t = EXCLUDED.t, "
	              "reports = EXCLUDED.reports, last_seen = EXCLUDED.last_seen",
	              6, params, e);
}

int rep_store_evidence_drop_bad(struct db *db, const char *subject, struct err *e)
{
	const char *params[1] = {subject};

	return db_run(db, "UPDATE rep_contrib SET bad = 0 WHERE subject = $1", 1, params, e);
}

int rep_store_shared_subjects(struct db *db, struct rep_subject_list *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	out->rows =
	    db_exec(db, "SELECT subject FROM rep_contrib GROUP BY subject HAVING count(*) >= 2", 0,
	            NULL, e);
	if (out->rows == NULL)
		return -1;
	out->n = PQntuples(out->rows);
	if ((out->v = calloc((size_t)out->n + 1, sizeof(*out->v))) == NULL) {
		rep_subject_list_clear(out);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (int i = 0; i < out->n; i++)
		out->v[i] = PQgetvalue(out->rows, i, 0);
	return 0;
}

void rep_subject_list_clear(struct rep_subject_list *l)
{
	if (l == NULL)
		return;
	free(l->v);
	PQclear(l->rows);
	memset(l, 0, sizeof(*l));
}

int rep_store_summary_save(struct db *db, const char *subject, const struct rep_score *sc,
                           long long now, struct err *e)
{
	char v[9][40];
	const char *params[11];

	snprintf(v[0], sizeof(v[0]), "%.17g", sc->score);
	snprintf(v[1], sizeof(v[1]), "%.17g", sc->ci_low);
	snprintf(v[2], sizeof(v[2]), "%.17g", sc->ci_high);
	snprintf(v[3], sizeof(v[3]), "%.17g", sc->bad);
	snprintf(v[4], sizeof(v[4]), "%.17g", sc->good);
	snprintf(v[5], sizeof(v[5]), "%.17g", sc->local_bad);
	snprintf(v[6], sizeof(v[6]), "%.17g", sc->local_good);
	snprintf(v[7], sizeof(v[7]), "%lld", now);
	snprintf(v[8], sizeof(v[8]), "%ld %ld", sc->reports, sc->reporters);
	params[0] = subject;
	for (int i = 0; i < 8; i++)
		params[i + 1] = v[i];
	params[9] = rep_verdict_name(sc->verdict);
	params[10] = v[8];
	return db_run(
	    db,
	    "INSERT INTO rep_subject_scores AS s (subject, score, ci_low, ci_high, bad, "
	    "good, local_bad, local_good, t, verdict, reports, reporters, first_seen, "
	    "last_seen, seq) "
	    "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
	    "split_part($11, ' ', 1)::bigint, split_part($11, ' ', 2)::int, "
	    "min(first_seen), max(last_seen), nextval('rep_feed_seq') "
	    "FROM rep_contrib WHERE subject = $1 "
	    "ON CONFLICT (subject) DO UPDATE SET score = EXCLUDED.score, "
	    "ci_low = EXCLUDED.ci_low, ci_high = EXCLUDED.ci_high, bad = EXCLUDED.bad, "
	    "good = EXCLUDED.good, local_bad = EXCLUDED.local_bad, "
	    "local_good = EXCLUDED.local_good, t = EXCLUDED.t, verdict = EXCLUDED.verdict, "
	    "reports = EXCLUDED.reports, reporters = EXCLUDED.reporters, "
	    "first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen, "
	    "updated = now(), seq = EXCLUDED.seq",
	    11, params, e);
}

int rep_store_delisting(struct db *db, const char *subject, struct rep_delisting *out,
                        struct err *e)
{
	const char *params[1] = {subject};
	PGresult *res;
	int found;

	res = db_exec(db,
	              "SELECT " TS("delisted_at") ", delist_request FROM rep_subject_scores "
	                                          "WHERE subject = $1 AND delisted_at IS NOT NULL",
	              1, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found) {
		snprintf(out->at, sizeof(out->at), "%s", PQgetvalue(res, 0, 0));
		snprintf(out->request, sizeof(out->request), "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return found;
}

int rep_store_mark_delisted(struct db *db, const char *subject, const char *request, struct err *e)
{
	const char *params[2] = {subject, request};

	return db_run(db,
	              "UPDATE rep_subject_scores SET delisted_at = now(), "
	              "delist_request = $2::bigint WHERE subject = $1",
	              2, params, e);
}

int rep_store_feed(struct db *db, long long since, long long limit, struct rep_feed_change **out,
                   int *n, struct err *e)
{
	char since_s[24], limit_s[24];
	const char *params[2] = {since_s, limit_s};
	struct rep_feed_change *v;
	PGresult *res;

	snprintf(since_s, sizeof(since_s), "%lld", since);
	snprintf(limit_s, sizeof(limit_s), "%lld", limit);
	res = db_exec(db,
	              "SELECT seq, subject, local_bad, local_good, t, verdict, reports, reporters "
	              "FROM rep_subject_scores WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int",
	              2, params, e);
	if (res == NULL)
		return -1;
	*n = PQntuples(res);
	if ((v = calloc((size_t)*n + 1, sizeof(*v))) == NULL) {
		PQclear(res);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (int i = 0; i < *n; i++) {
		v[i].seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		snprintf(v[i].subject, sizeof(v[i].subject), "%s", PQgetvalue(res, i, 1));
		v[i].bad = strtod(PQgetvalue(res, i, 2), NULL);
		v[i].good = strtod(PQgetvalue(res, i, 3), NULL);
		v[i].t = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		snprintf(v[i].verdict, sizeof(v[i].verdict), "%s", PQgetvalue(res, i, 5));
		v[i].reports = strtoll(PQgetvalue(res, i, 6), NULL, 10);
		v[i].reporters = strtoll(PQgetvalue(res, i, 7), NULL, 10);
	}
	PQclear(res);
	*out = v;
	return 0;
}
