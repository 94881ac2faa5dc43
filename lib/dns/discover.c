/* discover.c - DNS + HTTPS + verification of another domain's anchor; see discover.h. */
#include "dns/discover.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki/cert.h"
#include "pki/name.h"
#include "pki/crypto.h"

#define CACHE_MAX 256
#define TRACE_MAX 64

struct cache_entry {
	char domain[DNS_NAME_MAX];
	struct discover_result *r;
	time_t expires;
};

struct discover_ctx {
	struct discover_config cfg;
	char *resolver, *anchor, *cacert; /* owned copies behind cfg */
	struct dns_resolver *res;
	pthread_mutex_t lock;
	struct cache_entry cache[CACHE_MAX];
	int ncache;
};

const char *discover_status_name(enum discover_status s)
{
	return s == DISCOVER_ANCHORED ? "anchored" : s == DISCOVER_LEGACY ? "legacy" : "error";
}

static const char *env_or(const char *v, const char *name)
{
	const char *x;

	if (v != NULL)
		return v;
	x = getenv(name);
	return x && x[0] ? x : NULL;
}

void discover_config_from_env(struct discover_config *c)
{
	const char *t = getenv("ANCHOR_DNS_TIMEOUT_MS");

	c->resolver = env_or(c->resolver, "ANCHOR_RESOLVER");
	c->trust_anchor_file = env_or(c->trust_anchor_file, "ANCHOR_TRUST_ANCHOR");
	c->cacert = env_or(c->cacert, "ANCHOR_CACERT");
	if (c->timeout_ms <= 0 && t != NULL)
		c->timeout_ms = (int)strtol(t, NULL, 10);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct discover_ctx *discover_new(const struct discover_config *c, struct err *e)
{
	struct discover_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	pthread_mutex_init(&ctx->lock, NULL);
	ctx->cfg = *c;
	ctx->resolver = dup_or_null(c->resolver);
	ctx->anchor = dup_or_null(c->trust_anchor_file);
	ctx->cacert = dup_or_null(c->cacert);
	ctx->cfg.resolver = ctx->resolver;
	ctx->cfg.trust_anchor_file = ctx->anchor;
	ctx->cfg.cacert = ctx->cacert;
	if (ctx->cfg.timeout_ms <= 0)
		ctx->cfg.timeout_ms = 2000;
	if (ctx->cfg.https_timeout_ms <= 0)
		ctx->cfg.https_timeout_ms = 10000;
	if (https_init(e) < 0)
		goto fail;
	ctx->res = dns_resolver_new(ctx->resolver, ctx->anchor, ctx->cfg.timeout_ms, e);
	if (ctx->res == NULL)
		goto fail;
	return ctx;
fail:
	discover_free(ctx);
	return NULL;
}

void discover_cache_flush(struct discover_ctx *ctx)
{
	int i;

	pthread_mutex_lock(&ctx->lock);
	for (i = 0; i < ctx->ncache; i++) {
		discover_result_free(ctx->cache[i].r);
		/* cache_put frees the result of the slot it reuses: leave none dangling. */
		ctx->cache[i].r = NULL;
	}
	ctx->ncache = 0;
	pthread_mutex_unlock(&ctx->lock);
}

void discover_free(struct discover_ctx *ctx)
{
	if (ctx == NULL)
		return;
	discover_cache_flush(ctx);
	dns_resolver_free(ctx->res);
	free(ctx->resolver);
	free(ctx->anchor);
	free(ctx->cacert);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
}

struct dns_resolver *discover_resolver(struct discover_ctx *ctx)
{
	return ctx->res;
}

void discover_target_ip(struct discover_ctx *ctx, const char *target, char *ip, size_t size)
{
	struct dns_answer a;
	struct err ignore = {0};
	char *s;

	ip[0] = '\0';
	if (dns_query(discover_resolver(ctx), target, LDNS_RR_TYPE_A, &a, &ignore) < 0)
		return;
	if (a.sec != DNS_SEC_BOGUS && ldns_rr_list_rr_count(a.rrs) > 0) {
		s = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(a.rrs, 0), 0));
		if (s != NULL)
			snprintf(ip, size, "%s", s);
		free(s);
	}
	dns_answer_clear(&a);
}

const struct discover_config *discover_config(const struct discover_ctx *ctx)
{
	return &ctx->cfg;
}

/* ------------------------------------------------------------------ results */

static void trace(struct discover_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void trace(struct discover_result *r, const char *fmt, ...)
{
	char **nt;
	va_list ap;
	char *line = NULL;

	if (r->ntrace >= TRACE_MAX)
		return;
	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	va_end(ap);
	if (line == NULL)
		return;
	nt = realloc(r->trace, sizeof(*nt) * (size_t)(r->ntrace + 1));
	if (nt == NULL) {
		free(line);
		return;
	}
	r->trace = nt;
	r->trace[r->ntrace++] = line;
}

void discover_result_free(struct discover_result *r)
{
	int i;

	if (r == NULL)
		return;
	for (i = 0; i < r->ntrace; i++)
		free(r->trace[i]);
	free(r->trace);
	json_decref(r->object);
	X509_free(r->root);
	X509_free(r->issuer);
	free(r);
}

static struct discover_result *result_dup(const struct discover_result *src)
{
	struct discover_result *r = malloc(sizeof(*r));
	int i;

	if (r == NULL)
		return NULL;
	*r = *src;
	r->trace = NULL;
	r->ntrace = 0;
	for (i = 0; i < src->ntrace; i++)
		trace(r, "%s", src->trace[i]);
	if (r->object)
		json_incref(r->object);
	if (r->root)
		X509_up_ref(r->root);
	if (r->issuer)
		X509_up_ref(r->issuer);
	return r;
}

static int result_fail(struct discover_result *r, const struct err *src, struct err *e)
{
	r->status = DISCOVER_ERROR;
	if (src != &r->err)
		r->err = *src;
	trace(r, "error: %s: %s", r->err.code, r->err.msg);
	if (e != NULL)
		*e = r->err;
	return -1;
}

/* ------------------------------------------------------------------ DNS steps */

struct srv_job {
	struct discover_ctx *ctx;
	char name[DNS_NAME_MAX + 16];
	struct dns_answer ans;
	struct err err;
	int rc;
};

static void *srv_thread(void *arg)
{
	struct srv_job *j = arg;

	j->rc = dns_query(j->ctx->res, j->name, LDNS_RR_TYPE_SRV, &j->ans, &j->err);
	return NULL;
}

static enum dns_sec sec_worse(enum dns_sec a, enum dns_sec b)
{
	static const int rank[] = {[DNS_SEC_SECURE] = 0,
	                           [DNS_SEC_UNVALIDATED] = 1,
	                           [DNS_SEC_INSECURE] = 2,
	                           [DNS_SEC_BOGUS] = 3};

	return rank[a] >= rank[b] ? a : b;
}

static void note_sec(struct discover_result *r, const struct dns_answer *a)
{
	enum dns_sec w = sec_worse(r->dnssec, a->sec);

	if (w != r->dnssec || r->dnssec_why[0] == '\0')
		snprintf(r->dnssec_why, sizeof(r->dnssec_why), "%s", a->sec_why);
	r->dnssec = w;
}

static const char *answer_summary(const struct dns_answer *a, char *buf, size_t size)
{
	if (a->nxdomain)
		snprintf(buf, size, "NXDOMAIN");
	else if (a->nodata)
		snprintf(buf, size, "no record");
	else
		snprintf(buf, size, "%zu record(s), ttl %u", ldns_rr_list_rr_count(a->rrs), a->ttl);
	return buf;
}

/* The one v=ANCHOR TXT record among the answer, parsed. */
static int read_txt(struct discover_result *r, const struct dns_answer *a, int *present,
                    struct err *e)
{
	struct dns_anchor_txt txt;
	size_t i;
	int found = 0;

	*present = 0;
	for (i = 0; a->rrs && i < ldns_rr_list_rr_count(a->rrs); i++) {
		size_t len = 0;
		char *text = dns_txt_rr_text(ldns_rr_list_rr(a->rrs, i), &len);
		int rc;

		if (text == NULL)
			return err_set(e, ERR_UNPROC, "txt_syntax", "a TXT record is malformed");
		if (!dns_txt_is_anchor(text, len)) {
			trace(r, "dns: TXT ignored (not v=ANCHOR…): \"%.60s\"", text);
			free(text);
			continue;
		}
		if (++found > 1) {
			free(text);
			return err_set(e, ERR_UNPROC, "txt_multiple",
			               "_anchor.%s has more than one v=ANCHOR TXT record; publish "
			               "exactly one",
			               r->domain);
		}
		rc = dns_txt_parse(text, len, &txt, e);
		if (rc < 0) {
			char msg[ERR_MSG_MAX + DNS_NAME_MAX + 128], code[ERR_CODE_MAX];

			snprintf(msg, sizeof(msg), "_anchor.%s TXT \"%.80s\": %s", r->domain, text,
			         e->msg);
			snprintf(code, sizeof(code), "%s", e->code);
			err_set(e, e->kind, code, "%s", msg);
			free(text);
			return -1;
		}
		free(text);
	}
	if (found == 0)
		return 0;
	*present = 1;
	r->mode = txt.mode;
	r->npins = txt.npins;
	memcpy(r->pins, txt.pins, sizeof(txt.pins));
	snprintf(r->id, sizeof(r->id), "%s", txt.id);
	trace(r, "dns: TXT _anchor.%s: v=ANCHOR1, %d pin(s), mode=%s%s%s%s", r->domain, r->npins,
	      dns_mode_name(r->mode), r->id[0] ? ", id=" : "", r->id,
	      txt.unknown_tags ? " (unknown tags ignored)" : "");
	return 0;
}

static int read_srv(struct discover_result *r, const struct dns_answer *a, struct err *e)
{
	size_t i, n = a->rrs ? ldns_rr_list_rr_count(a->rrs) : 0;

	r->ntargets = 0;
	for (i = 0; i < n && r->ntargets < DISCOVER_MAX_TARGETS; i++) {
		struct dns_srv *t = &r->targets[r->ntargets];

		if (dns_srv_from_rr(ldns_rr_list_rr(a->rrs, i), t, e) < 0)
			return -1;
		if (t->port == 0 && strcmp(t->target, ".") != 0)
			return err_set(e, ERR_UNPROC, "srv_malformed",
			               "the _anchor._tcp SRV record for %s has port 0", t->target);
		r->ntargets++;
	}
	if (dns_srv_order(r->targets, (size_t)r->ntargets, NULL, NULL, e) < 0)
		return -1;
	return 0;
}

static int cmp_mx(const void *a, const void *b)
{
	const struct discover_mx *x = a, *y = b;

	return (int)x->preference - (int)y->preference;
}

static int read_mx(struct discover_ctx *ctx, struct discover_result *r, struct err *e)
{
	struct dns_answer a;
	size_t i;
	char sum[64];

	if (dns_query(ctx->res, r->domain, LDNS_RR_TYPE_MX, &a, e) < 0)
		return -1;
	note_sec(r, &a);
	for (i = 0; i < ldns_rr_list_rr_count(a.rrs) && r->nmx < DISCOVER_MAX_MX; i++) {
		ldns_rr *rr = ldns_rr_list_rr(a.rrs, i);
		char *host = ldns_rdf2str(ldns_rr_rdf(rr, 1));
		struct discover_mx *m = &r->mx[r->nmx];
		struct err ign;

		m->preference = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
		if (host && (strcmp(host, ".") == 0 ||
		             dns_name_canon(host, m->host, sizeof(m->host), &ign) == 0)) {
			if (strcmp(host, ".") == 0)
				strcpy(m->host, "."); /* RFC 7505 null MX */
			r->nmx++;
		}
		free(host);
	}
	qsort(r->mx, (size_t)r->nmx, sizeof(r->mx[0]), cmp_mx);
	trace(r, "dns: MX %s: %s [%s]", r->domain, answer_summary(&a, sum, sizeof(sum)),
	      dns_sec_name(a.sec));
	for (i = 0; i < (size_t)r->nmx; i++)
		trace(r, "legacy: MX %u %s", r->mx[i].preference, r->mx[i].host);
	if (r->ttl == 0 || a.ttl < r->ttl)
		r->ttl = a.ttl;
	dns_answer_clear(&a);
	return 0;
}

/* ------------------------------------------------------------------ HTTPS steps */

/* An address for target from our resolver, so that a test zone can name its servers. */
static int target_address(struct discover_ctx *ctx, struct discover_result *r, const char *target,
                          char *ip, size_t size)
{
	static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA};
	size_t t;

	ip[0] = '\0';
	for (t = 0; t < 2; t++) {
		struct dns_answer a;
		struct err e;
		char *s;

		if (dns_query(ctx->res, target, types[t], &a, &e) < 0) {
			trace(r, "dns: %s %s: %s; leaving it to the system resolver", target,
			      t ? "AAAA" : "A", e.code);
			return 0;
		}
		if (a.sec == DNS_SEC_BOGUS)
			trace(r, "dns: %s: bogus address record ignored (%s)", target, a.sec_why);
		else if (ldns_rr_list_rr_count(a.rrs) > 0) {
			s = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(a.rrs, 0), 0));
			if (s != NULL)
				snprintf(ip, size, "%s", s);
			free(s);
			dns_answer_clear(&a);
			return 0;
		}
		dns_answer_clear(&a);
	}
	return 0;
}

/* Try one target; 0 = verified object in r. */
static int fetch_target(struct discover_ctx *ctx, struct discover_result *r,
                        const struct dns_srv *t, struct err *e)
{
	char path[DNS_NAME_MAX + 32], ip[INET6_ADDRSTRLEN + 1];
	struct https_opts o = {.cacert = ctx->cfg.cacert,
	                       .connect_timeout_ms = ctx->cfg.timeout_ms,
	                       .timeout_ms = ctx->cfg.https_timeout_ms};
	struct https_reply rep;
	json_t *obj;
	json_error_t je;

	target_address(ctx, r, t->target, ip, sizeof(ip));
	if (ip[0])
		o.resolve_ip = ip;
	snprintf(path, sizeof(path), "/v1/domains/%s", r->domain);
	r->https_requests++;
	if (https_get(t->target, t->port, path, &o, &rep, e) < 0)
		return -1;
	obj = json_loadb(rep.body, rep.len, JSON_REJECT_DUPLICATES, &je);
	https_reply_clear(&rep);
	if (obj == NULL)
		return err_set(e, ERR_UNPROC, "object_invalid",
		               "https://%s:%u%s did not answer JSON: %s", t->target, t->port, path,
		               je.text);
	if (discover_verify_object(r->domain, obj, (const char(*)[CRYPTO_PIN_MAX])r->pins, r->npins,
	                           &r->root, &r->issuer, r->root_pin, e) < 0) {
		json_decref(obj);
		return -1;
	}
	r->object = obj;
	return 0;
}

/* Verification failures say more than connection failures: report the best one. */
static int err_rank(const struct err *e)
{
	return e->kind == ERR_TEMP ? 1 : 2;
}

static int fetch_anchor(struct discover_ctx *ctx, struct discover_result *r, struct err *e)
{
	struct err best = {0}, cur;
	int i;

	for (i = 0; i < r->ntargets; i++) {
		const struct dns_srv *t = &r->targets[i];

		err_clear(&cur);
		if (fetch_target(ctx, r, t, &cur) == 0) {
			r->used_target = i;
			trace(r, "fetch: https://%s:%u/v1/domains/%s: ok", t->target, t->port,
			      r->domain);
			trace(r, "verify: root pin %s is in the TXT pins", r->root_pin);
			trace(r, "verify: issuer chains to the root: ok");
			return 0;
		}
		trace(r, "fetch: %s:%u: %s: %s%s", t->target, t->port, cur.code, cur.msg,
		      i + 1 < r->ntargets ? " -> next target" : "");
		if (best.kind == ERR_NONE || err_rank(&cur) > err_rank(&best))
			best = cur;
	}
	if (err_rank(&best) == 1)
		return err_set(e, ERR_TEMP, "fetch_failed",
		               "no key server of %s answered (%d target(s)); last: %s", r->domain,
		               r->ntargets, best.msg);
	*e = best;
	return -1;
}

/* ------------------------------------------------------------------ cache */

static struct discover_result *cache_get(struct discover_ctx *ctx, const char *domain)
{
	struct discover_result *r = NULL;
	time_t now = time(NULL);
	int i;

	if (ctx->cfg.no_cache)
		return NULL;
	pthread_mutex_lock(&ctx->lock);
	for (i = 0; i < ctx->ncache; i++)
		if (strcmp(ctx->cache[i].domain, domain) == 0) {
			if (ctx->cache[i].expires > now) {
				r = result_dup(ctx->cache[i].r);
				if (r)
					r->ttl = (uint32_t)(ctx->cache[i].expires - now);
			}
			break;
		}
	pthread_mutex_unlock(&ctx->lock);
	return r;
}

static void cache_put(struct discover_ctx *ctx, const struct discover_result *r)
{
	struct cache_entry *slot = NULL;
	struct discover_result *copy;
	time_t now = time(NULL);
	int i;

	if (ctx->cfg.no_cache || r->status == DISCOVER_ERROR)
		return;
	copy = result_dup(r);
	if (copy == NULL)
		return;
	pthread_mutex_lock(&ctx->lock);
	for (i = 0; i < ctx->ncache && slot == NULL; i++)
		if (strcmp(ctx->cache[i].domain, r->domain) == 0 || ctx->cache[i].expires <= now)
			slot = &ctx->cache[i];
	if (slot == NULL)
		slot = ctx->ncache < CACHE_MAX ? &ctx->cache[ctx->ncache++] : &ctx->cache[0];
	discover_result_free(slot->r);
	snprintf(slot->domain, sizeof(slot->domain), "%s", r->domain);
	slot->r = copy;
	slot->expires = now + r->ttl;
	pthread_mutex_unlock(&ctx->lock);
}

/* ------------------------------------------------------------------ discover */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int split_input(struct discover_result *r, const char *in, struct err *e)
{
	const char *at = strrchr(in, '@');
	const char *domain = in;

	if (at != NULL) {
		if (name_check_address(in, e) < 0)
			return -1;
		snprintf(r->address, sizeof(r->address), "%s", in);
		domain = at + 1;
	} else if (name_check_domain(in, e) < 0) {
		return -1;
	}
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	return 0;
}

/* The _anchor._tcp SRV and _anchor TXT queries, in parallel; their DNSSEC verdict, which
 * refuses a bogus answer.  On failure the result is failed and -1 returned. */
static int discover_query(struct discover_ctx *ctx, struct discover_result *r, struct srv_job *job,
                          struct dns_answer *txt, struct err *e)
{
	struct err terr;
	pthread_t th;
	int threaded, txt_rc;
	char sum[64];

	snprintf(job->name, sizeof(job->name), "_anchor._tcp.%s", r->domain);
	threaded = pthread_create(&th, NULL, srv_thread, job) == 0;
	if (!threaded)
		srv_thread(job);
	{
		char name[DNS_NAME_MAX + 16];

		snprintf(name, sizeof(name), "_anchor.%s", r->domain);
		txt_rc = dns_query(ctx->res, name, LDNS_RR_TYPE_TXT, txt, &terr);
	}
	if (threaded)
		pthread_join(th, NULL);
	if (job->rc < 0) {
		trace(r, "dns: SRV %s: %s", job->name, job->err.msg);
		result_fail(r, &job->err, e);
		return -1;
	}
	if (txt_rc < 0) {
		trace(r, "dns: TXT _anchor.%s: %s", r->domain, terr.msg);
		result_fail(r, &terr, e);
		return -1;
	}
	r->dnssec = dns_resolver_has_anchor(ctx->res) ? DNS_SEC_SECURE : DNS_SEC_UNVALIDATED;
	note_sec(r, &job->ans);
	note_sec(r, txt);
	trace(r, "dns: SRV %s: %s [%s]", job->name, answer_summary(&job->ans, sum, sizeof(sum)),
	      dns_sec_name(job->ans.sec));
	trace(r, "dns: TXT _anchor.%s: %s [%s]", r->domain, answer_summary(txt, sum, sizeof(sum)),
	      dns_sec_name(txt->sec));
	r->ttl = job->ans.ttl < txt->ttl ? job->ans.ttl : txt->ttl;
	if (r->dnssec == DNS_SEC_BOGUS) {
		err_set(&r->err, ERR_UNPROC, "dnssec_bogus",
		        "DNSSEC validation failed for %s: %s; refusing the answer", r->domain,
		        r->dnssec_why);
		result_fail(r, &r->err, e);
		return -1;
	}
	trace(r, "dnssec: %s (%s)", dns_sec_name(r->dnssec), r->dnssec_why);
	return 0;
}

/* No _anchor records at all: the domain's MX, for legacy delivery. */
static int discover_legacy(struct discover_ctx *ctx, struct discover_result *r, struct err *e)
{
	trace(r, "legacy: no _anchor records; falling back to MX");
	if (read_mx(ctx, r, &r->err) < 0) {
		result_fail(r, &r->err, e);
		return -1;
	}
	if (r->dnssec == DNS_SEC_BOGUS) {
		err_set(&r->err, ERR_UNPROC, "dnssec_bogus",
		        "DNSSEC validation failed for the MX of %s: %s", r->domain, r->dnssec_why);
		result_fail(r, &r->err, e);
		return -1;
	}
	r->status = DISCOVER_LEGACY;
	return 0;
}

/* The targets in the order they will be tried, for the trace. */
static void trace_order(struct discover_result *r)
{
	char order[512] = "";
	int i;

	for (i = 0; i < r->ntargets; i++) {
		size_t l = strlen(order);

		snprintf(order + l, sizeof(order) - l, "%s%s:%u (prio %u, weight %u)",
		         i ? ", " : "", r->targets[i].target, r->targets[i].port,
		         r->targets[i].priority, r->targets[i].weight);
	}
	trace(r, "select: RFC 2782 order: %s", order);
}

static int discover_network(struct discover_ctx *ctx, struct discover_result *r, struct err *e)
{
	struct srv_job job = {.ctx = ctx};
	struct dns_answer txt;
	int txt_present = 0, rc = -1;

	if (discover_query(ctx, r, &job, &txt, e) < 0)
		goto out;
	if (read_txt(r, &txt, &txt_present, &r->err) < 0 || read_srv(r, &job.ans, &r->err) < 0) {
		result_fail(r, &r->err, e);
		goto out;
	}
	if (!txt_present && r->ntargets == 0) {
		rc = discover_legacy(ctx, r, e);
		goto out;
	}
	if (!txt_present) {
		err_set(&r->err, ERR_UNPROC, "txt_missing",
		        "%s has _anchor._tcp SRV records but no _anchor TXT record: nothing to "
		        "verify the key server against",
		        r->domain);
		result_fail(r, &r->err, e);
		goto out;
	}
	if (r->ntargets == 0) {
		err_set(&r->err, ERR_UNPROC, "srv_missing",
		        "%s has an _anchor TXT record but no _anchor._tcp SRV record: no key "
		        "server to ask",
		        r->domain);
		result_fail(r, &r->err, e);
		goto out;
	}
	trace_order(r);
	if (fetch_anchor(ctx, r, &r->err) < 0) {
		result_fail(r, &r->err, e);
		goto out;
	}
	{
		const char *smode = json_string_value(json_object_get(r->object, "mode"));

		if (smode != NULL && strcmp(smode, dns_mode_name(r->mode)) != 0)
			trace(r, "note: the key server says mode=%s, DNS says mode=%s; DNS wins",
			      smode, dns_mode_name(r->mode));
	}
	r->status = DISCOVER_ANCHORED;
	rc = 0;
out:
	dns_answer_clear(&job.ans);
	dns_answer_clear(&txt);
	return rc;
}

int discover_domain(struct discover_ctx *ctx, const char *domain_or_address,
                    struct discover_result **out, struct err *e)
{
	struct discover_result *r, *hit;
	double t0 = now_ms();
	unsigned q0 = dns_resolver_queries(ctx->res);
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	r->used_target = -1;
	if (split_input(r, domain_or_address ? domain_or_address : "", &r->err) < 0) {
		*out = r;
		return result_fail(r, &r->err, e);
	}
	hit = cache_get(ctx, r->domain);
	if (hit != NULL) {
		snprintf(hit->address, sizeof(hit->address), "%s", r->address);
		discover_result_free(r);
		hit->from_cache = 1;
		hit->dns_queries = 0;
		hit->https_requests = 0;
		trace(hit, "cache: hit, valid %u s more; no DNS, no HTTPS", hit->ttl);
		hit->elapsed_ms = now_ms() - t0;
		*out = hit;
		return 0;
	}
	rc = discover_network(ctx, r, e);
	if (r->ttl < DISCOVER_TTL_MIN)
		r->ttl = DISCOVER_TTL_MIN;
	if (r->ttl > DISCOVER_TTL_MAX)
		r->ttl = DISCOVER_TTL_MAX;
	r->dns_queries = dns_resolver_queries(ctx->res) - q0;
	r->elapsed_ms = now_ms() - t0;
	if (rc == 0) {
		trace(r, "result: %s%s%s, dnssec %s", discover_status_name(r->status),
		      r->status == DISCOVER_ANCHORED ? ", mode " : "",
		      r->status == DISCOVER_ANCHORED ? dns_mode_name(r->mode) : "",
		      dns_sec_name(r->dnssec));
		cache_put(ctx, r);
	}
	*out = r;
	return rc;
}
