/*
 * acme_validator.c - ACME challenges validated off the request workers (RFC 8555 §7.5.1).
 *
 * A challenge POST marks its authorisation 'processing' and answers at once; the client
 * polls.  Here acme_validation_workers threads, each with its own database connection, claim
 * processing authorisations from the database (store_acme_queue.c) for a lease, validate them
 * (acme_validate.c: up to acme_validation_timeout of a black-holed host each) and record
 * valid or invalid with the problem.  The queue is bounded where jobs enter it (acme_authz.c:
 * per account and in all), so one client can hold at most its share of these threads and
 * never an HTTP worker.
 *
 * Durability: the job is the row.  A node that stops cleanly finishes what it claimed; one
 * that dies leaves a claim whose lease runs out, and any node's thread takes it again; after
 * ACME_VALIDATION_ATTEMPTS claims the authorisation is made invalid with serverInternal
 * instead, so none stays 'processing'.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acme.h"
#include "core/log.h"
#include "store.h"

#define ACME_IDLE_POLL_S 1 /* rows queued by other nodes or left by a dead one: polled */

struct acme_validators {
	struct ks *ks;
	pthread_t *threads;
	int n;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int queued; /* wakes not yet taken */
	atomic_int stop;
};

long long acme_validation_lease(const struct ks_settings *cfg)
{
	/* the fetch, two DNS queries (A, AAAA) of at most 3 s each, and slack for recording the
	 * outcome; a lease that runs out early only costs a second, harmless validation */
	long long dns = cfg->acme_validation_timeout < 3 ? cfg->acme_validation_timeout : 3;

	return cfg->acme_validation_timeout + 2 * dns + 2;
}

/* Validate the claimed job and record the outcome; errors are logged here. */
static void run_job(struct acme_validators *v, struct db *db, const struct acme_job *j)
{
	char key_auth[ACME_TOKEN_LEN + JWK_THUMBPRINT_LEN + 1];
	struct err why = {0}, e = {0};
	int ok = 0;

	if (j->attempts > ACME_VALIDATION_ATTEMPTS)
		err_set(
		    &why, ERR_INTERNAL, "serverInternal",
		    "the validation was interrupted %d times (the key server stopped during it);"
		    " place a new order",
		    j->attempts - 1);
	else {
		snprintf(key_auth, sizeof(key_auth), "%s.%s", j->token, j->thumbprint);
		ok = acme_validate(&v->ks->cfg, j->type, j->name, j->token, key_auth, &why) == 0;
	}
	if (ok)
		log_info(NULL, "acme: %s of %s valid (order %s)", j->type, j->name, j->order_id);
	else
		log_info(NULL, "acme: %s of %s failed (order %s): %s: %s", j->type, j->name,
		         j->order_id, why.code, why.msg);
	/* A failure to record leaves the claim to run out: the job is then retried. */
	if (ks_store_acme_order_validated(db, j->order_id, ok, ok ? NULL : why.code,
	                                  ok ? NULL : why.msg, &e) < 0)
		log_err(NULL, "acme: cannot record the validation of order %s: %s", j->order_id,
		        e.msg);
}

/* Sleep until woken or ACME_IDLE_POLL_S has passed. */
static void idle(struct acme_validators *v)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ACME_IDLE_POLL_S;
	pthread_mutex_lock(&v->mu);
	while (v->queued == 0 && !atomic_load(&v->stop))
		if (pthread_cond_timedwait(&v->cv, &v->mu, &until) == ETIMEDOUT)
			break;
	if (v->queued > 0)
		v->queued--;
	pthread_mutex_unlock(&v->mu);
}

static void *validator_main(void *arg)
{
	struct acme_validators *v = arg;
	long long lease = acme_validation_lease(&v->ks->cfg);
	struct db *db = NULL;
	struct err e = {0};
	int warned = 0;

	while (!atomic_load(&v->stop)) {
		struct acme_job j;
		int n;

		if (db == NULL && (db = db_connect(v->ks->cfg.db_conninfo, &e)) == NULL) {
			if (!warned++)
				log_warn(NULL, "acme: validation thread without database: %s",
				         e.msg);
			idle(v);
			continue;
		}
		warned = 0;
		n = ks_store_acme_validation_claim(db, lease, &j, &e);
		if (n < 0) {
			log_warn(NULL, "acme: cannot claim a validation: %s", e.msg);
			db_close(db);
			db = NULL;
		}
		if (n == 1)
			run_job(v, db, &j);
		else
			idle(v);
	}
	db_close(db);
	return NULL;
}

void acme_validators_wake(struct acme_validators *v)
{
	if (v == NULL)
		return;
	pthread_mutex_lock(&v->mu);
	if (v->queued < v->n)
		v->queued++;
	pthread_cond_signal(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

struct acme_validators *acme_validators_start(struct ks *ks, struct err *e)
{
	struct acme_validators *v = calloc(1, sizeof(*v));
	int want = (int)ks->cfg.acme_validation_workers;

	if (v == NULL || (v->threads = calloc((size_t)want, sizeof(*v->threads))) == NULL) {
		free(v);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	v->ks = ks;
	pthread_mutex_init(&v->mu, NULL);
	pthread_cond_init(&v->cv, NULL);
	for (; v->n < want; v->n++)
		if (pthread_create(&v->threads[v->n], NULL, validator_main, v) != 0) {
			acme_validators_stop(v);
			err_set(e, ERR_INTERNAL, "internal",
			        "cannot start the ACME validation threads");
			return NULL;
		}
	return v;
}

void acme_validators_stop(struct acme_validators *v)
{
	if (v == NULL)
		return;
	pthread_mutex_lock(&v->mu);
	atomic_store(&v->stop, 1);
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
	for (int i = 0; i < v->n; i++)
		pthread_join(v->threads[i], NULL);
	pthread_mutex_destroy(&v->mu);
	pthread_cond_destroy(&v->cv);
	free(v->threads);
	free(v);
}
