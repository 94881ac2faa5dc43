/*
 * http_tls.c - the session ticket keys of the HTTPS server layer and their
 * rotation; see http_tls.h.
 */
#include "http/http_tls.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#define HTTP_TLS_KEY_LEN 64 /* what gnutls_session_ticket_enable_server() takes */
#define HTTP_TLS_ROTATION_MAX                                                                      \
	(3L * 24 * 3600) /* tickets live two periods, TLS 1.3 allows 7 days                        \
	                  */
/* GnuTLS derives its sealing key per window of this many ticket lifetimes
 * (STEK_ROTATION_PERIOD_PRODUCT in its lib/stek.h). */
#define HTTP_TLS_GNUTLS_WINDOW 3

struct http_tls {
	pthread_mutex_t mu;
	unsigned char cur[HTTP_TLS_KEY_LEN];
	unsigned char prev[HTTP_TLS_KEY_LEN];
	int have_prev;
	time_t rotated_at; /* when cur became current */
	long period;
	time_t (*clock_fn)(time_t *);
};

struct http_tls *http_tls_new(long rotation_s, time_t (*clock_fn)(time_t *), struct err *e)
{
	struct http_tls *t;

	if (rotation_s < 1 || rotation_s > HTTP_TLS_ROTATION_MAX) {
		err_set(e, ERR_INPUT, "bad_config",
		        "The TLS ticket key rotation must be 1 second to 3 days, not %ld seconds.",
		        rotation_s);
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		err_set(e, ERR_INTERNAL, "no_memory", "out of memory");
		return NULL;
	}
	t->period = rotation_s;
	t->clock_fn = clock_fn != NULL ? clock_fn : time;
	if (gnutls_rnd(GNUTLS_RND_KEY, t->cur, sizeof(t->cur)) != 0) {
		free(t);
		err_set(e, ERR_INTERNAL, "tls_rng", "No random bytes for a TLS ticket key.");
		return NULL;
	}
	t->rotated_at = t->clock_fn(NULL);
	pthread_mutex_init(&t->mu, NULL);
	return t;
}

void http_tls_free(struct http_tls *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->mu);
	gnutls_memset(t, 0, sizeof(*t));
	free(t);
}

unsigned http_tls_lifetime(const struct http_tls *t)
{
	return (unsigned)(2 * t->period);
}

/* Under t->mu: the key schedule brought up to now.  A key is current for one
 * period and previous for the next; after two periods without a connection
 * both are past their life and a fresh one starts a new schedule.  A failing
 * RNG keeps the old keys (tickets then live longer, nothing breaks). */
static void http_tls_rotate(struct http_tls *t, time_t now)
{
	unsigned char fresh[HTTP_TLS_KEY_LEN];

	if (now - t->rotated_at < t->period)
		return;
	if (gnutls_rnd(GNUTLS_RND_KEY, fresh, sizeof(fresh)) != 0)
		return;
	if (now - t->rotated_at < 2 * t->period) {
		memcpy(t->prev, t->cur, sizeof(t->prev));
		t->have_prev = 1;
		t->rotated_at += t->period;
	} else {
		gnutls_memset(t->prev, 0, sizeof(t->prev));
		t->have_prev = 0;
		t->rotated_at = now;
	}
	memcpy(t->cur, fresh, sizeof(t->cur));
	gnutls_memset(fresh, 0, sizeof(fresh));
}

/* The name GnuTLS gives the tickets it seals under key at time now
 * (lib/stek.c: totp_sha3()). */
static int http_tls_name(const struct http_tls *t, const unsigned char key[HTTP_TLS_KEY_LEN],
                         time_t now, unsigned char name[HTTP_TLS_NAME_LEN])
{
	unsigned char in[8 + HTTP_TLS_KEY_LEN], out[64];
	uint64_t w = (uint64_t)now / ((uint64_t)http_tls_lifetime(t) * HTTP_TLS_GNUTLS_WINDOW);
	int rc;

	for (int i = 7; i >= 0; i--, w >>= 8)
		in[i] = (unsigned char)(w & 0xff);
	memcpy(in + 8, key, HTTP_TLS_KEY_LEN);
	rc = gnutls_hash_fast(GNUTLS_DIG_SHA3_512, in, sizeof(in), out);
	memcpy(name, out, HTTP_TLS_NAME_LEN);
	gnutls_memset(in, 0, sizeof(in));
	gnutls_memset(out, 0, sizeof(out));
	return rc == 0 ? 0 : -1;
}

int http_tls_hello_names(const unsigned char *hello, size_t len,
                         const unsigned char name[HTTP_TLS_NAME_LEN])
{
	return hello != NULL && memmem(hello, len, name, HTTP_TLS_NAME_LEN) != NULL;
}

int http_tls_choose(struct http_tls *t, void *gnutls_session, const unsigned char *hello,
                    size_t len)
{
	unsigned char key[HTTP_TLS_KEY_LEN], name[HTTP_TLS_NAME_LEN];
	gnutls_datum_t k = {key, sizeof(key)};
	time_t now = time(NULL); /* GnuTLS's window follows the real clock */
	int rc;

	pthread_mutex_lock(&t->mu);
	http_tls_rotate(t, t->clock_fn(NULL));
	memcpy(key, t->cur, sizeof(key));
	/* A ticket is looked for only among the bytes of a ClientHello long enough to hold
	 * one; the previous key's name costs one SHA3 per hello with a ticket-sized tail. */
	if (t->have_prev && len > HTTP_TLS_NAME_LEN && http_tls_name(t, t->prev, now, name) == 0 &&
	    http_tls_hello_names(hello, len, name))
		memcpy(key, t->prev, sizeof(key));
	pthread_mutex_unlock(&t->mu);
	gnutls_db_set_cache_expiration(gnutls_session, (int)http_tls_lifetime(t));
	rc = gnutls_session_ticket_enable_server(gnutls_session, &k);
	gnutls_memset(key, 0, sizeof(key));
	return rc == 0 ? 0 : -1;
}
