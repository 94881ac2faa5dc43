/*
 * score.c - time-decayed, capped, standing-weighted aggregation (docs/operator-reputation.md).
 *
 * Each reporter's evidence about a subject is kept as two decayed sums (bad, good) with a
 * reference time; a sum s stored at t is worth s * 2^(-(now - t) / half_life) at now, so
 * stale evidence fades by itself and nothing needs rewriting as time passes.  At read time:
 *
 *   w_i      = decayed sum * standing of reporter i      (peers: weight applied on import)
 *   w_i     <- min(w_i, reporter_cap)                    one domain cannot move a score far
 *   network <- scaled so that its reporters add at most network_cap
 *   B, G     = sums over reporters of bad and (verified) good weight
 *   score    = (B - G) / (B + G + 1)   in (-1, 1), shrunk towards 0 when evidence is thin
 *   CI       = Wilson 95% interval of B / (B + G), mapped onto -1..1
 *
 * Verdicts (decide()): block needs min_reporters distinct domains each carrying at least a
 * tenth of a cap and B >= list_weight (to the two decimals shown, reaches()); trusted the
 * same on the good side with trust_weight;
 * a verdict is contested only by min_reporters domains on the other side carrying at least
 * its weight (symmetric: unlisting costs what listing did); known needs min_reporters
 * domains and half a unit of verified good weight outweighing the bad.
 * The math here takes `now` as a parameter: the unit tests drive it with explicit times.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store.h"

#define REP_Z95 1.959964
#define REP_KNOWN_WEIGHT 0.5
#define REP_PRESENCE 0.1 /* share of reporter_cap a reporter must carry to be counted */
#define REP_MAX_NAMED 3  /* capped reporters named in reasons */
/*
 * Weights are shown to two decimals, and compared with list_weight and trust_weight at
 * that precision: a report has always decayed a little by the time it is counted (one
 * report at a cap of 1 weighs 0.99998 a minute later), so with list_weight equal to
 * min_reporters * reporter_cap a strict comparison would never list anything while the
 * answer printed "weigh 1.00; listing needs 1.00".
 */
#define REP_WEIGHT_SHOWN 0.005

static int reaches(double weight, double threshold)
{
	return weight + REP_WEIGHT_SHOWN >= threshold;
}

double rep_decay(double sum, long long t, long long now, double half_life)
{
	if (sum <= 0)
		return 0;
	if (now <= t || half_life <= 0)
		return sum;
	return sum * exp2(-(double)(now - t) / half_life);
}

void rep_fold(double *sum, long long *t, double w, long long at, double half_life)
{
	long long ref = at > *t ? at : *t;

	*sum = rep_decay(*sum, *t, ref, half_life) + rep_decay(w, at, ref, half_life);
	*t = ref;
}

void rep_wilson(double bad, double n, double z, double *lo, double *hi)
{
	double p, z2, denom, center, half;

	if (n <= 0) {
		*lo = 0;
		*hi = 1;
		return;
	}
	p = bad / n;
	z2 = z * z;
	denom = 1 + z2 / n;
	center = (p + z2 / (2 * n)) / denom;
	half = z * sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom;
	*lo = center - half < 0 ? 0 : center - half;
	*hi = center + half > 1 ? 1 : center + half;
}

double rep_category_weight(enum rep_category c, int verified, int *good)
{
	*good = c == REP_NOT_SPAM;
	switch (c) {
	case REP_NOT_SPAM:
		/* An unverified identity earns nothing: anybody can claim a HELO name. */
		return verified ? 1.0 : 0.0;
	case REP_AUTH_FAIL:
		return 0.5; /* often a forwarder's fault rather than the sender's */
	default:
		return 1.0;
	}
}

static double round4(double x)
{
	return round(x * 1e4) / 1e4;
}

/* Effective weights of each contributor after standing, decay and the two caps. */
struct eff {
	double bad, good, raw_bad, raw_good;
	int net_capped;
};

/* The network cap: the reporters counted in one network (networks.c) add at most
 * network_cap together; a reporter with no network stands alone. */
static void apply_network_cap(const struct rep_params *p, int n, struct eff *ef, const int *group,
                              int ngroups)
{
	for (int g = 0; g < ngroups; g++) {
		double b = 0, gd = 0, fb, fg;
		int members = 0;

		for (int i = 0; i < n; i++)
			if (group[i] == g) {
				b += ef[i].bad;
				gd += ef[i].good;
				members++;
			}
		if (members == 0)
			continue;
		fb = b > p->network_cap ? p->network_cap / b : 1;
		fg = gd > p->network_cap ? p->network_cap / gd : 1;
		for (int i = 0; i < n; i++)
			if (group[i] == g) {
				ef[i].bad *= fb;
				ef[i].good *= fg;
				ef[i].net_capped = fb < 1 || fg < 1;
			}
	}
}

/*
 * A burst: burst_reporters or more reporters, first seen by the service within one
 * burst_window of each other, that each reported this subject while new (their first
 * report about it came within burst_window of their first sight; a back-dated
 * observation is earlier still, so it cannot hide).  Many fresh domains converging on
 * one subject is what a ring looks like; their evidence is held back from the verdict
 * (held[i] = 1).  Vetted reporters and peers are never held.  Returns how many.
 */
static int hold_burst(const struct rep_params *p, const struct rep_contrib *c, int n, int *held)
{
	int best = 0, from = -1;

	if (p->burst_reporters <= 0)
		return 0;
	for (int i = 0; i < n; i++)
		held[i] = !c[i].peer && !c[i].vetted && c[i].reporter_since > 0 &&
		          c[i].first_seen - c[i].reporter_since <= p->burst_window;
	for (int i = 0; i < n; i++) {
		int k = 0;

		if (!held[i])
			continue;
		for (int j = 0; j < n; j++)
			k += held[j] && c[j].reporter_since >= c[i].reporter_since &&
			     c[j].reporter_since - c[i].reporter_since <= p->burst_window;
		if (k > best) {
			best = k;
			from = i;
		}
	}
	if (best < p->burst_reporters) {
		memset(held, 0, (size_t)n * sizeof(int));
		return 0;
	}
	for (int j = 0; j < n; j++)
		held[j] = held[j] && c[j].reporter_since >= c[from].reporter_since &&
		          c[j].reporter_since - c[from].reporter_since <= p->burst_window;
	return best;
}

static void reason(json_t *reasons, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reason(json_t *reasons, const char *code, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_array_append_new(
	    reasons, json_pack("{s:s, s:s, s:[]}", "code", code, "text", text, "evidence"));
}

static void categories_text(unsigned cats, char *out, size_t size)
{
	size_t len = 0;

	out[0] = '\0';
	for (int c = REP_SPAM; c <= REP_AUTH_FAIL; c++) {
		if (c == REP_NOT_SPAM || !(cats & (1u << c)))
			continue;
		len += (size_t)snprintf(out + len, len < size ? size - len : 0, "%s%s",
		                        len ? ", " : "", rep_category_name((enum rep_category)c));
	}
	if (len == 0)
		snprintf(out, size, "abuse");
}

/* min_networks, never more than min_reporters (a domain is at most one network). */
static int networks_needed(const struct rep_params *p)
{
	return p->min_networks < p->min_reporters ? p->min_networks : p->min_reporters;
}

static void explain(const struct rep_params *p, const char *subject, const struct rep_contrib *c,
                    const struct eff *ef, int n, struct rep_score *o)
{
	char cats[96];
	int named = 0;

	categories_text(o->categories, cats, sizeof(cats));
	if (o->bad + o->good < 0.005) {
		reason(o->reasons, "no_reports",
		       o->reports ? "the reports about %s have faded (half-life %.1f days)"
		                  : "no reports about %s",
		       subject, p->half_life / 86400);
	}
	if (o->verdict == REP_BLOCK) {
		reason(o->reasons, "listed",
		       "listed: %d independent reporting domains reported %s as %s; their weight "
		       "%.2f reaches the listing threshold %.2f (score %.2f, 95%% interval %.2f to "
		       "%.2f)",
		       o->bad_reporters, subject, cats, o->bad, p->list_weight, o->score, o->ci_low,
		       o->ci_high);
	} else if (o->bad >= 0.005) {
		if (o->bad_reporters < p->min_reporters)
			reason(o->reasons, "too_few_reporters",
			       "reported as %s by %d reporting domain(s) carrying weight; listing "
			       "needs %d independent domains",
			       cats, o->bad_reporters, p->min_reporters);
		else if (o->bad_networks < networks_needed(p))
			reason(o->reasons, "too_few_networks",
			       "reported as %s by %d domains on %d independent network(s) (their "
			       "mail servers' and key servers' addresses in DNS); listing needs %d",
			       cats, o->bad_reporters, o->bad_networks, networks_needed(p));
		else if (!reaches(o->bad, p->list_weight))
			reason(o->reasons, "below_threshold",
			       "the reports (%s) weigh %.2f after decay; listing needs %.2f", cats,
			       o->bad, p->list_weight);
		else
			reason(o->reasons, "contested",
			       "bad weight %.2f stands against verified good weight %.2f from %d "
			       "domains: a listing stands only while it outweighs the other side",
			       o->bad, o->good, o->good_reporters);
	}
	if (o->burst > 0)
		reason(o->reasons, "burst",
		       "held back: %d reporters the service first saw within %lld s of each other "
		       "reported %s while new; a burst of new reporters on one subject is what a "
		       "ring looks like, so their reports do not count toward its verdict",
		       o->burst, p->burst_window, subject);
	if (o->verdict == REP_TRUSTED)
		reason(
		    o->reasons, "vouched",
		    "%d reporting domains vouched for the verified identity %s; good weight %.2f "
		    "reaches %.2f",
		    o->good_reporters, subject, o->good, p->trust_weight);
	else if (o->verdict == REP_KNOWN)
		reason(o->reasons, "verified_good",
		       "verified good reports from %d domains weigh %.2f against %.2f bad "
		       "(trusted needs weight %.2f)",
		       o->good_reporters, o->good, o->bad, p->trust_weight);
	for (int i = 0; i < n && named < REP_MAX_NAMED; i++) {
		if (ef[i].raw_bad > p->reporter_cap || ef[i].raw_good > p->reporter_cap) {
			reason(
			    o->reasons, "reporter_capped",
			    "the evidence of %s weighs %.2f but counts at most %.2f (reporter cap)",
			    c[i].reporter, fmax(ef[i].raw_bad, ef[i].raw_good), p->reporter_cap);
			named++;
		} else if (ef[i].net_capped) {
			reason(o->reasons, "network_capped",
			       "%s reports from network %s, whose reporters together count at most "
			       "%.2f (network cap)",
			       c[i].reporter, c[i].net, p->network_cap);
			named++;
		}
	}
	for (int i = 0; i < n; i++)
		if (c[i].peer && ef[i].bad + ef[i].good >= 0.005)
			reason(o->reasons, "imported",
			       "includes evidence imported from %s (bad %.2f, good %.2f after the "
			       "peer's weight and cap)",
			       c[i].reporter, ef[i].bad, ef[i].good);
}

/*
 * A side qualifies when min_reporters domains carry its weight and the weight reaches the
 * threshold.  The contest is symmetric: the other side unmakes a verdict only with as much
 * independent evidence as made it, min_reporters domains of its own and at least the same
 * weight (to the precision shown).  So unlisting costs what listing cost, and vouching
 * cannot take back what more reporters listed.  known obeys min_reporters like every
 * verdict: fewer domains can neither make nor unmake any verdict.  Every side also needs
 * min_networks independent networks (networks.c; at most min_reporters are asked): a ring
 * of domains on one host is one network however many names it registers.
 */
/* Enough independent evidence on one side: min_reporters domains on as many independent
 * networks as networks_needed(). */
static int independent(const struct rep_params *p, int reporters, int networks)
{
	return reporters >= p->min_reporters && networks >= networks_needed(p);
}

static int contests(const struct rep_params *p, int reporters, int networks, double weight,
                    double against)
{
	return independent(p, reporters, networks) && reaches(weight, against);
}

static void decide(const struct rep_params *p, struct rep_score *o)
{
	int bad_ind = independent(p, o->bad_reporters, o->bad_networks);
	int good_ind = independent(p, o->good_reporters, o->good_networks);

	o->verdict = REP_UNKNOWN;
	if (bad_ind && reaches(o->bad, p->list_weight) &&
	    !contests(p, o->good_reporters, o->good_networks, o->good, o->bad))
		o->verdict = REP_BLOCK;
	else if (good_ind && reaches(o->good, p->trust_weight) &&
	         !contests(p, o->bad_reporters, o->bad_networks, o->bad, o->good))
		o->verdict = REP_TRUSTED;
	else if (good_ind && o->good >= REP_KNOWN_WEIGHT && o->good > o->bad)
		o->verdict = REP_KNOWN;
}

static void format_time(long long t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	out[0] = '\0';
	if (t > 0 && gmtime_r(&tt, &tm) != NULL)
		strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Working arrays of one computation, n + 1 entries each. */
struct work {
	struct eff *ef;
	int *held, *group, *bad_side, *good_side;
	struct rep_nets *nets;
};

static void work_free(struct work *w)
{
	free(w->ef);
	free(w->held);
	free(w->group);
	free(w->bad_side);
	free(w->good_side);
	rep_nets_free(w->nets);
}

static int work_new(struct work *w, const struct rep_contrib *c, int n)
{
	size_t k = (size_t)n + 1;

	memset(w, 0, sizeof(*w));
	w->ef = calloc(k, sizeof(*w->ef));
	w->held = calloc(k, sizeof(int));
	w->group = calloc(k, sizeof(int));
	w->bad_side = calloc(k, sizeof(int));
	w->good_side = calloc(k, sizeof(int));
	w->nets = rep_nets_new(c, n);
	if (w->ef == NULL || w->held == NULL || w->group == NULL || w->bad_side == NULL ||
	    w->good_side == NULL || w->nets == NULL) {
		work_free(w);
		return -1;
	}
	return 0;
}

/* Standing, decay and the two caps, each reporter's weight; a burst weighs nothing. */
static void weigh(const struct rep_params *p, const struct rep_contrib *c, int n, long long now,
                  struct work *w, struct rep_score *o)
{
	int ngroups = 0;

	o->burst = hold_burst(p, c, n, w->held);
	for (int i = 0; i < n; i++) {
		double standing = c[i].peer ? 1.0 : c[i].standing;
		struct eff *ef = &w->ef[i];

		if (w->held[i])
			standing = 0;
		ef->raw_bad = rep_decay(c[i].bad, c[i].t, now, p->half_life) * standing;
		ef->raw_good = rep_decay(c[i].good, c[i].t, now, p->half_life) * standing;
		ef->bad = fmin(ef->raw_bad, p->reporter_cap);
		ef->good = fmin(ef->raw_good, p->reporter_cap);
		w->bad_side[i] = 1;
	}
	rep_nets_count(w->nets, w->bad_side, w->group);
	for (int i = 0; i < n; i++)
		if (w->group[i] >= ngroups)
			ngroups = w->group[i] + 1;
	apply_network_cap(p, n, w->ef, w->group, ngroups);
}

static void sum_up(const struct rep_params *p, const struct rep_contrib *c, int n, struct work *w,
                   struct rep_score *o)
{
	long long first = 0, last = 0;
	double presence = REP_PRESENCE * p->reporter_cap;

	for (int i = 0; i < n; i++) {
		const struct eff *ef = &w->ef[i];

		o->bad += ef->bad;
		o->good += ef->good;
		if (!c[i].peer) {
			o->local_bad += ef->bad;
			o->local_good += ef->good;
		}
		w->bad_side[i] = ef->bad >= presence && ef->bad > ef->good;
		w->good_side[i] = ef->good >= presence && ef->good > ef->bad;
		o->bad_reporters += w->bad_side[i];
		o->good_reporters += w->good_side[i];
		o->reports += c[i].reports;
		o->reporters += c[i].reports > 0;
		o->categories |= c[i].categories;
		if (c[i].first_seen > 0 && (first == 0 || c[i].first_seen < first))
			first = c[i].first_seen;
		if (c[i].last_seen > last)
			last = c[i].last_seen;
	}
	o->bad_networks = rep_nets_count(w->nets, w->bad_side, NULL);
	o->good_networks = rep_nets_count(w->nets, w->good_side, NULL);
	format_time(first, o->first_seen);
	format_time(last, o->last_seen);
}

int rep_score_compute(const struct rep_params *p, const char *subject, const struct rep_contrib *c,
                      int n, long long now, struct rep_score *o, struct err *e)
{
	struct work w;
	double lo, hi;

	memset(o, 0, sizeof(*o));
	o->reasons = json_array();
	if (o->reasons == NULL || work_new(&w, c, n) < 0) {
		json_decref(o->reasons);
		o->reasons = NULL;
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	weigh(p, c, n, now, &w, o);
	sum_up(p, c, n, &w, o);
	o->weight = o->bad + o->good;
	o->score = (o->bad - o->good) / (o->weight + 1);
	rep_wilson(o->bad, o->weight, REP_Z95, &lo, &hi);
	o->ci_low = 2 * lo - 1;
	o->ci_high = 2 * hi - 1;
	o->decayed_at = now;
	decide(p, o);
	explain(p, subject, c, w.ef, n, o);
	work_free(&w);
	return 0;
}

void rep_score_clear(struct rep_score *s)
{
	if (s == NULL)
		return;
	json_decref(s->reasons);
	s->reasons = NULL;
}

/* ------------------------------------------------------------------ from the store */

static int subject_score(struct rep *rep, struct db *db, const char *subject, long long now,
                         struct rep_score *out, struct err *e)
{
	struct rep_contribs c;
	int rc;

	if (rep_store_contribs(db, subject, rep->p.standing_default, &c, e) < 0)
		return -1;
	rep_contribs_vet(&rep->p, c.v, c.n, now);
	rc = rep_score_compute(&rep->p, subject, c.v, c.n, now, out, e);
	rep_contribs_clear(&c);
	if (rc == 0 && rep_truth_apply(rep, db, subject, now, out, e) < 0) {
		rep_score_clear(out);
		return -1;
	}
	return rc;
}

static json_t *id_array(const char (*ids)[REP_EVIDENCE_ID_MAX], int n)
{
	json_t *a = json_array();

	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_string(ids[i]));
	return a;
}

/* Public evidence ids of the newest reports, into the reasons they support. */
static int attach_evidence(struct db *db, const char *subject, struct rep_score *o, struct err *e)
{
	struct rep_evidence_ids *ids = malloc(sizeof(*ids));
	json_t *bad, *good, *r;
	size_t i;

	if (ids == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (rep_store_evidence_ids(db, subject, ids, e) < 0) {
		free(ids);
		return -1;
	}
	bad = id_array((const char(*)[REP_EVIDENCE_ID_MAX])ids->bad, ids->nbad);
	good = id_array((const char(*)[REP_EVIDENCE_ID_MAX])ids->good, ids->ngood);
	free(ids);
	json_array_foreach(o->reasons, i, r)
	{
		const char *code = json_string_value(json_object_get(r, "code"));
		int is_good = strcmp(code, "vouched") == 0 || strcmp(code, "verified_good") == 0;
		int is_bad = strcmp(code, "listed") == 0 ||
		             strcmp(code, "too_few_reporters") == 0 ||
		             strcmp(code, "too_few_networks") == 0 ||
		             strcmp(code, "below_threshold") == 0 || strcmp(code, "contested") == 0;

		if (is_good || is_bad)
			json_object_set(r, "evidence", is_good ? good : bad);
	}
	json_decref(bad);
	json_decref(good);
	return 0;
}

/* A reviewed delisting stays visible in every later answer. */
static int attach_delisting(struct db *db, const char *subject, struct rep_score *o, struct err *e)
{
	struct rep_delisting d;
	int found = rep_store_delisting(db, subject, &d, e);

	if (found > 0)
		reason(o->reasons, "delisted",
		       "delisted on %s after review of request %s; only reports received since "
		       "then count",
		       d.at, d.request);
	return found < 0 ? -1 : 0;
}

int rep_score_get_at(struct rep *rep, struct db *db, const struct rep_subject *s, long long now,
                     struct rep_score *out, struct err *e)
{
	if (subject_score(rep, db, s->text, now, out, e) < 0)
		return -1;
	if (attach_delisting(db, s->text, out, e) < 0 || attach_evidence(db, s->text, out, e) < 0) {
		rep_score_clear(out);
		return -1;
	}
	return 0;
}

int rep_score_get(struct rep *rep, struct db *db, const struct rep_subject *s,
                  struct rep_score *out, struct err *e)
{
	return rep_score_get_at(rep, db, s, (long long)time(NULL), out, e);
}

json_t *rep_score_json(const struct rep_subject *s, const struct rep_score *sc)
{
	return json_pack("{s:s, s:f, s:[f,f], s:f, s:f, s:f, s:I, s:I, s:s?, s:s?, s:s, s:O}",
	                 "subject", s->text, "score", round4(sc->score), "ci", round4(sc->ci_low),
	                 round4(sc->ci_high), "weight", round4(sc->weight), "bad", round4(sc->bad),
	                 "good", round4(sc->good), "reports", (json_int_t)sc->reports, "reporters",
	                 (json_int_t)sc->reporters, "first_seen",
	                 sc->first_seen[0] ? sc->first_seen : NULL, "last_seen",
	                 sc->last_seen[0] ? sc->last_seen : NULL, "verdict",
	                 rep_verdict_name(sc->verdict), "reasons", sc->reasons);
}

int rep_subject_refresh_held(struct rep *rep, struct db *db, const char *subject, long long now,
                             int *burst, struct err *e)
{
	struct rep_score sc;
	int rc;

	if (subject_score(rep, db, subject, now, &sc, e) < 0)
		return -1;
	*burst = sc.burst;
	rc = rep_store_summary_save(db, subject, &sc, now, e);
	rep_score_clear(&sc);
	return rc;
}

int rep_subject_refresh(struct rep *rep, struct db *db, const char *subject, long long now,
                        struct err *e)
{
	int burst = 0;

	return rep_subject_refresh_held(rep, db, subject, now, &burst, e);
}
