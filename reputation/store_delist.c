/*
 * store_delist.c - rep_delist_requests (a subject owner's request for review, its proof
 * and the operator's decision) and rep_delist_events (the public trail of each).  The
 * requester's contact is stored but never read back here: it is not public.  See store.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define REQUEST_COLUMNS                                                                            \
	"id, subject, method, proven_by, reason, status, " TS("created") ", " TS(                  \
	    "decided") ", coalesce(decision_note, ''), score_at_request::text"

void rep_delist_clear(struct rep_delist *d)
{
	if (d == NULL)
		return;
	free(d->proven_by);
	free(d->reason);
	free(d->note);
	free(d->snapshot);
	memset(d, 0, sizeof(*d));
}

static int request_from(PGresult *res, int i, struct rep_delist *d, struct err *e)
{
	const char *note = PQgetvalue(res, i, 8);

	memset(d, 0, sizeof(*d));
	d->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	snprintf(d->subject, sizeof(d->subject), "%s", PQgetvalue(res, i, 1));
	snprintf(d->method, sizeof(d->method), "%s", PQgetvalue(res, i, 2));
	snprintf(d->status, sizeof(d->status), "%s", PQgetvalue(res, i, 5));
	snprintf(d->created, sizeof(d->created), "%s", PQgetvalue(res, i, 6));
	if (!PQgetisnull(res, i, 7))
		snprintf(d->decided, sizeof(d->decided), "%s", PQgetvalue(res, i, 7));
	d->proven_by = strdup(PQgetvalue(res, i, 3));
	d->reason = strdup(PQgetvalue(res, i, 4));
	d->note = note[0] ? strdup(note) : NULL;
	d->snapshot = strdup(PQgetvalue(res, i, 9));
	if (d->proven_by == NULL || d->reason == NULL || (note[0] && d->note == NULL) ||
	    d->snapshot == NULL) {
		rep_delist_clear(d);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	return 0;
}

int rep_store_delist_create(struct db *db, const struct rep_delist_new *n, long long *id,
                            struct err *e)
{
	const char *params[7] = {n->subject, n->method,  n->proven_by, n->proof,
	                         n->reason,  n->contact, n->snapshot};
	PGresult *res;

	if (db_begin(db, e) < 0)
		return -1;
	res = db_exec(db,
	              "INSERT INTO rep_delist_requests (subject, method, proven_by, proof, reason, "
	              "contact, score_at_request) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
	              7, params, e);
	if (res == NULL)
		goto fail;
	params[0] = PQgetvalue(res, 0, 0);
	params[1] = n->proven_by;
	if (db_run(db,
	           "INSERT INTO rep_delist_events (request, event, detail) "
	           "VALUES ($1, 'requested', 'ownership proven by ' || $2)",
	           2, params, e) < 0 ||
	    db_commit(db, e) < 0)
		goto fail;
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
fail:
	PQclear(res);
	db_rollback(db);
	return -1;
}

int rep_store_delist_get(struct db *db, long long id, struct rep_delist *out, struct err *e)
{
	char id_s[24];
	const char *params[1] = {id_s};
	PGresult *res;
	int found;

	snprintf(id_s, sizeof(id_s), "%lld", id);
	res = db_exec(db, "SELECT " REQUEST_COLUMNS " FROM rep_delist_requests WHERE id = $1", 1,
	              params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found && request_from(res, 0, out, e) < 0)
		found = -1;
	PQclear(res);
	return found;
}

int rep_store_delist_list(struct db *db, const char *subject, const char *status, long long limit,
                          struct rep_delist **out, int *n, struct err *e)
{
	char limit_s[24];
	const char *params[3] = {subject, status, limit_s};
	struct rep_delist *v;
	PGresult *res;

	snprintf(limit_s, sizeof(limit_s), "%lld", limit);
	res = db_exec(
	    db,
	    "SELECT " REQUEST_COLUMNS " FROM rep_delist_requests "
	    "WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR status = $2) "
	    "ORDER BY id DESC LIMIT $3::int",
	    3, params, e);
	if (res == NULL)
		return -1;
	*n = 0;
	if ((v = calloc((size_t)PQntuples(res) + 1, sizeof(*v))) == NULL) {
		PQclear(res);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (int i = 0; i < PQntuples(res); i++, (*n)++)
		if (request_from(res, i, &v[i], e) < 0) {
			while (*n > 0)
				rep_delist_clear(&v[--(*n)]);
			free(v);
			PQclear(res);
			return -1;
		}
	PQclear(res);
	*out = v;
	return 0;
}

void rep_delist_events_free(struct rep_delist_event *v, int n)
{
	for (int i = 0; v != NULL && i < n; i++)
		free(v[i].detail);
	free(v);
}

int rep_store_delist_events(struct db *db, long long id, struct rep_delist_event **out, int *n,
                            struct err *e)
{
	char id_s[24];
	const char *params[1] = {id_s};
	struct rep_delist_event *v;
	PGresult *res;

	snprintf(id_s, sizeof(id_s), "%lld", id);
	res =
	    db_exec(db,
	            "SELECT event, " TS("at") ", detail FROM rep_delist_events WHERE request = $1 "
	                                      "ORDER BY id",
	            1, params, e);
	if (res == NULL)
		return -1;
	*n = PQntuples(res);
	if ((v = calloc((size_t)*n + 1, sizeof(*v))) == NULL) {
		PQclear(res);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (int i = 0; i < *n; i++) {
		snprintf(v[i].event, sizeof(v[i].event), "%s", PQgetvalue(res, i, 0));
		snprintf(v[i].at, sizeof(v[i].at), "%s", PQgetvalue(res, i, 1));
		if ((v[i].detail = strdup(PQgetvalue(res, i, 2))) == NULL) {
			rep_delist_events_free(v, i);
			PQclear(res);
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		}
	}
	PQclear(res);
	*out = v;
	return 0;
}

int rep_store_delist_decide(struct db *db, long long id, const char *outcome, const char *note,
                            char subject[REP_SUBJECT_MAX + 16], struct err *e)
{
	char id_s[24];
	const char *params[3] = {id_s, outcome, note};
	PGresult *res;
	int decided;

	snprintf(id_s, sizeof(id_s), "%lld", id);
	res = db_exec(db,
	              "UPDATE rep_delist_requests SET status = $2, decided = now(), "
	              "decision_note = $3 WHERE id = $1 AND status = 'pending' RETURNING subject",
	              3, params, e);
	if (res == NULL)
		return -1;
	decided = PQntuples(res) == 1;
	if (decided)
		snprintf(subject, REP_SUBJECT_MAX + 16, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return decided;
}

int rep_store_delist_status(struct db *db, long long id, char status[16], struct err *e)
{
	char id_s[24];
	const char *params[1] = {id_s};
	PGresult *res;
	int found;

	snprintf(id_s, sizeof(id_s), "%lld", id);
	res = db_exec(db, "SELECT status FROM rep_delist_requests WHERE id = $1", 1, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found)
		snprintf(status, 16, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return found;
}

int rep_store_delist_event(struct db *db, long long id, const char *event, const char *detail,
                           struct err *e)
{
	char id_s[24];
	const char *params[3] = {id_s, event, detail};

	snprintf(id_s, sizeof(id_s), "%lld", id);
	return db_run(db,
	              "INSERT INTO rep_delist_events (request, event, detail) VALUES ($1, $2, $3)",
	              3, params, e);
}
