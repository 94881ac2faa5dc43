/*
 * policyd.h - anchor-policyd, a Postfix SMTPD_POLICY delegation server that
 * asks anchor-reputation about the SMTP client (see anchor-policyd(8)).
 *
 *   main.c      arguments, settings, signals, the event loop
 *   settings.c  the one table of parameters and its checks
 *   request.c   the policy protocol: attribute lines -> struct policy_request
 *   action.c    a verdict (or a failure) -> the "action=" line, per the settings
 *   cache.c     verdicts kept for cache_ttl, bounded
 *   client.c    the HTTPS query to anchor-reputation (libcurl multi on libevent)
 *   server.c    listening socket, connections, one request at a time per connection
 *
 * Everything runs on one libevent loop in one thread: no locks.
 */
#ifndef POLICYD_H
#define POLICYD_H

#include <stddef.h>
#include <time.h>

#include "core/conf.h"
#include "core/err.h"

/* ------------------------------------------------------------------ settings */

enum policy_act {
	POLICY_DUNNO = 0,
	POLICY_OK,
	POLICY_REJECT,
	POLICY_DEFER,
	POLICY_DEFER_IF_PERMIT,
	POLICY_PREPEND,
};

struct policy_settings {
	char *listen;                     /* "127.0.0.1:10040", "[::1]:10040" or "unix:/path" */
	char *reputation_url;             /* https://host:port of anchor-reputation */
	char *cacert;                     /* CA bundle for its certificate; unset: the system's */
	long long timeout_ms;             /* per query */
	long long reputation_connections; /* open to anchor-reputation at once; more queue */
	long long cache_ttl;              /* seconds a verdict is reused; 0: no cache */
	long long cache_size;             /* entries */
	long long backoff;                /* seconds without queries after a failure */
	char *on_error;                   /* dunno | defer_if_permit | defer | reject */
	char *block_action;               /* reject | defer | defer_if_permit | prepend | dunno */
	char *unknown_action;             /* dunno | prepend */
	char *known_action;               /* dunno | prepend | ok */
	char *trusted_action;             /* dunno | prepend | ok */
	char *header_name;                /* for prepend */
	int query_helo;                   /* send helo_name (the service checks CSA) */
	int query_sender_domain;
	long long max_line;  /* octets; a longer line closes the connection */
	long long max_attrs; /* attributes in one request */
	long long max_connections;
	long long idle_timeout; /* seconds a connection may stay silent */
	char *log_level;
	int syslog;
};

extern const struct conf_param policy_settings_table[];

/* The parsed action names (from the strings above). */
struct policy_actions {
	enum policy_act on_error, block, unknown, known, trusted;
};

int policy_act_parse(const char *name, enum policy_act *out);
const char *policy_act_name(enum policy_act a);
int policy_settings_check(const struct policy_settings *s, struct policy_actions *a, struct err *e);

/* ------------------------------------------------------------------ the protocol */

#define POLICY_VALUE_MAX 512
#define POLICY_DOMAIN_MAX 256

/*
 * helo_name, sender and recipient are the SMTP client's own text: a value too long for
 * its field is cut (and flagged), never a malformed request, because a malformed
 * request is answered DUNNO and a client must not choose that for itself.  A HELO cut
 * at 511 octets is still longer than any host name, so it stays unusable.
 */
struct policy_request {
	char request[32]; /* must be "smtpd_access_policy" */
	char protocol_state[24];
	char client_address[64];
	char helo_name[POLICY_VALUE_MAX];      /* cut at 511 octets (helo_cut) */
	char sender[POLICY_VALUE_MAX];         /* for the log only; cut */
	char sender_domain[POLICY_DOMAIN_MAX]; /* after the sender's last '@', as sent */
	char recipient[POLICY_VALUE_MAX];      /* cut */
	char queue_id[64];
	char instance[64];
	int helo_cut, sender_cut, sender_domain_cut, recipient_cut;
	int nattrs;
	int bad;       /* the request is malformed: answered DUNNO, logged */
	char why[160]; /* why, for the log */
};

void policy_request_reset(struct policy_request *r);

/*
 * Feed one line (without its "\n"; a trailing "\r" is tolerated) of a
 * request.  Returns 1 at the empty line that ends the request, 0 otherwise.
 * A malformed line marks the request bad (the first reason is kept) but the
 * request still runs to its empty line, as the protocol requires.
 */
int policy_request_line(struct policy_request *r, const char *line, size_t len, int max_attrs);

/* After the empty line: the request must be smtpd_access_policy with a client address. */
int policy_request_check(const struct policy_request *r, struct err *e);

/*
 * The sender's domain in the form anchor-reputation takes (lowercase, no trailing
 * dot: name_canon_domain) into out: 0, out "" for the null sender or no '@'; -1 (out
 * "", why says it) when the domain is not a host name (an address literal, one label,
 * a U-label, over-long, ...): it names no subject the service could know, so it is
 * left out of the query and the rest is judged.
 */
int policy_sender_domain(const struct policy_request *r, char *out, size_t size, struct err *why);

/*
 * The HELO as the query carries it: the client's text unchanged, except that octets
 * that are not UTF-8 and control characters become '?', so that the service can
 * always read the argument.  Neither ever belongs to a host name or an address
 * literal, so the service's classification (csa_helo_classify) is unchanged by it.
 */
void policy_helo_for_query(const char *helo, char *out, size_t size);

/* ------------------------------------------------------------------ answers */

struct policy_verdict {
	char verdict[16]; /* trusted | known | unknown | block */
	char reason[256]; /* the first reason's text, or "" */
	char note[300];   /* set when the service refused the full query and this verdict
	                     is about the client address alone: what it refused, and why */
};

/*
 * The response line "action=...\n\n" for a verdict (v) or a failure (v NULL,
 * why says what failed), into out.  Text from the service is reduced to one
 * line of printable ASCII.
 */
void policy_action_line(const struct policy_actions *a, const char *header_name,
                        const struct policy_verdict *v, const char *why, char *out, size_t size);

/* Read the service's JSON answer (GET /v1/query) into *v; ERR_UNPROC bad_answer. */
int policy_verdict_from_json(const char *body, size_t len, struct policy_verdict *v, struct err *e);

/* ------------------------------------------------------------------ cache */

struct policy_cache;

struct policy_cache *policy_cache_new(size_t size, long long ttl);
void policy_cache_free(struct policy_cache *c);
int policy_cache_get(struct policy_cache *c, const char *key, time_t now, struct policy_verdict *v);
void policy_cache_put(struct policy_cache *c, const char *key, time_t now,
                      const struct policy_verdict *v);
unsigned long policy_cache_hits(const struct policy_cache *c);

/* ------------------------------------------------------------------ the daemon */

struct event_base;
struct policy_client;

/* Called once per query, on the loop: v NULL on failure (e says why). */
typedef void (*policy_done_fn)(void *arg, const struct policy_verdict *v, const struct err *e);

struct policy_client *policy_client_new(struct event_base *base, const struct policy_settings *s,
                                        struct err *e);
void policy_client_free(struct policy_client *c);
/* GET <url>/v1/query?ip=..[&helo=..][&domain=..]; done is called exactly once. */
int policy_client_query(struct policy_client *c, const char *ip, const char *helo,
                        const char *domain, policy_done_fn done, void *arg, struct err *e);
/* Abandon the query whose callback argument is arg (its connection went away). */
void policy_client_cancel(struct policy_client *c, void *arg);

struct policy_server;

struct policy_server *policy_server_start(struct event_base *base, const struct policy_settings *s,
                                          const struct policy_actions *a,
                                          struct policy_client *client, struct err *e);
void policy_server_free(struct policy_server *srv);
/* The TCP port bound (0 for a Unix socket). */
int policy_server_port(const struct policy_server *srv);

#endif
