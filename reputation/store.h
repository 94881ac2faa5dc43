/*
 * store.h - anchor-reputation's store: the only code that holds SQL (schema: sql/).
 * One file per aggregate:
 *
 *   store_evidence.c    rep_contrib (each source's decayed evidence about a subject) and
 *                       rep_subject_scores (the stored summary, the feed's order, the
 *                       delisting mark)
 *   store_reports.c     rep_reports and rep_report_subjects (what was reported, for the
 *                       evidence ids of an answer and for disputes)
 *   store_reporters.c   rep_reporters (seen, ARF registration, standing)
 *   store_delist.c      rep_delist_requests and rep_delist_events
 *   store_federation.c  rep_federation_peers and rep_federation_imports
 *
 * Every function borrows a connection; those that change several rows that belong
 * together either say that they open their own transaction or run inside the caller's
 * (db_begin .. db_commit), so that a handler can make one transaction of several.
 * Results come back as structs; those holding rows are released with their _clear.
 * Errors are struct err values: ERR_TEMP/ERR_INTERNAL from lib/core/db, set nowhere
 * else.  Handlers are parse -> authorise -> store -> reply and never see a PGresult.
 */
#ifndef REP_STORE_H
#define REP_STORE_H

#include "rep.h"

/* ------------------------------------------------------------------ store_evidence.c */

/* Evidence rows: one subject's, or every subject's ordered by subject.  The strings of
 * v[] (subject, reporter, net) point into the rows; rep_contribs_clear releases both. */
struct rep_contribs {
	struct rep_contrib *v;
	int n;
	PGresult *rows;
};

int rep_store_contribs(struct db *db, const char *subject, double standing_default,
                       struct rep_contribs *out, struct err *e);
int rep_store_contribs_all(struct db *db, double standing_default, struct rep_contribs *out,
                           struct err *e);
void rep_contribs_clear(struct rep_contribs *c);

/* Fold one report's weight into its reporter's row for the subject (decayed to the later
 * of the two times with half_life).  Inside the caller's transaction. */
int rep_store_evidence_add(struct db *db, const char *subject, const struct rep_report *r,
                           double bad, double good, double half_life, struct err *e);
/* A peer's (already weighted) evidence replaces its row for the subject. */
int rep_store_evidence_import(struct db *db, const char *subject, const char *reporter, double bad,
                              double good, long long t, long long reports, struct err *e);
/* A delisting drops the subject's bad evidence so far. */
int rep_store_evidence_drop_bad(struct db *db, const char *subject, struct err *e);

/* Subjects with evidence from two or more sources (what standing can judge). */
struct rep_subject_list {
	const char **v;
	int n;
	PGresult *rows;
};
int rep_store_shared_subjects(struct db *db, struct rep_subject_list *out, struct err *e);
void rep_subject_list_clear(struct rep_subject_list *l);

/* Store the summary of a subject as of now with the next feed sequence number. */
int rep_store_summary_save(struct db *db, const char *subject, const struct rep_score *sc,
                           long long now, struct err *e);
/* The delisting mark of a subject: 1 (and *out filled) when delisted, 0 when not. */
struct rep_delisting {
	char at[32];      /* RFC 3339 */
	char request[24]; /* the request's id */
};
int rep_store_delisting(struct db *db, const char *subject, struct rep_delisting *out,
                        struct err *e);
int rep_store_mark_delisted(struct db *db, const char *subject, const char *request, struct err *e);

/* One change of the federation feed: this provider's own evidence only. */
struct rep_feed_change {
	long long seq, t, reports, reporters;
	char subject[REP_SUBJECT_MAX + 16];
	double bad, good;
	char verdict[16];
};
/* Changes after since, at most limit of them, in feed order (*out malloc'd). */
int rep_store_feed(struct db *db, long long since, long long limit, struct rep_feed_change **out,
                   int *n, struct err *e);

/* ------------------------------------------------------------------ store_reports.c */

/* Insert a report; 1 with *rowid and its public id when stored, 0 when its (reporter, id)
 * was already there, -1 on error.  Inside the caller's transaction. */
int rep_store_report_insert(struct db *db, const struct rep_report *r, long long *rowid,
                            char public_id[REP_EVIDENCE_ID_MAX], struct err *e);
int rep_store_report_subject(struct db *db, const char *subject, long long rowid, struct err *e);
/* A verified signature as evidence about a subject: 1 when it is new (it counts), 0 when a
 * report already brought it (it counted then).  Inside the caller's transaction. */
int rep_store_signature_claim(struct db *db, const char *subject, const char *sig_id,
                              long long rowid, struct err *e);

/* The public ids of the newest reports about a subject, at most 10 each way. */
#define REP_EVIDENCE_IDS 10
struct rep_evidence_ids {
	char bad[REP_EVIDENCE_IDS][REP_EVIDENCE_ID_MAX],
	    good[REP_EVIDENCE_IDS][REP_EVIDENCE_ID_MAX];
	int nbad, ngood;
};
int rep_store_evidence_ids(struct db *db, const char *subject, struct rep_evidence_ids *out,
                           struct err *e);

/* Ground truth: a vetted reporter's spamtrap hit about subject (report rowid). */
int rep_store_truth_hit(struct db *db, const char *subject, long long rowid, struct err *e);
/* Hits about subject and the last one's time (unix seconds); 0 and 0 when none. */
int rep_store_truth_get(struct db *db, const char *subject, long long *hits, long long *last,
                        struct err *e);

/* ------------------------------------------------------------------ store_reporters.c */

/* A report arrived from domain (created on first sight); counted: it was stored. */
int rep_store_reporter_seen(struct db *db, const char *domain, struct err *e);
int rep_store_reporter_counted(struct db *db, const char *domain, struct err *e);
/* The reporter whose ARF token hashes to hash: 1 with domain[256] set, 0 when none. */
int rep_store_reporter_by_token(struct db *db, const char *hash, char domain[256], struct err *e);
/* Register (or re-key) domain for ARF with the hash of its new token. */
int rep_store_reporter_register(struct db *db, const char *domain, const char *hash, struct err *e);

struct rep_reporter {
	char domain[256];
	double standing; /* standing_default when never judged */
	long long agreements, disagreements, reports;
	int arf; /* registered for ARF */
	char first_seen[32], last_seen[32];
};
/* 1 and *out when known (domain compared in lowercase), 0 when not. */
int rep_store_reporter_get(struct db *db, const char *domain, double standing_default,
                           struct rep_reporter *out, struct err *e);
/* Standing: every reporter back to neutral counts, then one judged reporter's counts. */
int rep_store_standing_reset(struct db *db, struct err *e);
int rep_store_standing_set(struct db *db, const char *domain, int agree, int disagree,
                           double standing, struct err *e);

/* ------------------------------------------------------------------ store_delist.c */

/* A request as stored.  The strings are malloc'd (rep_delist_clear). */
struct rep_delist {
	long long id;
	char subject[REP_SUBJECT_MAX + 16];
	char method[16], status[16];
	char created[32], decided[32];              /* decided: "" while pending */
	char *proven_by, *reason, *note, *snapshot; /* note: NULL when none */
};
void rep_delist_clear(struct rep_delist *d);

/* What a new request holds; created pending with its 'requested' event in one
 * transaction of its own.  *id receives its id. */
struct rep_delist_new {
	const char *subject, *method, *proven_by, *proof, *reason, *contact, *snapshot;
};
int rep_store_delist_create(struct db *db, const struct rep_delist_new *n, long long *id,
                            struct err *e);
/* 1 and *out when there is request id, 0 when not. */
int rep_store_delist_get(struct db *db, long long id, struct rep_delist *out, struct err *e);
/* The newest first, filtered by subject and status when not NULL; *out malloc'd, each
 * entry to be cleared. */
int rep_store_delist_list(struct db *db, const char *subject, const char *status, long long limit,
                          struct rep_delist **out, int *n, struct err *e);

struct rep_delist_event {
	char event[16], at[32];
	char *detail; /* malloc'd */
};
int rep_store_delist_events(struct db *db, long long id, struct rep_delist_event **out, int *n,
                            struct err *e);
void rep_delist_events_free(struct rep_delist_event *v, int n);

/* Inside the caller's transaction: decide a pending request (1, subject[] set), or 0
 * when it is not pending; then rep_store_delist_status says why (1 and status[], or 0:
 * no such request), and rep_store_delist_event records the decision. */
int rep_store_delist_decide(struct db *db, long long id, const char *outcome, const char *note,
                            char subject[REP_SUBJECT_MAX + 16], struct err *e);
int rep_store_delist_status(struct db *db, long long id, char status[16], struct err *e);
int rep_store_delist_event(struct db *db, long long id, const char *event, const char *detail,
                           struct err *e);

/* ------------------------------------------------------------------ store_federation.c */

/* The peer's row (created, or its url and weight updated) and its cursor. */
int rep_store_peer_open(struct db *db, const struct rep_peer *peer, long long *cursor,
                        struct err *e);
/* Inside the page's transaction: the cursor after n changes imported. */
int rep_store_peer_advance(struct db *db, const char *domain, long long next, long long n,
                           struct err *e);
/* A failed poll, kept for the operator; an error here is only logged. */
void rep_store_peer_error(struct db *db, const char *domain, const char *msg);

/* What a peer signed about a subject, unweighted: the provenance of its evidence. */
struct rep_import {
	const char *peer, *subject, *verdict;
	long long seq, t, reporters;
	double bad, good;
};
int rep_store_import_note(struct db *db, const struct rep_import *im, struct err *e);

#endif
