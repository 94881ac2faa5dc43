/*
 * standing.c - each reporter's standing: agreement with the others raises it, being an
 * outlier lowers it.
 *
 * A pass looks at every subject with evidence from two or more sources.  For each local
 * reporter it computes the verdict of the others alone (the same scoring, the reporter's
 * rows left out) and compares it with the reporter's own direction (more bad or more good
 * weight): bad against block, or good against trusted/known, is an agreement; bad against
 * trusted/known, or good against block, a disagreement; an undecided "unknown" is neither.
 * Standing is then standing_default * 2 (a + 1) / (a + d + 2), clamped to standing_min ..
 * standing_max: neutral with no track record, near twice the default for a reporter the
 * others always confirm, and towards the floor for one they always contradict.  The counts
 * are recomputed from the current evidence on every pass, so they follow the verdicts as
 * they settle and decay, and the subjects are re-summarised with the new weights.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "core/log.h"

struct tally {
	char domain[256];
	int agree, disagree;
};

struct tallies {
	struct tally *v;
	size_t n, cap;
};

static struct tally *tally_of(struct tallies *t, const char *domain)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].domain, domain) == 0)
			return &t->v[i];
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct tally *v = realloc(t->v, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	memset(&t->v[t->n], 0, sizeof(t->v[0]));
	snprintf(t->v[t->n].domain, sizeof(t->v[0].domain), "%s", domain);
	return &t->v[t->n++];
}

/* Judge every local reporter of one subject against the verdict of the others. */
static int judge_subject(struct rep *rep, struct db *db, const char *subject, long long now,
                         struct tallies *t, struct err *e)
{
	struct rep_contrib *c = NULL, *others = NULL;
	PGresult *res = NULL;
	int n = 0, rc = -1;

	if (rep_contrib_load(rep, db, subject, &res, &c, &n, e) < 0)
		return -1;
	if ((others = calloc((size_t)n + 1, sizeof(*others))) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		struct rep_score sc;
		struct tally *tl;
		double bad = rep_decay(c[i].bad, c[i].t, now, rep->p.half_life);
		double good = rep_decay(c[i].good, c[i].t, now, rep->p.half_life);
		int m = 0, says_bad = bad > good;

		if (c[i].peer || fmax(bad, good) < 0.01)
			continue;
		for (int k = 0; k < n; k++)
			if (k != i)
				others[m++] = c[k];
		if (rep_score_compute(&rep->p, subject, others, m, now, &sc, e) < 0)
			goto out;
		rep_score_clear(&sc);
		if (sc.verdict == REP_UNKNOWN)
			continue;
		if ((tl = tally_of(t, c[i].reporter)) == NULL) {
			err_set(e, ERR_INTERNAL, "internal", "out of memory");
			goto out;
		}
		if (says_bad == (sc.verdict == REP_BLOCK))
			tl->agree++;
		else
			tl->disagree++;
	}
	rc = 0;
out:
	free(others);
	free(c);
	PQclear(res);
	return rc;
}

static double standing_of(const struct rep_params *p, int a, int d)
{
	double s = p->standing_default * 2.0 * (a + 1) / (a + d + 2);

	return fmin(p->standing_max, fmax(p->standing_min, s));
}

static int store_tallies(struct rep *rep, struct db *db, const struct tallies *t, int *changed,
                         struct err *e)
{
	/* Reporters no longer judged on anything go back to neutral counts. */
	if (db_run(db,
	           "UPDATE rep_reporters SET agreements = 0, disagreements = 0, standing = NULL, "
	           "standing_updated = now() WHERE agreements <> 0 OR disagreements <> 0",
	           0, NULL, e) < 0)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		char a[16], d[16], s[32];
		const char *params[4] = {t->v[i].domain, a, d, s};

		snprintf(a, sizeof(a), "%d", t->v[i].agree);
		snprintf(d, sizeof(d), "%d", t->v[i].disagree);
		snprintf(s, sizeof(s), "%.17g",
		         standing_of(&rep->p, t->v[i].agree, t->v[i].disagree));
		if (db_run(
		        db,
		        "UPDATE rep_reporters SET agreements = $2::int, disagreements = $3::int, "
		        "standing = $4::float8, standing_updated = now() WHERE domain = $1",
		        4, params, e) < 0)
			return -1;
		(*changed)++;
	}
	return 0;
}

int rep_standing_update(struct rep *rep, struct db *db, long long now, int *changed, struct err *e)
{
	struct tallies t = {0};
	PGresult *subjects;
	int rc = -1, n;

	*changed = 0;
	subjects =
	    db_exec(db, "SELECT subject FROM rep_contrib GROUP BY subject HAVING count(*) >= 2", 0,
	            NULL, e);
	if (subjects == NULL)
		return -1;
	n = PQntuples(subjects);
	for (int i = 0; i < n; i++)
		if (judge_subject(rep, db, PQgetvalue(subjects, i, 0), now, &t, e) < 0)
			goto out;
	if (db_begin(db, e) < 0)
		goto out;
	if (store_tallies(rep, db, &t, changed, e) < 0)
		goto fail;
	for (int i = 0; i < n; i++)
		if (rep_subject_refresh(rep, db, PQgetvalue(subjects, i, 0), now, e) < 0)
			goto fail;
	if (db_commit(db, e) < 0)
		goto fail;
	rep_cache_flush(rep->cache);
	rc = 0;
	goto out;
fail:
	db_rollback(db);
out:
	free(t.v);
	PQclear(subjects);
	return rc;
}

/* Operator: run a pass now (after a burst of reports, or in tests). */
void rep_standing_post(struct rep_req *r)
{
	struct err e = {0};
	int changed = 0;

	if (rep_auth_operator(r, &e) < 0 ||
	    rep_standing_update(r->rep, r->db, (long long)time(NULL), &changed, &e) < 0)
		return rep_fail(r, &e);
	log_info(r->http->reqid, "standing: %d reporter(s) judged", changed);
	http_reply_json(r->resp, 200, json_pack("{s:i}", "judged", changed));
}

/* ------------------------------------------------------------------ the thread */

struct rep_standing {
	struct rep *rep;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stop;
};

static void *standing_loop(void *arg)
{
	struct rep_standing *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)s->rep->cfg.standing_interval;
		while (!s->stop && pthread_cond_timedwait(&s->wake, &s->lock, &until) == 0)
			;
		if (s->stop)
			break;
		pthread_mutex_unlock(&s->lock);
		struct db *db = db_pool_get(s->rep->pool);
		struct err e = {0};
		int changed = 0;

		if (rep_standing_update(s->rep, db, (long long)time(NULL), &changed, &e) < 0)
			log_warn(NULL, "standing: %s: %s", e.code, e.msg);
		else
			log_debug(NULL, "standing: %d reporter(s) judged", changed);
		db_pool_put(s->rep->pool, db);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct rep_standing *rep_standing_start(struct rep *rep, struct err *e)
{
	struct rep_standing *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	s->rep = rep;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	if (pthread_create(&s->thread, NULL, standing_loop, s) != 0) {
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->wake);
		free(s);
		err_set(e, ERR_INTERNAL, "internal", "cannot start the standing thread");
		return NULL;
	}
	return s;
}

void rep_standing_stop(struct rep_standing *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->wake);
	free(s);
}
