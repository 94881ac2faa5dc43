/*
 * deliver_cache.c - connection reuse for deliveries.  Opening a session costs
 * a TCP handshake, greeting, EHLO, STARTTLS, a TLS handshake and EHLO again;
 * on a loaded relay that is most of a message's cost.  After a transaction,
 * deliver.c says RSET (RFC 5321 §4.1.1.5: the session is back at its start,
 * as after EHLO) and, when the peer answers 250, leaves the session here; the
 * next message to the same hop (relay_dcache_key: protocol, TLS policy,
 * destination, pin and name, so a session verified one way never carries
 * mail that needs another) sends its MAIL on it.
 *
 * A kept session is idle at most connection_idle_time (Postfix keeps its
 * cache 2 s): the scheduler's tick says QUIT to older ones, and take() never
 * hands one out.  take() also drops a session the peer closed or spoke on
 * while idle (a 421 before its own timeout): poll() says readable.  A peer can
 * still close one between take() and MAIL; deliver.c then sends the message
 * again on a new session, so a reused session never fails a message.
 *
 * DCACHE_SLOTS sessions in all; worker threads share them under one mutex,
 * with nothing that can block inside it (a poll() with no wait; closing is
 * done outside).
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "deliver_cache.h"

#define DCACHE_SLOTS 64

struct dcache_entry {
	char key[RELAY_DCACHE_KEY_MAX];
	struct relay_dconn c;
	struct relay_smtp_caps caps;
	unsigned sent;
	time_t until; /* idle until this time, then closed */
};

static pthread_mutex_t dcache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dcache_entry *dcache_slots[DCACHE_SLOTS];
static atomic_ullong dcache_hits;

static time_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

void relay_dcache_key(const struct relay_hop *hop, char *key, size_t len)
{
	char rk[RELAY_RESUME_KEY_MAX];

	relay_resume_key(hop, rk, sizeof(rk));
	snprintf(key, len, "%s %d %s", hop->proto == RELAY_PROTO_LMTP ? "lmtp" : "smtp",
	         hop->tls_required, rk);
}

/* The end of an idle session: QUIT without waiting for its reply (the socket does not
 * block), close_notify, close. */
static void entry_close(struct dcache_entry *en)
{
	if (en == NULL)
		return;
	if (en->c.ssl != NULL) {
		ERR_clear_error();
		(void)SSL_write(en->c.ssl, "QUIT\r\n", 6);
		(void)SSL_shutdown(en->c.ssl);
		ERR_clear_error();
	} else if (en->c.fd >= 0) {
		(void)send(en->c.fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	relay_dconn_close(&en->c);
	free(en);
}

/* Nothing to read on an idle session: the peer has neither closed it nor said anything. */
static int entry_quiet(const struct dcache_entry *en)
{
	struct pollfd p = {.fd = en->c.fd, .events = POLLIN};

	if (en->c.inlen > 0 || (en->c.ssl != NULL && SSL_pending(en->c.ssl) > 0))
		return 0;
	return poll(&p, 1, 0) == 0;
}

int relay_dcache_take(const char *key, struct relay_dconn *c, struct relay_smtp_caps *caps,
                      unsigned *sent)
{
	struct dcache_entry *got = NULL, *stale[DCACHE_SLOTS];
	size_t nstale = 0;
	time_t now = mono_now();

	pthread_mutex_lock(&dcache_mu);
	for (int i = 0; i < DCACHE_SLOTS && got == NULL; i++) {
		struct dcache_entry *en = dcache_slots[i];
		if (en == NULL || strcmp(en->key, key) != 0)
			continue;
		dcache_slots[i] = NULL;
		if (en->until <= now || !entry_quiet(en))
			stale[nstale++] = en;
		else
			got = en;
	}
	pthread_mutex_unlock(&dcache_mu);
	for (size_t i = 0; i < nstale; i++)
		entry_close(stale[i]);
	if (got == NULL)
		return 0;
	*c = got->c;
	*caps = got->caps;
	*sent = got->sent;
	free(got);
	atomic_fetch_add(&dcache_hits, 1);
	return 1;
}

int relay_dcache_put(const char *key, struct relay_dconn *c, const struct relay_smtp_caps *caps,
                     unsigned sent, int idle_seconds)
{
	struct dcache_entry *en = malloc(sizeof(*en));
	int kept = 0;

	if (en == NULL)
		return -1;
	snprintf(en->key, sizeof(en->key), "%s", key);
	en->c = *c;
	en->caps = *caps;
	en->sent = sent;
	en->until = mono_now() + idle_seconds;
	pthread_mutex_lock(&dcache_mu);
	for (int i = 0; i < DCACHE_SLOTS && !kept; i++)
		if (dcache_slots[i] == NULL) {
			dcache_slots[i] = en;
			kept = 1;
		}
	pthread_mutex_unlock(&dcache_mu);
	if (!kept) {
		free(en);
		return -1;
	}
	c->ssl = NULL;
	c->fd = -1;
	c->inlen = 0;
	return 0;
}

/* Take out of the cache every session (all) or those idle past their time. */
static void dcache_drop(int all)
{
	struct dcache_entry *out[DCACHE_SLOTS];
	size_t n = 0;
	time_t now = mono_now();

	pthread_mutex_lock(&dcache_mu);
	for (int i = 0; i < DCACHE_SLOTS; i++)
		if (dcache_slots[i] != NULL && (all || dcache_slots[i]->until <= now)) {
			out[n++] = dcache_slots[i];
			dcache_slots[i] = NULL;
		}
	pthread_mutex_unlock(&dcache_mu);
	for (size_t i = 0; i < n; i++)
		entry_close(out[i]);
}

void relay_dcache_sweep(void)
{
	dcache_drop(0);
}

void relay_dcache_clear(void)
{
	dcache_drop(1);
}

unsigned long long relay_dcache_reused(void)
{
	return atomic_load(&dcache_hits);
}
