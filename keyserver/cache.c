/* cache.c - in-memory answers to public lookups, retired by LISTEN/NOTIFY; see cache.h. */
#include "cache.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/db.h"
#include "core/log.h"
#include "core/ttlcache.h"
#include "pki/crypto.h"

#define CACHE_SHARDS 64
#define ETAG_LEN 20 /* quote + 16 hex + quote + NUL, rounded */

/* A kept answer; its key is the request's path and query. */
struct answer {
	char *body;
	size_t len;
	const char *content_type;
	char etag[ETAG_LEN];
	long long max_age;
	time_t stored; /* monotonic seconds */
};

struct ks_cache {
	struct ttlcache *answers; /* its generation is bumped by every change notified */
	atomic_int usable;        /* the listener is connected: cached answers can be trusted */
	atomic_llong trouble;     /* monotonic second the database was first missed; 0: none */
	atomic_ullong stale_served;
	long long stale_if_error;
	atomic_int stop;
	pthread_t listener;
	int listening;
	char *conninfo;
	struct db_rw *rw; /* its floor is raised to each change notified */
};

static time_t now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void answer_free(void *v)
{
	struct answer *an = v;

	free(an->body);
	free(an);
}

struct ks_cache *ks_cache_new(size_t max_bytes, long long stale_if_error)
{
	struct ks_cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if ((c->answers = ttlcache_new_bytes(0, max_bytes, CACHE_SHARDS, answer_free)) == NULL) {
		free(c);
		return NULL;
	}
	c->stale_if_error = stale_if_error > 0 ? stale_if_error : 0;
	return c;
}

/* Remember when the database was first missed (the first caller wins); why says how it
 * showed, for the one log line of the outage. */
static long long trouble_began(struct ks_cache *c, long long now, const char *why)
{
	long long none = 0;

	if (atomic_compare_exchange_strong(&c->trouble, &none, now)) {
		if (c->stale_if_error > 0)
			log_warn(NULL,
			         "cache: %s; lookups answered before are served stale for at most "
			         "%llds",
			         why, c->stale_if_error);
		return now;
	}
	return none;
}

void ks_cache_free(struct ks_cache *c)
{
	if (c == NULL)
		return;
	if (c->listening) {
		atomic_store(&c->stop, 1);
		pthread_join(c->listener, NULL);
	}
	ttlcache_free(c->answers);
	free(c->conninfo);
	free(c);
}

/* Answers kept before now are never served again (they are dropped as they are met). */
void ks_cache_invalidate(struct ks_cache *c)
{
	ttlcache_bump(c->answers);
}

/* ---- the change listener ---- */

static PGconn *listener_connect(const char *conninfo)
{
	PGconn *conn = PQconnectdb(conninfo);
	PGresult *res;

	if (PQstatus(conn) != CONNECTION_OK) {
		PQfinish(conn);
		return NULL;
	}
	res = PQexec(conn, "LISTEN anchor_change");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
}

/* Reads after this must see everything the primary has now (a notification arrives
 * after its commit, so the position is past it).  Raised before the generation is bumped:
 * whoever reads the new generation also finds the new floor.  0 when it cannot be read
 * (the connection broke: the listener reconnects, and raises it then). */
static int raise_floor(struct ks_cache *c, PGconn *conn)
{
	uint64_t lsn;

	if (!db_rw_has_replica(c->rw)) /* every read is on the primary: nothing to wait for */
		return 1;
	if (db_pgconn_wal_lsn(conn, &lsn) < 0)
		return 0;
	db_rw_raise(c->rw, lsn);
	return 1;
}

/* Wait for notifications until the connection breaks or we are told to stop. */
static void listener_drain(struct ks_cache *c, PGconn *conn)
{
	struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
	PGnotify *n;
	int changed;

	while (!atomic_load(&c->stop)) {
		if (poll(&pfd, 1, 250) < 0)
			continue;
		if (PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK)
			return;
		for (changed = 0; (n = PQnotifies(conn)) != NULL; changed = 1)
			PQfreemem(n);
		if (!changed)
			continue;
		if (!raise_floor(c, conn)) {
			/* Nothing may be cached from a replica that could still lack the change. */
			atomic_store(&c->usable, 0);
			ks_cache_invalidate(c);
			return;
		}
		ks_cache_invalidate(c);
	}
}

static void *listener_main(void *arg)
{
	struct ks_cache *c = arg;

	while (!atomic_load(&c->stop)) {
		PGconn *conn = listener_connect(c->conninfo);
		if (conn != NULL && !raise_floor(c, conn)) {
			PQfinish(conn);
			conn = NULL;
		}
		if (conn == NULL) {
			usleep(500 * 1000);
			continue;
		}
		/* Changes may have happened while we were not listening. */
		ks_cache_invalidate(c);
		atomic_store(&c->trouble, 0);
		atomic_store(&c->usable, 1);
		listener_drain(c, conn);
		/* Not invalidated here: what is kept was current when the connection went, and
		 * may be served stale (ks_cache_serve_stale) for a bounded time from now. */
		atomic_store(&c->usable, 0);
		trouble_began(c, (long long)now_mono(), "the change listener lost the database");
		PQfinish(conn);
		if (!atomic_load(&c->stop))
			log_warn(NULL, "cache: change listener lost its connection; reconnecting");
	}
	return NULL;
}

int ks_cache_listen(struct ks_cache *c, const char *conninfo, struct db_rw *rw, struct err *e)
{
	c->rw = rw;
	if ((c->conninfo = strdup(conninfo)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (pthread_create(&c->listener, NULL, listener_main, c) != 0)
		return err_set(e, ERR_INTERNAL, "internal", "cannot start the cache listener");
	c->listening = 1;
	return 0;
}

/* ---- lookups ---- */

static int client_has(const struct http_request *req, const char *etag)
{
	/* If-None-Match may list several tags; ours contain no commas or spaces. */
	return req->if_none_match != NULL &&
	       (strstr(req->if_none_match, etag) != NULL || strcmp(req->if_none_match, "*") == 0);
}

/* 304 carries no body; the layer still wants an allocated (empty) one. */
static void set_not_modified(struct http_response *resp)
{
	http_reply_text(resp, 304, resp->content_type, strdup(""), 0);
}

static void add_cache_headers(struct http_response *resp, const char *etag, long long max_age)
{
	http_add_header(resp, "ETag", "%s", etag);
	http_add_header(resp, "Cache-Control", "public, max-age=%lld", max_age);
}

/* The cache key: the path and, when there is one, the query ("/feed?since=3"); 0 when the
 * request cannot be told apart from others by a key that fits (then it is not cached). */
static int cache_key(const struct http_request *req, char *key, size_t len)
{
	char query[512];
	int n;

	if (http_query_string(req, query, sizeof(query)) < 0)
		return 0;
	n = snprintf(key, len, "%s%s%s", req->path, query[0] ? "?" : "", query);
	return n > 0 && (size_t)n < len;
}

struct serve {
	const struct http_request *req;
	struct http_response *resp;
	time_t now;
	long long stale; /* 0: fresh answers only; else seconds past max-age allowed */
};

/* Under the shard's lock: answer from a kept entry; -1 (a miss) when it is too old for
 * this use or out of memory. */
static int serve_answer(const void *value, void *arg)
{
	const struct answer *an = value;
	struct serve *sv = arg;
	long long age = (long long)(sv->now - an->stored);

	if (age >= an->max_age + sv->stale)
		return -1;
	if (sv->stale > 0) {
		/* A 304 would be stale too; the whole answer carries its age and warning. */
		char *copy = malloc(an->len + 1);
		if (copy == NULL)
			return -1;
		memcpy(copy, an->body, an->len + 1);
		sv->resp->nheaders = 0; /* the error's headers */
		http_reply_text(sv->resp, 200, an->content_type, copy, an->len);
		http_add_header(sv->resp, "ETag", "%s", an->etag);
		http_add_header(sv->resp, "Cache-Control",
		                "public, max-age=%lld, stale-if-error=%lld", an->max_age,
		                sv->stale);
		http_add_header(sv->resp, "Age", "%lld", age);
		http_add_header(sv->resp, "Warning", "110 - \"Response is Stale\"");
		return 0;
	}
	if (client_has(sv->req, an->etag)) {
		sv->resp->content_type = an->content_type;
		set_not_modified(sv->resp);
	} else {
		char *copy = malloc(an->len + 1);
		if (copy != NULL) {
			memcpy(copy, an->body, an->len + 1);
			http_reply_text(sv->resp, 200, an->content_type, copy, an->len);
		}
	}
	if (sv->resp->body == NULL)
		return -1;
	add_cache_headers(sv->resp, an->etag, an->max_age);
	return 0;
}

int ks_cache_serve(struct ks_cache *c, const struct http_request *req, struct http_response *resp,
                   unsigned long long *gen)
{
	char key[1024];
	struct serve sv = {req, resp, now_mono(), 0};

	*gen = ttlcache_generation(c->answers);
	if (!atomic_load(&c->usable) || !cache_key(req, key, sizeof(key)))
		return 0;
	return ttlcache_get(c->answers, key, (double)sv.now, TTLCACHE_CURRENT, serve_answer, &sv);
}

int ks_cache_serve_stale(struct ks_cache *c, const struct http_request *req,
                         struct http_response *resp)
{
	char key[1024];
	struct serve sv = {req, resp, now_mono(), c->stale_if_error};
	long long since;

	if (c->stale_if_error <= 0 || resp->status < 500 || !cache_key(req, key, sizeof(key)))
		return 0;
	/* Past the bound from the first miss, nothing is served stale until the listener is
	 * back (which resets the clock and retires every kept answer). */
	since = trouble_began(c, (long long)sv.now,
	                      resp->status == 503 ? "a lookup failed with 503"
	                                          : "a lookup failed with a server error");
	if ((long long)sv.now - since > c->stale_if_error)
		return 0;
	if (!ttlcache_get(c->answers, key, (double)sv.now, TTLCACHE_CURRENT, serve_answer, &sv))
		return 0;
	atomic_fetch_add(&c->stale_served, 1);
	return 1;
}

void ks_cache_stats(struct ks_cache *c, struct ks_cache_stats *out)
{
	out->bytes = ttlcache_bytes(c->answers);
	out->entries = ttlcache_count(c->answers);
	out->max_bytes = ttlcache_max_bytes(c->answers);
	out->stale_served = atomic_load(&c->stale_served);
}

static void make_etag(const struct http_response *resp, char out[ETAG_LEN])
{
	uint8_t digest[32];
	char hex[17];

	crypto_sha256(resp->body, resp->body_len, digest);
	crypto_hex(digest, 8, hex);
	snprintf(out, ETAG_LEN, "\"%s\"", hex);
}

static void keep(struct ks_cache *c, const char *key, const struct http_response *resp,
                 const char *etag, unsigned long long gen, long long max_age)
{
	struct answer *an = calloc(1, sizeof(*an));

	if (an == NULL || (an->body = malloc(resp->body_len + 1)) == NULL) {
		free(an);
		return;
	}
	memcpy(an->body, resp->body, resp->body_len);
	an->body[resp->body_len] = '\0';
	an->len = resp->body_len;
	an->content_type = resp->content_type;
	memcpy(an->etag, etag, ETAG_LEN);
	an->max_age = max_age;
	an->stored = now_mono();
	/* Refused when a change was notified since the answer was computed.  Kept past its
	 * max-age for as long as it may be served stale. */
	ttlcache_put_sized(c->answers, key, an, sizeof(*an) + an->len + 1,
	                   (double)(an->stored + max_age + c->stale_if_error), gen);
}

void ks_cache_store(struct ks_cache *c, const struct http_request *req, struct http_response *resp,
                    unsigned long long gen, long long max_age)
{
	char etag[ETAG_LEN], key[1024];

	if (resp->status != 200 || resp->body == NULL)
		return;
	make_etag(resp, etag);
	if (atomic_load(&c->usable) && gen == ttlcache_generation(c->answers) && max_age > 0 &&
	    cache_key(req, key, sizeof(key))) {
		keep(c, key, resp, etag, gen, max_age);
		atomic_store(&c->trouble, 0); /* the database answered and the listener is up */
	}
	if (client_has(req, etag))
		set_not_modified(resp);
	add_cache_headers(resp, etag, max_age);
}
