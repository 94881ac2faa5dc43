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

#include "pki/crypto.h"
#include "core/log.h"

#define CACHE_SHARDS 64
#define ETAG_LEN 20 /* quote + 16 hex + quote + NUL, rounded */

struct entry {
	struct entry *next;
	char *key;
	char *body;
	size_t len;
	const char *content_type;
	char etag[ETAG_LEN];
	unsigned long long gen;
	long long max_age;
	time_t expires; /* monotonic seconds */
};

struct shard {
	pthread_mutex_t lock;
	struct entry **slots;
	size_t nslots;
	size_t count;
};

struct ks_cache {
	struct shard shards[CACHE_SHARDS];
	size_t max_per_shard;
	atomic_ullong gen;
	atomic_int usable; /* the listener is connected: cached answers can be trusted */
	atomic_int stop;
	pthread_t listener;
	int listening;
	char *conninfo;
};

static time_t now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static uint64_t hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a: short keys, no adversarial control */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void entry_free(struct entry *en)
{
	free(en->key);
	free(en->body);
	free(en);
}

static void shard_clear(struct shard *sh)
{
	for (size_t i = 0; i < sh->nslots; i++) {
		struct entry *en = sh->slots[i], *next;
		for (; en != NULL; en = next) {
			next = en->next;
			entry_free(en);
		}
		sh->slots[i] = NULL;
	}
	sh->count = 0;
}

struct ks_cache *ks_cache_new(size_t max_entries)
{
	struct ks_cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->max_per_shard = max_entries / CACHE_SHARDS + 1;
	atomic_init(&c->gen, 1);
	for (int i = 0; i < CACHE_SHARDS; i++) {
		pthread_mutex_init(&c->shards[i].lock, NULL);
		c->shards[i].nslots = 256;
		c->shards[i].slots = calloc(c->shards[i].nslots, sizeof(struct entry *));
		if (c->shards[i].slots == NULL) {
			c->shards[i].nslots = 0;
			ks_cache_free(c);
			return NULL;
		}
	}
	return c;
}

void ks_cache_free(struct ks_cache *c)
{
	if (c == NULL)
		return;
	if (c->listening) {
		atomic_store(&c->stop, 1);
		pthread_join(c->listener, NULL);
	}
	for (int i = 0; i < CACHE_SHARDS; i++) {
		shard_clear(&c->shards[i]);
		free(c->shards[i].slots);
		pthread_mutex_destroy(&c->shards[i].lock);
	}
	free(c->conninfo);
	free(c);
}

void ks_cache_invalidate(struct ks_cache *c)
{
	atomic_fetch_add(&c->gen, 1);
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

/* Wait for notifications until the connection breaks or we are told to stop. */
static void listener_drain(struct ks_cache *c, PGconn *conn)
{
	struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
	PGnotify *n;

	while (!atomic_load(&c->stop)) {
		if (poll(&pfd, 1, 250) < 0)
			continue;
		if (PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK)
			return;
		while ((n = PQnotifies(conn)) != NULL) {
			ks_cache_invalidate(c);
			PQfreemem(n);
		}
	}
}

static void *listener_main(void *arg)
{
	struct ks_cache *c = arg;

	while (!atomic_load(&c->stop)) {
		PGconn *conn = listener_connect(c->conninfo);
		if (conn == NULL) {
			usleep(500 * 1000);
			continue;
		}
		/* Changes may have happened while we were not listening. */
		ks_cache_invalidate(c);
		atomic_store(&c->usable, 1);
		listener_drain(c, conn);
		atomic_store(&c->usable, 0);
		ks_cache_invalidate(c);
		PQfinish(conn);
		if (!atomic_load(&c->stop))
			log_warn(NULL, "cache: change listener lost its connection; reconnecting");
	}
	return NULL;
}

int ks_cache_listen(struct ks_cache *c, const char *conninfo, struct err *e)
{
	if ((c->conninfo = strdup(conninfo)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (pthread_create(&c->listener, NULL, listener_main, c) != 0)
		return err_set(e, ERR_INTERNAL, "internal", "cannot start the cache listener");
	c->listening = 1;
	return 0;
}

/* ---- lookups ---- */

static struct entry **find_slot(struct shard *sh, uint64_t h, const char *key)
{
	struct entry **pp = &sh->slots[(h / CACHE_SHARDS) % sh->nslots];

	while (*pp != NULL && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

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

int ks_cache_serve(struct ks_cache *c, const struct http_request *req,
		   struct http_response *resp, unsigned long long *gen)
{
	char key[1024];
	uint64_t h;
	struct shard *sh;
	struct entry *en;
	int served = 0;

	*gen = atomic_load(&c->gen);
	if (!atomic_load(&c->usable) || !cache_key(req, key, sizeof(key)))
		return 0;
	h = hash_key(key);
	sh = &c->shards[h % CACHE_SHARDS];
	pthread_mutex_lock(&sh->lock);
	en = *find_slot(sh, h, key);
	if (en != NULL && en->gen == *gen && now_mono() < en->expires) {
		if (client_has(req, en->etag)) {
			resp->content_type = en->content_type;
			set_not_modified(resp);
		} else {
			char *copy = malloc(en->len + 1);
			if (copy != NULL) {
				memcpy(copy, en->body, en->len + 1);
				http_reply_text(resp, 200, en->content_type, copy, en->len);
			}
		}
		if (resp->body != NULL) {
			add_cache_headers(resp, en->etag, en->max_age);
			served = 1;
		}
	}
	pthread_mutex_unlock(&sh->lock);
	return served;
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
	uint64_t h = hash_key(key);
	struct shard *sh = &c->shards[h % CACHE_SHARDS];
	struct entry *en = calloc(1, sizeof(*en));

	if (en == NULL || (en->key = strdup(key)) == NULL ||
	    (en->body = malloc(resp->body_len + 1)) == NULL) {
		if (en != NULL)
			entry_free(en);
		return;
	}
	memcpy(en->body, resp->body, resp->body_len);
	en->body[resp->body_len] = '\0';
	en->len = resp->body_len;
	en->content_type = resp->content_type;
	memcpy(en->etag, etag, ETAG_LEN);
	en->gen = gen;
	en->max_age = max_age;
	en->expires = now_mono() + max_age;

	pthread_mutex_lock(&sh->lock);
	struct entry **pp = find_slot(sh, h, key);
	if (*pp != NULL) {
		struct entry *old = *pp;
		en->next = old->next;
		*pp = en;
		entry_free(old);
	} else {
		/* A full shard is emptied rather than evicted entry by entry: simple, and the
		 * working set of a key server is small next to the bound. */
		if (sh->count >= c->max_per_shard)
			shard_clear(sh);
		pp = find_slot(sh, h, key);
		*pp = en;
		sh->count++;
	}
	pthread_mutex_unlock(&sh->lock);
}

void ks_cache_store(struct ks_cache *c, const struct http_request *req,
		    struct http_response *resp, unsigned long long gen, long long max_age)
{
	char etag[ETAG_LEN], key[1024];

	if (resp->status != 200 || resp->body == NULL)
		return;
	make_etag(resp, etag);
	if (atomic_load(&c->usable) && gen == atomic_load(&c->gen) && max_age > 0 &&
	    cache_key(req, key, sizeof(key)))
		keep(c, key, resp, etag, gen, max_age);
	if (client_has(req, etag))
		set_not_modified(resp);
	add_cache_headers(resp, etag, max_age);
}
