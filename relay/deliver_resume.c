/*
 * deliver_resume.c - outbound TLS session resumption.  Every delivery is its
 * own connection, and a full handshake per message is most of the cost of
 * relaying over TLS; a resumed one skips the certificate and the signature.
 *
 * The cache: RESUME_SLOTS sessions, at most RESUME_PER_KEY per key, the oldest
 * replaced first, each dropped once past its own timeout (for TLS 1.3 the
 * ticket's lifetime hint).  The key is host, port, tls_name and pin
 * (relay_resume_key): a session is only ever offered to the destination it
 * came from, verified the same way.  The peer check of deliver_conn.c runs
 * after a resumed handshake too (on the certificates the session recorded),
 * and a failed check forgets the key's sessions.  Sessions are captured by the
 * SSL_CTX's new-session callback, which is how TLS 1.3 tickets arrive (after
 * the handshake, read with the first reply).  A TLS 1.3 ticket is used once
 * (RFC 8446 §C.4: no linkable reuse); a TLS 1.2 session stays until it expires.
 * Worker threads share the cache under one mutex; the critical sections are a
 * scan of the slots, no I/O.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include "deliver_resume.h"

#define RESUME_SLOTS 128
#define RESUME_PER_KEY 4

struct resume_slot {
	char key[RELAY_RESUME_KEY_MAX];
	SSL_SESSION *sess; /* NULL: free */
	unsigned long long seq;
};

static pthread_mutex_t resume_mu = PTHREAD_MUTEX_INITIALIZER;
static struct resume_slot resume_slots[RESUME_SLOTS];
static unsigned long long resume_seq;
static atomic_ullong resume_hits;
static int resume_idx = -1; /* ex_data index: the key of an SSL, strdup'd */

static void key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

static int slot_expired(const struct resume_slot *s, time_t now)
{
	return (time_t)(SSL_SESSION_get_time(s->sess) + SSL_SESSION_get_timeout(s->sess)) <= now;
}

static void slot_clear(struct resume_slot *s)
{
	SSL_SESSION_free(s->sess);
	s->sess = NULL;
	s->key[0] = '\0';
}

/* Under resume_mu: the slot a new session for key goes into. */
static struct resume_slot *slot_for(const char *key, time_t now)
{
	struct resume_slot *free_slot = NULL, *oldest = NULL, *oldest_of_key = NULL;
	int of_key = 0;

	for (int i = 0; i < RESUME_SLOTS; i++) {
		struct resume_slot *s = &resume_slots[i];
		if (s->sess != NULL && slot_expired(s, now))
			slot_clear(s);
		if (s->sess == NULL) {
			if (free_slot == NULL)
				free_slot = s;
			continue;
		}
		if (oldest == NULL || s->seq < oldest->seq)
			oldest = s;
		if (strcmp(s->key, key) == 0) {
			of_key++;
			if (oldest_of_key == NULL || s->seq < oldest_of_key->seq)
				oldest_of_key = s;
		}
	}
	if (of_key >= RESUME_PER_KEY)
		return oldest_of_key;
	return free_slot != NULL ? free_slot : oldest;
}

/* SSL_CTX_sess_set_new_cb: 0, the cache takes its own reference. */
static int resume_new_session(SSL *ssl, SSL_SESSION *sess)
{
	const char *key = SSL_get_ex_data(ssl, resume_idx);
	struct resume_slot *s;

	if (key == NULL || !SSL_SESSION_is_resumable(sess) || SSL_SESSION_up_ref(sess) != 1)
		return 0;
	pthread_mutex_lock(&resume_mu);
	s = slot_for(key, time(NULL));
	if (s->sess != NULL)
		SSL_SESSION_free(s->sess);
	s->sess = sess;
	s->seq = ++resume_seq;
	snprintf(s->key, sizeof(s->key), "%s", key);
	pthread_mutex_unlock(&resume_mu);
	return 0;
}

void relay_resume_attach(SSL_CTX *ctx)
{
	if (resume_idx < 0)
		resume_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, key_free);
	/* the client cache is ours: OpenSSL's internal store is keyed by nothing we can use */
	SSL_CTX_set_session_cache_mode(ctx,
	                               SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, resume_new_session);
}

void relay_resume_key(const struct relay_hop *hop, char *key, size_t len)
{
	snprintf(key, len, "%s %s %u %s %s", hop->unix_socket ? "unix" : "tcp", hop->host,
	         (unsigned)hop->port, hop->tls_name, hop->pin);
}

/* Under resume_mu: the newest live session for key, taken (TLS 1.3) or shared. */
static SSL_SESSION *resume_get(const char *key, time_t now)
{
	struct resume_slot *best = NULL;
	SSL_SESSION *sess;

	for (int i = 0; i < RESUME_SLOTS; i++) {
		struct resume_slot *s = &resume_slots[i];
		if (s->sess == NULL || strcmp(s->key, key) != 0)
			continue;
		/* not resumable: OpenSSL marks a session so when its connection ended badly */
		if (slot_expired(s, now) || !SSL_SESSION_is_resumable(s->sess))
			slot_clear(s);
		else if (best == NULL || s->seq > best->seq)
			best = s;
	}
	if (best == NULL)
		return NULL;
	sess = best->sess;
	if (SSL_SESSION_get_protocol_version(sess) >= TLS1_3_VERSION) {
		best->sess = NULL; /* single use */
		best->key[0] = '\0';
	} else if (SSL_SESSION_up_ref(sess) != 1) {
		return NULL;
	}
	return sess;
}

int relay_resume_prepare(SSL *ssl, const char *key)
{
	char *mine = strdup(key);
	SSL_SESSION *sess;

	if (mine == NULL || resume_idx < 0 || SSL_set_ex_data(ssl, resume_idx, mine) != 1) {
		free(mine);
		return -1;
	}
	pthread_mutex_lock(&resume_mu);
	sess = resume_get(key, time(NULL));
	pthread_mutex_unlock(&resume_mu);
	if (sess != NULL) {
		/* a session that cannot be set is only a full handshake */
		(void)SSL_set_session(ssl, sess);
		SSL_SESSION_free(sess);
	}
	return 0;
}

void relay_resume_done(SSL *ssl, const char *key, int ok)
{
	if (ok) {
		if (SSL_session_reused(ssl))
			atomic_fetch_add(&resume_hits, 1);
		return;
	}
	/* nothing more from this connection goes into the cache */
	free(SSL_get_ex_data(ssl, resume_idx));
	SSL_set_ex_data(ssl, resume_idx, NULL);
	pthread_mutex_lock(&resume_mu);
	for (int i = 0; i < RESUME_SLOTS; i++)
		if (resume_slots[i].sess != NULL && strcmp(resume_slots[i].key, key) == 0)
			slot_clear(&resume_slots[i]);
	pthread_mutex_unlock(&resume_mu);
}

unsigned long long relay_resume_count(void)
{
	return atomic_load(&resume_hits);
}
