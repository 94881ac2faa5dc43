/*
 * dnszone.c - the RFC 5782 DNS zone of anchor-reputation (see dnszone.h for
 * the names and codes): the server.  Queries are read and answers written in
 * place by dnszone_wire.c, with no allocation per query.  UDP is served by a few
 * worker threads sharing one socket, each taking and answering queued datagrams in
 * batches (recvmmsg/sendmmsg); TCP by one thread running an event loop over many
 * connections at once (dnszone_tcp.c).  Verdicts come from a
 * lookup function (rep_score_get in the daemon) and are kept in a small
 * bounded cache (core/ttlcache) for cache_seconds, because a DNSxL sees the same names
 * again and again and the store is the expensive part.  The cache follows the store as
 * the HTTPS answer cache does: every change this process commits forgets its subjects
 * here too (rep_dnszone_forget / _flush), and a verdict read before such a change is
 * never stored after it (the cache's generation), so a delisting shows at once.
 */
#include "dnszone.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "http/ratelimit.h"
#include "core/ttlcache.h"
#include "dnszone_tcp.h"

/* ------------------------------------------------------------------ cache */

#define CACHE_SHARDS 64
#define CACHE_BYTES_DEFAULT (4u << 20) /* dns_cache_bytes' default, for callers that set none */

struct rep_dnszone {
	struct rep_dnszone_config c;
	char zone[DNS_NAME_MAX];
	char listen[128];
	uint32_t serial;
	int udp, tcp, port;
	pthread_t threads[16];
	struct udp_batch *batches[16];
	int nthreads;
	pthread_t tcp_thread;
	int tcp_started;
	atomic_int stop;
	atomic_ullong queries;
	struct ratelimit *rl;
	struct ttlcache *cache; /* struct rep_dnszone_verdict by subject; NULL: none */
	struct rep *rep;        /* for the default lookup */
};

static int verdict_copy(const void *value, void *arg)
{
	memcpy(arg, value, sizeof(struct rep_dnszone_verdict));
	return 0;
}

/* Each miss is a store query that holds a UDP thread: hot names stay until they expire. */
static int cache_get(struct rep_dnszone *z, const char *key, struct rep_dnszone_verdict *v)
{
	return ttlcache_get(z->cache, key, (double)time(NULL), 0, verdict_copy, v);
}

/* gen: the cache's generation read before the lookup that produced v. */
static void cache_put(struct rep_dnszone *z, const char *key, const struct rep_dnszone_verdict *v,
                      unsigned long long gen)
{
	struct rep_dnszone_verdict *copy;

	if (z->cache == NULL || v->error || strlen(key) >= REP_SUBJECT_MAX + 16 ||
	    (copy = malloc(sizeof(*copy))) == NULL)
		return;
	*copy = *v;
	ttlcache_put_sized(z->cache, key, copy, sizeof(*copy),
	                   (double)(time(NULL) + z->c.cache_seconds), gen);
}

void rep_dnszone_forget(struct rep_dnszone *z, const char *subject)
{
	if (z == NULL || z->cache == NULL)
		return;
	ttlcache_bump(z->cache); /* first: a lookup under way must not store the old verdict */
	ttlcache_remove(z->cache, subject);
}

void rep_dnszone_flush(struct rep_dnszone *z)
{
	if (z == NULL || z->cache == NULL)
		return;
	ttlcache_bump(z->cache);
	ttlcache_clear(z->cache);
}

/* ------------------------------------------------------------------ serving */

static void client_key(const struct sockaddr_storage *ss, char *out, size_t size)
{
	if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out,
		          (socklen_t)size);
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out,
		          (socklen_t)size);
}

/* One query in, its answer written to out (size octets); its length, or 0 to stay
 * silent.  No allocation: the query is read and the answer written in place.  udp: the
 * answer must fit the client's datagram limit (else it goes out truncated, TC set). */
static size_t answer_query(struct rep_dnszone *z, const uint8_t *wire, size_t len,
                           const struct sockaddr_storage *from, uint8_t *out, size_t size, int udp)
{
	struct rep_dnszone_query q;
	struct rep_dnszone_verdict v;
	char who[INET6_ADDRSTRLEN];
	double retry;

	atomic_fetch_add_explicit(&z->queries, 1, memory_order_relaxed);
	rep_dnszone_parse(wire, len, z->zone, &q);
	q.udp = udp;
	v.error = v.rate_limited = 0;
	v.verdict = REP_UNKNOWN;
	v.categories = 0;
	v.reason[0] = '\0';
	if (q.kind == REP_DZ_SUBJECT) {
		if (z->rl != NULL)
			client_key(from, who, sizeof(who));
		if (z->rl != NULL && !ratelimit_take(z->rl, who, ratelimit_now(), &retry)) {
			v.rate_limited = 1;
		} else if (!cache_get(z, q.subject.text, &v)) {
			unsigned long long gen = ttlcache_generation(z->cache);
			struct err e;

			memset(&v, 0, sizeof(v));
			if (z->c.lookup(z->c.ctx, &q.subject, &v, &e) < 0) {
				memset(&v, 0, sizeof(v));
				v.error = 1;
				log_warn(NULL, "dnszone: lookup of %s failed: %s", q.subject.text,
				         e.msg);
			} else {
				cache_put(z, q.subject.text, &v, gen);
			}
		}
	}
	return rep_dnszone_write(&q, &v, z->c.ttl, z->serial, out, size);
}

/* The TCP loop's answer function: a stream takes the whole answer. */
static size_t handle(void *arg, const uint8_t *wire, size_t len,
                     const struct sockaddr_storage *from, uint8_t *out, size_t size)
{
	return answer_query(arg, wire, len, from, out, size, 0);
}

/* Datagrams taken and answered per system call: under load a reader finds many
 * queued, and one recvmmsg/sendmmsg pair replaces a recvfrom/sendto pair each. */
#define UDP_BATCH 32
#define UDP_QUERY_MAX 1500 /* a longer datagram is cut short and answered FORMERR */

struct udp_batch { /* one per UDP reader thread */
	struct rep_dnszone *z;
	struct mmsghdr in[UDP_BATCH], out[UDP_BATCH];
	struct iovec iin[UDP_BATCH], iout[UDP_BATCH];
	struct sockaddr_storage from[UDP_BATCH];
	uint8_t query[UDP_BATCH][UDP_QUERY_MAX];
	uint8_t answer[UDP_BATCH][REP_DNSZONE_ANSWER_MAX];
};

static void udp_arm(struct udp_batch *b)
{
	for (int i = 0; i < UDP_BATCH; i++) {
		b->iin[i] = (struct iovec){b->query[i], UDP_QUERY_MAX};
		b->in[i].msg_hdr = (struct msghdr){.msg_name = &b->from[i],
		                                   .msg_namelen = sizeof(b->from[i]),
		                                   .msg_iov = &b->iin[i],
		                                   .msg_iovlen = 1};
	}
}

/* Answer the n datagrams in b; all answers leave in one sendmmsg (or a few). */
static void udp_answer(struct rep_dnszone *z, struct udp_batch *b, int n)
{
	int m = 0, sent = 0;

	for (int i = 0; i < n; i++) {
		size_t alen = answer_query(z, b->query[i], b->in[i].msg_len, &b->from[i],
		                           b->answer[m], sizeof(b->answer[m]), 1);

		if (alen == 0)
			continue;
		if (m != i)
			b->from[m] = b->from[i];
		b->iout[m] = (struct iovec){b->answer[m], alen};
		b->out[m].msg_hdr = (struct msghdr){.msg_name = &b->from[m],
		                                    .msg_namelen = b->in[i].msg_hdr.msg_namelen,
		                                    .msg_iov = &b->iout[m],
		                                    .msg_iovlen = 1};
		m++;
	}
	while (sent < m) {
		int r = sendmmsg(z->udp, b->out + sent, (unsigned)(m - sent), 0);

		if (r <= 0) {
			log_debug(NULL, "dnszone: sendmmsg: %s", strerror(errno));
			sent++; /* skip the datagram the kernel refused */
			continue;
		}
		sent += r;
	}
}

static void *udp_worker(void *arg)
{
	struct udp_batch *b = arg;
	struct rep_dnszone *z = b->z;

	/* Blocking reads with a receive timeout (set in open_sockets): the stop flag is seen
	 * within 200 ms.  MSG_WAITFORONE: wait for the first datagram, then take whatever
	 * else is queued without waiting. */
	while (!atomic_load(&z->stop)) {
		int n;

		udp_arm(b);
		n = recvmmsg(z->udp, b->in, UDP_BATCH, MSG_WAITFORONE, NULL);
		if (n > 0)
			udp_answer(z, b, n);
	}
	return NULL;
}

static void *tcp_worker(void *arg)
{
	struct rep_dnszone *z = arg;

	rep_dnszone_tcp_serve(z->tcp, &z->stop, handle, z);
	return NULL;
}

/* "ADDR:PORT" or "[ADDR6]:PORT" -> sockaddr. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl, struct err *e)
{
	char host[INET6_ADDRSTRLEN];
	const char *colon, *h = s, *hend;
	char *end;
	long port;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		h = s + 1;
		hend = strchr(h, ']');
		colon = hend && hend[1] == ':' ? hend + 1 : NULL;
	} else {
		colon = strrchr(s, ':');
		hend = colon;
	}
	if (colon == NULL || hend == NULL || (size_t)(hend - h) >= sizeof(host))
		goto bad;
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535)
		goto bad;
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*sl = sizeof(struct sockaddr_in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		*sl = sizeof(struct sockaddr_in6);
		return 0;
	}
bad:
	return err_set(e, ERR_INPUT, "bad_dns_listen",
	               "dns_listen \"%.64s\" is not ADDRESS:PORT (e.g. 127.0.0.1:5353 or "
	               "[::1]:5353)",
	               s);
}

static int open_sockets(struct rep_dnszone *z, struct err *e)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	struct timeval tick = {0, 200 * 1000};
	int one = 1;

	if (parse_listen(z->c.listen, &ss, &sl, e) < 0)
		return -1;
	z->udp = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (z->udp < 0 || bind(z->udp, (struct sockaddr *)&ss, sl) < 0 ||
	    setsockopt(z->udp, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick)) < 0)
		goto fail;
	/* The TCP socket takes the port the UDP one got (port 0 = pick one). */
	if (getsockname(z->udp, (struct sockaddr *)&ss, &sl) < 0)
		goto fail;
	z->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	z->tcp = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (z->tcp < 0 || setsockopt(z->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(z->tcp, (struct sockaddr *)&ss, sl) < 0 || listen(z->tcp, 128) < 0 ||
	    fcntl(z->tcp, F_SETFL, O_NONBLOCK) < 0)
		goto fail;
	return 0;
fail:
	return err_set(e, ERR_TEMP, "dns_listen", "cannot listen on %s for DNS: %s", z->c.listen,
	               strerror(errno));
}

void rep_dnszone_stop(struct rep_dnszone *z)
{
	int i;

	if (z == NULL)
		return;
	atomic_store(&z->stop, 1);
	for (i = 0; i < z->nthreads; i++)
		pthread_join(z->threads[i], NULL);
	for (i = 0; i < 16; i++)
		free(z->batches[i]);
	if (z->tcp_started)
		pthread_join(z->tcp_thread, NULL);
	if (z->udp >= 0)
		close(z->udp);
	if (z->tcp >= 0)
		close(z->tcp);
	ratelimit_free(z->rl);
	ttlcache_free(z->cache);
	free(z);
}

struct rep_dnszone *rep_dnszone_start_config(const struct rep_dnszone_config *c, struct err *e)
{
	struct rep_dnszone *z = calloc(1, sizeof(*z));
	struct err ign;
	int i;

	if (z == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	z->c = *c;
	z->udp = z->tcp = -1;
	if (c->listen == NULL || c->lookup == NULL) {
		err_set(e, ERR_INPUT, "bad_dns_listen", "no dns_listen address");
		goto fail;
	}
	snprintf(z->listen, sizeof(z->listen), "%s", c->listen);
	z->c.listen = z->listen;
	if (dns_name_canon(c->zone, z->zone, sizeof(z->zone), &ign) < 0) {
		err_set(e, ERR_INPUT, "bad_dns_zone", "dns_zone \"%.64s\" is not a domain name",
		        c->zone ? c->zone : "");
		goto fail;
	}
	z->serial = (uint32_t)time(NULL);
	if (c->rate > 0 &&
	    (z->rl = ratelimit_new(c->rate, c->burst > 0 ? c->burst : c->rate, 65536)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if (c->cache_seconds > 0 &&
	    (z->cache = ttlcache_new_bytes(0, c->cache_bytes ? c->cache_bytes : CACHE_BYTES_DEFAULT,
	                                   CACHE_SHARDS, free)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if (open_sockets(z, e) < 0)
		goto fail;
	z->c.threads = c->threads < 1 ? 1 : c->threads > 16 ? 16 : c->threads;
	for (i = 0; i < z->c.threads; i++) {
		if ((z->batches[i] = malloc(sizeof(*z->batches[i]))) == NULL) {
			err_set(e, ERR_INTERNAL, "internal", "out of memory");
			goto fail;
		}
		z->batches[i]->z = z;
		if (pthread_create(&z->threads[i], NULL, udp_worker, z->batches[i]) != 0) {
			err_set(e, ERR_INTERNAL, "internal", "cannot start a DNS thread");
			goto fail;
		}
		z->nthreads++;
	}
	if (pthread_create(&z->tcp_thread, NULL, tcp_worker, z) != 0) {
		err_set(e, ERR_INTERNAL, "internal", "cannot start the DNS TCP thread");
		goto fail;
	}
	z->tcp_started = 1;
	log_info(NULL, "dnszone: serving %s on %s (UDP and TCP, port %d)", z->zone, z->listen,
	         z->port);
	return z;
fail:
	rep_dnszone_stop(z);
	return NULL;
}

int rep_dnszone_port(const struct rep_dnszone *z)
{
	return z->port;
}

unsigned long long rep_dnszone_queries(const struct rep_dnszone *z)
{
	return atomic_load(&((struct rep_dnszone *)z)->queries);
}

void rep_dnszone_cache_stats(struct rep_dnszone *z, size_t *bytes, size_t *max_bytes,
                             size_t *entries)
{
	*bytes = z ? ttlcache_bytes(z->cache) : 0;
	*max_bytes = z ? ttlcache_max_bytes(z->cache) : 0;
	*entries = z ? ttlcache_count(z->cache) : 0;
}

/* ------------------------------------------------------------------ the daemon's lookup */

static int score_lookup(void *ctx, const struct rep_subject *s, struct rep_dnszone_verdict *v,
                        struct err *e)
{
	struct rep *rep = ctx;
	struct rep_score sc;
	struct db *db = db_pool_get(rep->pool);
	size_t i, pos = 0;
	json_t *r;
	int rc;

	memset(&sc, 0, sizeof(sc));
	rc = rep_score_get(rep, db, s, &sc, e);
	db_pool_put(rep->pool, db);
	if (rc < 0)
		return -1;
	v->verdict = sc.verdict;
	v->categories = sc.categories;
	json_array_foreach(sc.reasons, i, r)
	{
		const char *t = json_string_value(json_object_get(r, "text"));
		int n;

		if (t == NULL || pos + 3 >= sizeof(v->reason))
			continue;
		n = snprintf(v->reason + pos, sizeof(v->reason) - pos, "%s%s", pos ? "; " : "", t);
		pos = n < 0                                  ? pos
		      : pos + (size_t)n >= sizeof(v->reason) ? sizeof(v->reason) - 1
		                                             : pos + (size_t)n;
	}
	rep_score_clear(&sc);
	return 0;
}

static int threads_for(long cores)
{
	return cores < 2 ? 4 : cores > 8 ? 16 : (int)(2 * cores);
}

struct rep_dnszone *rep_dnszone_start(struct rep *rep, struct err *e)
{
	struct rep_dnszone_config c = {
	    .listen = rep->cfg.dns_listen,
	    .zone = rep->cfg.dns_zone,
	    .ttl = (uint32_t)rep->cfg.dns_ttl,
	    /* Two UDP readers per core, at least four: a cache miss holds one for a store
	     * query, and the others keep answering. */
	    .threads = threads_for(sysconf(_SC_NPROCESSORS_ONLN)),
	    .rate = 0, /* a resolver speaks for many clients: no per-address limit by default */
	    .burst = 0,
	    .cache_seconds = rep->cfg.dns_ttl < 30 ? (int)rep->cfg.dns_ttl : 30,
	    .cache_bytes = (size_t)rep->cfg.dns_cache_bytes,
	    .lookup = score_lookup,
	    .ctx = rep,
	};

	return rep_dnszone_start_config(&c, e);
}
