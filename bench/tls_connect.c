/*
 * tls_connect.c - the new-connection load generator of bench/newconn.sh: each of
 * CONNS threads opens a TCP connection, does the TLS handshake (OpenSSL, the peer
 * verified against CAFILE), sends one GET with "Connection: close", reads the
 * answer to its end and closes, over and over for SECONDS.  With "resume" a thread
 * offers the session of its previous connection (a TLS 1.3 PSK ticket or a TLS 1.2
 * ticket), as a mail server asking the same key server again would.
 *
 * Prints one line: connections, connections/s, median and p99 latency in ms, how
 * many were resumed, failures.  wrk cannot resume sessions, hence this program.
 *
 * Usage: tls_connect HOST PORT PATH CAFILE full|resume CONNS SECONDS [tls1.2|tls1.3]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_SAMPLES 400000

struct run {
	struct sockaddr_in addr;
	const char *path;
	SSL_CTX *ctx;
	int resume;
	double until;
	pthread_mutex_t mu;
	double *lat; /* seconds, one per finished connection */
	long n, resumed, failed;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One connection: 0 when a whole 200 answer came back. */
static int one(struct run *r, SSL_SESSION **sess, int *was_resumed)
{
	char req[512], buf[16384];
	int fd = socket(AF_INET, SOCK_STREAM, 0), n, rc = -1, one_ = 1, got = 0;
	SSL *ssl = NULL;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof(one_));
	if (connect(fd, (struct sockaddr *)&r->addr, sizeof(r->addr)) < 0)
		goto out;
	ssl = SSL_new(r->ctx);
	if (ssl == NULL)
		goto out;
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	SSL_set1_host(ssl, "127.0.0.1");
	if (*sess != NULL)
		SSL_set_session(ssl, *sess);
	if (SSL_connect(ssl) != 1)
		goto out;
	*was_resumed = SSL_session_reused(ssl);
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
	         r->path);
	if (SSL_write(ssl, req, (int)strlen(req)) <= 0)
		goto out;
	while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
		if (got == 0 && (n < 12 || memcmp(buf + 9, "200", 3) != 0))
			goto out;
		got += n;
	}
	rc = got > 0 ? 0 : -1;
	if (rc == 0 && r->resume) {
		/* The newest ticket: for TLS 1.3 it came after the handshake. */
		SSL_SESSION_free(*sess);
		*sess = SSL_get1_session(ssl);
	}
out:
	if (ssl != NULL) {
		SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(ssl);
	}
	close(fd);
	return rc;
}

static void *worker(void *arg)
{
	struct run *r = arg;
	SSL_SESSION *sess = NULL;

	while (now_s() < r->until) {
		double t0 = now_s();
		int resumed = 0, rc = one(r, &sess, &resumed);
		double dt = now_s() - t0;

		pthread_mutex_lock(&r->mu);
		if (rc == 0 && r->n < MAX_SAMPLES) {
			r->lat[r->n++] = dt;
			r->resumed += resumed;
		} else if (rc != 0) {
			r->failed++;
		}
		pthread_mutex_unlock(&r->mu);
		if (rc != 0) {
			SSL_SESSION_free(sess);
			sess = NULL;
			usleep(1000);
		}
	}
	SSL_SESSION_free(sess);
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static SSL_CTX *make_ctx(const char *cafile, const char *version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (version != NULL && strcmp(version, "tls1.2") == 0)
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	else if (version != NULL && strcmp(version, "tls1.3") == 0)
		SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
}

int main(int argc, char **argv)
{
	struct run r;
	pthread_t th[256];
	int conns;
	double secs, t0, el;

	if (argc < 8) {
		fprintf(stderr, "usage: %s HOST PORT PATH CAFILE full|resume CONNS SECONDS "
		                "[tls1.2|tls1.3]\n",
		        argv[0]);
		return 2;
	}
	memset(&r, 0, sizeof(r));
	r.addr.sin_family = AF_INET;
	r.addr.sin_port = htons((uint16_t)atoi(argv[2]));
	conns = atoi(argv[6]);
	secs = atof(argv[7]);
	if (inet_pton(AF_INET, argv[1], &r.addr.sin_addr) != 1 || conns < 1 || conns > 256 ||
	    secs <= 0) {
		fprintf(stderr, "tls_connect: bad HOST, CONNS (1..256) or SECONDS\n");
		return 2;
	}
	r.path = argv[3];
	r.resume = strcmp(argv[5], "resume") == 0;
	r.ctx = make_ctx(argv[4], argc > 8 ? argv[8] : NULL);
	r.lat = calloc(MAX_SAMPLES, sizeof(double));
	if (r.ctx == NULL || r.lat == NULL) {
		fprintf(stderr, "tls_connect: cannot set up OpenSSL (CA file %s)\n", argv[4]);
		return 1;
	}
	pthread_mutex_init(&r.mu, NULL);
	t0 = now_s();
	r.until = t0 + secs;
	for (int i = 0; i < conns; i++)
		pthread_create(&th[i], NULL, worker, &r);
	for (int i = 0; i < conns; i++)
		pthread_join(th[i], NULL);
	el = now_s() - t0;
	qsort(r.lat, (size_t)r.n, sizeof(double), cmp_d);
	printf("connections %ld rate %.1f median_ms %.2f p99_ms %.2f resumed %ld failed %ld\n", r.n,
	       (double)r.n / el, r.n ? r.lat[r.n / 2] * 1e3 : 0.0,
	       r.n ? r.lat[(long)((double)r.n * 0.99)] * 1e3 : 0.0, r.resumed, r.failed);
	SSL_CTX_free(r.ctx);
	free(r.lat);
	return r.n > 0 ? 0 : 1;
}
