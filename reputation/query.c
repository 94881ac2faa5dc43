/*
 * query.c - the answers: the CSA check of the client (when ip and helo are given), the
 * score of each subject and one verdict with its reasons; batches; the CSV export.
 *
 * Positive standing needs a verified identity: a HELO name is only as good as its CSA
 * result, so a trusted or known HELO whose CSA check did not pass in this very query
 * counts as unknown.  The IP is what the receiver saw on the wire; domain, signer, key
 * and address are what the receiver itself verified (signatures) before asking.
 *
 * The HELO is the client's own text, forwarded as it came: a query never refuses it for
 * what it says (only for being empty or not UTF-8).  One that is not a host name or an
 * address literal names no subject and is CSA fail (fail_helo); the other subjects are
 * judged all the same, so that no client can turn its own block into "no answer".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/csa.h"
#include "core/log.h"
#include "handlers.h"
#include "store.h"

static const struct {
	const char *name;
	enum rep_subject_kind kind;
} query_keys[] = {
    {"ip", REP_IP},         {"helo", REP_HELO}, {"domain", REP_DOMAIN},
    {"signer", REP_SIGNER}, {"key", REP_KEY},   {"address", REP_ADDRESS},
};
#define NKEYS (sizeof(query_keys) / sizeof(query_keys[0]))

static int query_check(json_t *query, struct err *e)
{
	const char *key;
	json_t *v;
	int n = 0;

	if (!json_is_object(query))
		return err_set(e, ERR_INPUT, "bad_query", "a query is a JSON object");
	json_object_foreach(query, key, v)
	{
		size_t k;

		for (k = 0; k < NKEYS && strcmp(key, query_keys[k].name) != 0; k++)
			;
		if (k == NKEYS)
			return err_set(
			    e, ERR_INPUT, "bad_query",
			    "unknown query member \"%.40s\"; use ip, helo, domain, signer, "
			    "key and address",
			    key);
		if (!json_is_string(v))
			return err_set(e, ERR_INPUT, "bad_query", "\"%s\" must be a string", key);
		n++;
	}
	if (n == 0)
		return err_set(
		    e, ERR_INPUT, "bad_query",
		    "a query needs at least one of ip, helo, domain, signer, key, address");
	return 0;
}

static json_t *csa_json(const struct csa_result *c, const char *helo, const char *ip)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:s?}", "result",
	                 csa_status_name(c->status), "code", c->code, "reason", c->reason, "helo",
	                 helo, "ip", ip, "target", c->target[0] ? c->target : NULL, "found",
	                 c->found[0] ? c->found : NULL);
}

static void add_reason(json_t *reasons, const char *code, const char *subject, const char *text)
{
	json_array_append_new(reasons, json_pack("{s:s, s:s?, s:s, s:[]}", "code", code, "subject",
	                                         subject, "text", text, "evidence"));
}

/* A HELO's good standing applies only when CSA verified it in this query.  sj may be a
 * cached (shared) answer: it is copied before it changes.  Consumes sj. */
static json_t *require_verified_helo(json_t *sj, const struct csa_result *csa, int checked)
{
	const char *v = json_string_value(json_object_get(sj, "verdict"));
	char text[320];
	json_t *copy;

	if (v == NULL || (strcmp(v, "trusted") != 0 && strcmp(v, "known") != 0))
		return sj;
	if (checked && csa->status == CSA_PASS)
		return sj;
	snprintf(text, sizeof(text),
	         "its good standing needs a verified identity, and CSA did not verify this HELO "
	         "name (%s)",
	         checked ? csa_status_name(csa->status) : "no client IP to check it against");
	copy = json_deep_copy(sj);
	json_decref(sj);
	if (copy == NULL)
		return NULL;
	json_object_set_new(copy, "verdict", json_string(rep_verdict_name(REP_UNKNOWN)));
	add_reason(json_object_get(copy, "reasons"), "unverified_identity", NULL, text);
	return copy;
}

/* The answer about one subject: recent from the cache, else computed (and cached). */
static json_t *subject_answer(struct rep *rep, struct db *db, const struct rep_subject *s,
                              long long now, struct err *e)
{
	unsigned long long gen = rep_cache_generation(rep->cache);
	json_t *sj = rep_cache_get(rep->cache, s->text, (double)now);
	struct rep_score sc;

	if (sj != NULL)
		return sj;
	if (rep_score_get_at(rep, db, s, now, &sc, e) < 0)
		return NULL;
	sj = rep_score_json(s, &sc);
	rep_score_clear(&sc);
	if (sj == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	rep_cache_put(rep->cache, s->text, sj, gen, (double)now);
	return sj;
}

/* The overall verdict and the reasons of the subjects that decided it. */
static void overall(json_t *answer, json_t *subjects, const struct csa_result *csa, int checked)
{
	enum rep_verdict v = REP_UNKNOWN;
	json_t *reasons = json_array(), *s, *r;
	int block = 0, trusted = 0, known = 0;
	size_t i, k;

	json_array_foreach(subjects, i, s)
	{
		const char *name = json_string_value(json_object_get(s, "verdict"));

		block |= strcmp(name, "block") == 0;
		trusted |= strcmp(name, "trusted") == 0;
		known |= strcmp(name, "known") == 0;
	}
	if (block)
		v = REP_BLOCK;
	else if (checked && csa->status == CSA_FAIL)
		v = REP_UNKNOWN;
	else if (trusted)
		v = REP_TRUSTED;
	else if (known)
		v = REP_KNOWN;
	if (checked) {
		char text[400];

		snprintf(text, sizeof(text), "CSA %s: %s", csa_status_name(csa->status),
		         csa->reason);
		add_reason(reasons,
		           csa->status == CSA_PASS   ? "csa_pass"
		           : csa->status == CSA_FAIL ? "csa_fail"
		           : csa->status == CSA_NONE ? "csa_none"
		                                     : "csa_unknown",
		           NULL, text);
	}
	json_array_foreach(subjects, i, s)
	{
		if (strcmp(json_string_value(json_object_get(s, "verdict")), rep_verdict_name(v)) !=
		    0)
			continue;
		json_array_foreach(json_object_get(s, "reasons"), k, r)
		{
			json_t *copy = json_deep_copy(r);

			json_object_set(copy, "subject", json_object_get(s, "subject"));
			json_array_append_new(reasons, copy);
		}
	}
	json_object_set_new(answer, "verdict", json_string(rep_verdict_name(v)));
	json_object_set_new(answer, "reasons", reasons);
}

/* The HELO of a query: a subject when it is a host name or an address literal (*usable
 * set); any other text is the client's own claim and becomes a finding, not a refusal
 * (PROTOCOL.md §11.2): refusing it would let a client choose "no answer" for its own
 * address.  Only an empty helo is refused. */
static int query_helo(const char *helo, struct rep_subject *s, int *usable, char *why, size_t size,
                      struct err *e)
{
	char canon[DNS_NAME_MAX], shown[80];
	struct err w = {0};

	*usable = 0;
	if (helo[0] == '\0')
		return err_set(e, ERR_INPUT, "bad_subject", "helo is empty; leave it out instead");
	if (csa_helo_classify(helo, strlen(helo), canon, sizeof(canon), &w) == CSA_HELO_INVALID) {
		csa_helo_show(helo, strlen(helo), shown, sizeof(shown));
		snprintf(why, size,
		         "HELO %s is not a host name or an address literal (%.200s); it names no "
		         "subject and nothing can verify it",
		         shown, w.msg);
		return 0;
	}
	if (rep_subject_make(REP_HELO, canon, s, e) < 0)
		return -1;
	*usable = 1;
	return 0;
}

json_t *rep_query_answer(struct rep *rep, struct db *db, json_t *query, struct err *e)
{
	const char *ip = json_string_value(json_object_get(query, "ip"));
	const char *helo = json_string_value(json_object_get(query, "helo"));
	struct rep_subject subj[NKEYS];
	struct csa_result csa;
	json_t *answer = NULL, *subjects = NULL;
	long long now = (long long)time(NULL);
	char helo_why[420] = "";
	int checked = 0, n = 0, usable = 0;

	memset(&csa, 0, sizeof(csa));
	if (query_check(query, e) < 0)
		return NULL;
	/* Every argument is read before anything is judged: one that does not parse is the
	 * query's error, whatever its place. */
	for (size_t k = 0; k < NKEYS; k++) {
		const char *value = json_string_value(json_object_get(query, query_keys[k].name));

		if (value == NULL)
			continue;
		if (query_keys[k].kind == REP_HELO) {
			if (query_helo(value, &subj[n], &usable, helo_why, sizeof(helo_why), e) < 0)
				return NULL;
			n += usable;
		} else if (rep_subject_make(query_keys[k].kind, value, &subj[n++], e) < 0) {
			return NULL;
		}
	}
	subjects = json_array();
	answer = json_object();
	if (ip != NULL && helo != NULL) {
		struct err ce = {0};

		/* DNS trouble is a result (unknown), not an error; a HELO that is no host name
		 * is one too (fail, fail_helo). */
		csa_check(discover_resolver(rep->disc), helo, ip, &csa, &ce);
		checked = 1;
		json_object_set_new(answer, "csa", csa_json(&csa, helo, ip));
	}
	for (int i = 0; i < n; i++) {
		json_t *sj = subject_answer(rep, db, &subj[i], now, e);

		if (sj == NULL)
			goto fail;
		if (subj[i].kind == REP_HELO &&
		    (sj = require_verified_helo(sj, &csa, checked)) == NULL) {
			err_set(e, ERR_INTERNAL, "internal", "out of memory");
			goto fail;
		}
		json_array_append_new(subjects, sj);
	}
	overall(answer, subjects, &csa, checked);
	if (helo_why[0] != '\0' && !checked) /* with an ip, the csa_fail reason says it */
		add_reason(json_object_get(answer, "reasons"), "bad_helo", NULL, helo_why);
	json_object_set_new(answer, "subjects", subjects);
	atomic_fetch_add(&rep->queries, 1);
	return answer;
fail:
	json_decref(subjects);
	json_decref(answer);
	return NULL;
}

/* The cache key of a GET query: its arguments in a fixed order; 0 when too long. */
static size_t query_key(const struct http_request *h, char *key, size_t size)
{
	size_t len = (size_t)snprintf(key, size, "q");

	for (size_t k = 0; k < NKEYS && len < size; k++) {
		const char *v = http_query_arg(h, query_keys[k].name);

		if (v != NULL)
			len += (size_t)snprintf(key + len, size - len, "|%s=%s", query_keys[k].name,
			                        v);
	}
	return len < size ? len : 0;
}

/* A whole GET answer, serialised, is reused while no subject changed at all: the busy
 * case of a receiver asking about the same clients again and again.  Called before a
 * database connection is taken; 1 when it answered. */
int rep_query_get_cached(struct rep *rep, const struct http_request *h, struct http_response *resp)
{
	char key[REP_SUBJECT_MAX];
	json_t *hit;
	char *text;

	if (rep->cache == NULL || query_key(h, key, sizeof(key)) == 0 ||
	    (hit = rep_cache_get_current(rep->cache, key, (double)time(NULL))) == NULL)
		return 0;
	text = strdup(json_string_value(hit));
	json_decref(hit);
	if (text == NULL)
		return 0;
	atomic_fetch_add(&rep->queries, 1);
	http_add_header(resp, "Cache-Control", "no-store");
	http_reply_text(resp, 200, "application/json", text, strlen(text));
	return 1;
}

void rep_query_get(struct rep_req *r)
{
	struct rep_cache *cache = r->rep->cache;
	unsigned long long gen = rep_cache_generation(cache);
	json_t *query = json_object(), *hit, *answer;
	double now = (double)time(NULL);
	struct err e = {0};
	char key[REP_SUBJECT_MAX];
	size_t len = query_key(r->http, key, sizeof(key));
	char *text;

	for (size_t k = 0; k < NKEYS; k++) {
		const char *v = http_query_arg(r->http, query_keys[k].name);
		json_t *js;

		if (v == NULL)
			continue;
		/* json_string refuses what is not UTF-8: such an argument does not parse, and
		 * leaving it out would answer a different question. */
		if ((js = json_string(v)) == NULL) {
			json_decref(query);
			return http_reply_errorf(r->resp, ERR_INPUT, "bad_subject",
			                         "the %s argument is not UTF-8 text",
			                         query_keys[k].name);
		}
		json_object_set_new(query, query_keys[k].name, js);
	}
	http_add_header(r->resp, "Cache-Control", "no-store");
	answer = rep_query_answer(r->rep, r->db, query, &e);
	json_decref(query);
	if (answer == NULL)
		return rep_fail(r, &e);
	text = json_dumps(answer, JSON_COMPACT);
	json_decref(answer);
	if (text == NULL)
		return http_reply_errorf(r->resp, ERR_INTERNAL, "internal", "out of memory");
	if (len > 0 && (hit = json_string(text)) != NULL) {
		rep_cache_put(cache, key, hit, gen, now);
		json_decref(hit);
	}
	http_reply_text(r->resp, 200, "application/json", text, strlen(text));
}

void rep_query_batch(struct rep_req *r)
{
	json_t *queries = json_object_get(r->http->json, "queries"), *q, *answers;
	long long max = r->rep->cfg.batch_max;
	struct err e = {0};
	size_t i;

	if (r->http->json == NULL)
		return http_reply_errorf(
		    r->resp, ERR_INPUT, "bad_request",
		    "POST /v1/query takes {\"queries\": [...]}; a single query "
		    "is GET /v1/query?ip=...");
	if (!json_is_array(queries) || json_array_size(queries) == 0)
		return http_reply_errorf(r->resp, ERR_INPUT, "bad_request",
		                         "\"queries\" must be a non-empty array of queries");
	if (json_array_size(queries) > (size_t)max)
		return http_reply_errorf(r->resp, ERR_TOOBIG, "batch_too_large",
		                         "a batch holds at most %lld queries; this one has %zu",
		                         max, json_array_size(queries));
	answers = json_array();
	json_array_foreach(queries, i, q)
	{
		json_t *a = rep_query_answer(r->rep, r->db, q, &e);

		if (a == NULL) {
			char msg[ERR_MSG_MAX];

			json_decref(answers);
			snprintf(msg, sizeof(msg), "%s", e.msg);
			if (e.kind == ERR_INPUT)
				err_set(&e, ERR_INPUT, "bad_query", "queries[%zu]: %s", i, msg);
			return rep_fail(r, &e);
		}
		json_array_append_new(answers, a);
	}
	http_add_header(r->resp, "Cache-Control", "no-store");
	http_reply_json(r->resp, 200, json_pack("{s:o}", "answers", answers));
}

/* ------------------------------------------------------------------ CSV export */

struct buf {
	char *data;
	size_t len, cap;
	int oom;
};

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n + 1;
		char *p = realloc(b->data, cap);

		if (p == NULL) {
			b->oom = 1;
			return;
		}
		b->data = p;
		b->cap = cap;
	}
}

static void csv_row(struct buf *b, const char *subject, const struct rep_score *s)
{
	/* Subjects hold no commas, quotes or line breaks (subject.c), so none is quoted. */
	buf_printf(b, "%s,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%ld,%ld,%s,%s\r\n", subject,
	           rep_verdict_name(s->verdict), s->score, s->ci_low, s->ci_high, s->bad, s->good,
	           s->reports, s->reporters, s->first_seen, s->last_seen);
}

static void flush_subject(struct rep *rep, struct buf *b, const char *subject,
                          const struct rep_contrib *c, int n, long long now, int filter,
                          enum rep_verdict want)
{
	struct rep_score s;
	struct err e = {0};

	if (n == 0 || rep_score_compute(&rep->p, subject, c, n, now, &s, &e) < 0)
		return;
	if (!filter || s.verdict == want)
		csv_row(b, subject, &s);
	rep_score_clear(&s);
}

void rep_export_csv(struct rep_req *r)
{
	const char *vf = http_query_arg(r->http, "verdict");
	struct buf b = {.data = malloc(4096), .cap = 4096};
	struct rep_contribs all;
	enum rep_verdict want = REP_UNKNOWN;
	long long now = (long long)time(NULL);
	struct err e = {0};
	int start = 0;

	if (vf != NULL && rep_verdict_parse(vf, &want) < 0) {
		free(b.data);
		return http_reply_errorf(r->resp, ERR_INPUT, "bad_request",
		                         "verdict must be trusted, known, unknown or block");
	}
	if (b.data == NULL ||
	    rep_store_contribs_all(r->db, r->rep->p.standing_default, &all, &e) < 0) {
		free(b.data);
		if (e.kind == ERR_NONE)
			err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		return rep_fail(r, &e);
	}
	b.len = 0;
	buf_printf(&b, "subject,verdict,score,ci_low,ci_high,bad,good,reports,reporters,"
	               "first_seen,last_seen\r\n");
	/* The rows come ordered by subject: each run of one subject is scored alone. */
	for (int i = 1; i <= all.n; i++) {
		if (i < all.n && strcmp(all.v[i].subject, all.v[start].subject) == 0)
			continue;
		flush_subject(r->rep, &b, all.v[start].subject, all.v + start, i - start, now,
		              vf != NULL, want);
		start = i;
	}
	rep_contribs_clear(&all);
	if (b.oom) {
		free(b.data);
		err_set(&e, ERR_INTERNAL, "internal", "out of memory building the export");
		return rep_fail(r, &e);
	}
	http_add_header(r->resp, "Content-Disposition", "attachment; filename=\"reputation.csv\"");
	http_add_header(r->resp, "Cache-Control", "no-store");
	http_reply_text(r->resp, 200, "text/csv; charset=utf-8", b.data, b.len);
}
