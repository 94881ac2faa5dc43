/*
 * rep_priv.h - what the relay's reputation client shares between its files:
 *   reputation.c  set-up and teardown (the idle handles too), the service's error answers
 *   rep_query.c   verdicts on connecting clients: pooled GETs and their cache
 *   rep_report.c  complaints turned into signed reports, POSTed by lib/http's client
 *   rep_trace.c   the relay's own trace fields of a message (the report's subjects)
 */
#ifndef RELAY_REP_PRIV_H
#define RELAY_REP_PRIV_H

#include <pthread.h>
#include <time.h>

#include "relay.h"
#include "http/https_client.h"

#define REP_POOL_MAX 8 /* idle easy handles kept */

struct ttlcache;

struct relay_rep {
	int enabled;
	char *url; /* without a trailing '/' */
	char *cacert;
	long timeout_ms;
	long long cache_ttl;
	char *reporter;
	char *hostname;
	char *authserv_id;
	char *own_networks;  /* our servers (relay_netlist), skipped by the source walk */
	char *own_hosts;     /* our other servers' names */
	char *local_domains; /* ours too: never reported */

	struct ttlcache *cache;   /* struct relay_rep_answer by ip, HELO and domain */
	pthread_mutex_t lock;     /* guards everything below */
	void *idle[REP_POOL_MAX]; /* CURL * kept with their connections (rep_query.c) */
	int nidle;
	time_t down_until;
	long long backoff;
	relay_rep_sign_fn sign_fn;
	void *sign_arg;
};

/* The options of every request to the service: its CA, the timeout, our user agent. */
struct https_opts rep_https_opts(const struct relay_rep *r);
/* The error of a non-2xx answer: the service's own {"error", "message"} when it sent one,
 * its kind from the status (429 and 5xx temporary).  Always -1. */
int rep_error_from_answer(long status, const char *body, size_t len, struct err *e);

#endif
