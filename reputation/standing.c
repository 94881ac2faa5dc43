/*
 * standing.c - each reporter's standing: agreement with the ground truth raises it,
 * contradicting it lowers it.
 *
 * A pass looks at every subject with evidence from two or more sources.  For each local
 * reporter that is not vetted it takes the ground truth about the subject (truth.c: a
 * recent spamtrap hit, else the direction of the vetted reporters' evidence) and compares
 * it with the reporter's own direction (more bad or more good weight): the same is an
 * agreement, the opposite a disagreement; no ground truth judges nothing.  The others'
 * numbers never judge: a ring cannot raise itself nor push an honest reporter down.
 * Standing is then standing_default * 2 (a + 1) / (a + d + 2), clamped to standing_min ..
 * standing_max: neutral with no track record, near twice the default for a reporter the
 * truth always confirms, and towards the floor for one it always contradicts.  The counts
 * are recomputed from the current evidence on every pass, so they follow the verdicts as
 * they settle and decay, and the subjects are re-summarised with the new weights.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "handlers.h"
#include "store.h"

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

/* The ground truth about a subject: +1 bad (a recent trap hit, or the vetted reporters'
 * evidence leaning bad), -1 good (vetted evidence leaning good), 0 none, -2 on error.
 * skip: the row of the reporter being judged, left out of the vetted sum. */
static int truth_direction(struct rep *rep, struct db *db, const char *subject,
                           const struct rep_contrib *c, int n, int skip, long long now,
                           struct err *e)
{
	long long last = 0, hits = rep_truth_recent(rep, db, subject, now, &last, e);
	double lean = 0;

	if (hits < 0)
		return -2;
	if (hits > 0)
		return 1;
	for (int k = 0; k < n; k++)
		if (k != skip && c[k].vetted)
			lean += (rep_decay(c[k].bad, c[k].t, now, rep->p.half_life) -
			         rep_decay(c[k].good, c[k].t, now, rep->p.half_life)) *
			        c[k].standing;
	return lean > 0.01 ? 1 : lean < -0.01 ? -1 : 0;
}

/* Judge every local reporter of one subject against the ground truth about it (truth.c):
 * a recent spamtrap hit, or the vetted reporters' evidence; never against the others'
 * numbers.  Vetted reporters and peers are not judged. */
static int judge_subject(struct rep *rep, struct db *db, const char *subject, long long now,
                         struct tallies *t, struct err *e)
{
	struct rep_contribs rows;
	struct rep_contrib *c;
	int rc = -1;

	if (rep_store_contribs(db, subject, rep->p.standing_default, &rows, e) < 0)
		return -1;
	c = rows.v;
	rep_contribs_vet(&rep->p, c, rows.n, now);
	for (int i = 0; i < rows.n; i++) {
		struct tally *tl;
		double bad = rep_decay(c[i].bad, c[i].t, now, rep->p.half_life);
		double good = rep_decay(c[i].good, c[i].t, now, rep->p.half_life);
		int truth;

		if (c[i].peer || c[i].vetted || fmax(bad, good) < 0.01)
			continue;
		if ((truth = truth_direction(rep, db, subject, c, rows.n, i, now, e)) == -2)
			goto out;
		if (truth == 0)
			continue;
		if ((tl = tally_of(t, c[i].reporter)) == NULL) {
			err_set(e, ERR_INTERNAL, "internal", "out of memory");
			goto out;
		}
		if ((bad > good) == (truth > 0))
			tl->agree++;
		else
			tl->disagree++;
	}
	rc = 0;
out:
	rep_contribs_clear(&rows);
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
	if (rep_store_standing_reset(db, e) < 0)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		const struct tally *tl = &t->v[i];

		if (rep_store_standing_set(db, tl->domain, tl->agree, tl->disagree,
		                           standing_of(&rep->p, tl->agree, tl->disagree), e) < 0)
			return -1;
		(*changed)++;
	}
	return 0;
}

int rep_standing_update(struct rep *rep, struct db *db, long long now, int *changed, struct err *e)
{
	struct tallies t = {0};
	struct rep_subject_list subjects;
	int rc = -1;

	*changed = 0;
	if (rep_store_shared_subjects(db, &subjects, e) < 0)
		return -1;
	for (int i = 0; i < subjects.n; i++)
		if (judge_subject(rep, db, subjects.v[i], now, &t, e) < 0)
			goto out;
	if (db_begin(db, e) < 0)
		goto out;
	if (store_tallies(rep, db, &t, changed, e) < 0)
		goto fail;
	for (int i = 0; i < subjects.n; i++)
		if (rep_subject_refresh(rep, db, subjects.v[i], now, e) < 0)
			goto fail;
	if (db_commit(db, e) < 0)
		goto fail;
	rep_changed_all(rep);
	rc = 0;
	goto out;
fail:
	db_rollback(db);
out:
	free(t.v);
	rep_subject_list_clear(&subjects);
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
