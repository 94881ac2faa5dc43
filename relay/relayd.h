/*
 * relayd.h - the relay daemon's own state, shared by main.c, server.c,
 * conn.c, inbound.c, outbound.c, txn.c, auth.c and scheduler.c (the modules helpers wrote see only
 * relay.h).  Everything here is touched on the event loop's thread only,
 * except what is marked.
 */
#ifndef ANCHOR_RELAYD_H
#define ANCHOR_RELAYD_H

#include <openssl/ssl.h>

#include "http/metrics.h"
#include "relay.h"
#include "mail/smtp.h"

struct event;
struct evconnlistener;
struct discover_ctx;
struct relay_control;
struct ttlcache;

enum relayd_side { RELAYD_INBOUND = 0, RELAYD_SUBMISSION };

#define RELAYD_IP_BUCKETS 1024
#define RELAYD_RCPT_ANSWERS 1024 /* recipients whose next-hop answer is kept */
#define RELAYD_HOST_ADDRS 256    /* delivery hosts whose address is kept */

struct relayd_ipcount {
	char ip[64];
	unsigned n;
	struct relayd_ipcount *next;
};

struct relayd_users;

struct relayd_stats {
	unsigned long long accepted, refused, connections, delivered, deferred, failed, bounced;
};

struct relayd {
	const struct relay_settings *s;
	struct event_base *base;
	struct relay_pool *pool;   /* session work: verification, signing, lookups */
	struct relay_pool *dpool;  /* deliveries */
	SSL_CTX *tls;              /* STARTTLS, NULL without a certificate */
	struct metrics_tls tls_hs; /* STARTTLS handshakes, for the control API's /metrics */
	/* thread-safe: */
	struct queue *qin, *qout;
	struct relay_signer_client *signer;
	struct relay_verifier *verifier;
	struct relay_rep *rep;
	struct relay_lists *lists;
	struct relay_pow *pow;
	struct discover_ctx *discover;
	struct resolve_ctx *resolve;
	struct relay_hop inbound_hop;
	struct relayd_users *users;    /* auth.c: submission_users, NULL unless submission_auth */
	struct ttlcache *rcpt_answers; /* inbound.c: the next hop's answers, verify_cache_ttl */
	struct ttlcache *host_addrs;   /* relay_route: delivery hosts' addresses */
	struct relay_defer *defer;     /* defer.c: messages held for a decision (ANCHOR-DEFER) */

	struct evconnlistener *lin, *lsub;
	int port_in, port_sub;
	struct relay_control *control;
	unsigned nconns;
	struct relayd_conn *conns; /* every live connection, for the shutdown */
	struct relayd_ipcount *ips[RELAYD_IP_BUCKETS];
	struct event *sched_ev; /* the scheduler's timer, also activated to kick it */
	struct event *held_ev;  /* held_sweep.c: held copies past their time are deleted */
	unsigned deliveries;    /* delivery jobs in flight */
	int stopping;
	struct relayd_stats st;
};

/* server.c: the listeners (inbound, submission), the limits at accept, the TLS context */
int relayd_listen(struct relayd *d, struct err *e);
void relayd_listen_stop(struct relayd *d);
/* The STARTTLS context under the TLS policy (pki/tls_policy.h); its handshakes are
 * counted in hs.  NULL without a certificate, or on an error (e set). */
SSL_CTX *relayd_tls_server_ctx(const struct relay_settings *s, struct metrics_tls *hs,
                               struct err *e);

/*
 * A transaction's DSN parameters (RFC 3461), kept beside the recipients: MAIL's RET and
 * ENVID, each accepted recipient's NOTIFY and ORCPT, and those of the RCPT being
 * decided (next_*), which relayd_txn_add_rcpt() takes over.
 */
struct relayd_txn_dsn {
	enum dsn_ret ret;
	char envid[DSN_ENVID_MAX + 1]; /* "" none */
	unsigned *notify;              /* one per recipient */
	char **orcpt;                  /* one per recipient, NULL entries: none */
	unsigned next_notify;
	char next_orcpt[DSN_ORCPT_MAX + 1];
};

/*
 * One SMTP connection.  The pipelines keep a reference while a worker uses
 * it (refs); a connection whose client went away is only marked dead and is
 * freed when the last reference drops.
 */
struct relayd_conn {
	struct relayd *d;
	enum relayd_side side;
	struct bufferevent *bev;
	struct smtp_session *smtp;
	char ip[64];
	char helo[SMTP_LINE_MAX];
	int refs;
	int dead;
	int tls;                /* STARTTLS completed */
	char peer[64];          /* the anchored peer its client certificate names, or "" */
	struct event *close_ev; /* waiting for the last reply to leave */
	struct relayd_conn *prev, *next;
	int closing_checks;
	/* the transaction */
	char *sender;
	char **rcpts;
	size_t nrcpt;
	int requiretls;            /* MAIL ... REQUIRETLS: queued with QUEUE_F_REQUIRETLS */
	struct relayd_txn_dsn dsn; /* RFC 3461 parameters (txn_dsn.c) */
	int partial_view;          /* ANCHOR-PARTIAL: the view asked for (enum mail_view), 0 none */
	/* reputation at connect/HELO */
	struct relay_rep_answer rep;
	int rep_known;    /* the service answered */
	unsigned long id; /* for the logs */
};

/* conn.c: a connection's lifetime, its I/O and its envelope */
/* A session on an accepted socket with the given side's callbacks; NULL (fd closed) when
 * out of memory.  The caller greets it. */
struct relayd_conn *relayd_conn_new(struct relayd *d, enum relayd_side side, int fd, const char *ip,
                                    const struct smtp_callbacks *callbacks);
void relayd_conn_ref(struct relayd_conn *c);
void relayd_conn_unref(struct relayd_conn *c);
/* Drop every connection (at shutdown); ones a worker still uses go when it is done. */
void relayd_conns_close(struct relayd *d);
/* One more inbound connection from ip: -1 (nothing counted) when it is over
 * max_connections_per_ip or out of memory.  The connection's end releases it. */
int relayd_ip_claim(struct relayd *d, const char *ip);
void relayd_ip_release(struct relayd *d, const char *ip);
/* Greet (r NULL) or refuse an inbound client once its connect-time check is done. */
void relayd_conn_greet(struct relayd_conn *c, const struct smtp_reply *r);
/* Answer the session's pending decision and resume reading. */
void relayd_conn_decide(struct relayd_conn *c, const struct smtp_reply *r);
/* The same, with data sent after a 2xx reply (a FETCHed message). */
void relayd_conn_decide_data(struct relayd_conn *c, const struct smtp_reply *r, const char *data,
                             size_t len);
void relayd_reply_set(struct smtp_reply *r, int code, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The connection's envelope (sender, recipients), emptied between transactions. */
void relayd_txn_reset(struct relayd_conn *c);
int relayd_txn_add_rcpt(struct relayd_conn *c, const char *rcpt);
/* dsn_notice.c: reports to the sender (RFC 3464).  relayd_dsn_report: the recipients
 * idx[n] of m whose NOTIFY wants this action, queued durably (0, or -1 to try again);
 * relayd_dsn_notices: the delay and success notices an attempt's results res[n] (for the
 * recipients idx[n]) call for, best effort; lmtp: the hop was a final LMTP delivery. */
int relayd_dsn_report(struct relayd *d, const struct queue_msg *m, const char *body, size_t len,
                      const size_t *idx, size_t n, enum relay_dsn_action action);
void relayd_dsn_notices(struct relayd *d, const struct queue_msg *m, const char *body, size_t len,
                        const size_t *idx, const struct relay_rcpt_result *res, size_t n, int lmtp);
/* txn_dsn.c: MAIL's DSN parameters, and those of the RCPT being decided (before
 * relayd_txn_add_rcpt); the recipients' parameters grown with the list (-1 out of memory),
 * all freed by the reset; the queue's view of them. */
void relayd_txn_dsn_mail(struct relayd_conn *c, const struct smtp_command *cmd);
void relayd_txn_dsn_rcpt(struct relayd_conn *c, const struct smtp_command *cmd);
int relayd_txn_dsn_add(struct relayd_conn *c, size_t nrcpt);
void relayd_txn_dsn_reset(struct relayd_conn *c);

/* inbound.c: the message without the fields a sender may not set (our
 * Authentication-Results, our tier header, Anchor-Partial), malloc'd; our Received and
 * Authentication-Results fields for a message of c. */
char *relayd_strip_our_fields(const char *m, size_t len, const char *authserv, const char *tierh,
                              size_t *outlen);
char *relayd_trace_fields(struct relayd_conn *c, const struct relay_auth *a);

/* inbound.c / outbound.c: the callbacks of each side's sessions. */
extern const struct smtp_callbacks relayd_inbound_callbacks;
extern const struct smtp_callbacks relayd_submission_callbacks;
/* Connect-time reputation check; greets when done. */
void relayd_inbound_connected(struct relayd_conn *c);

/*
 * Queue a message (a batch of one or more parts, each its own envelope) and
 * answer the session once every part is durable: 250 with the ids, or 451
 * and none of them kept.  Called on a worker; takes ownership of nothing.
 */
struct relayd_part {
	const char *sender;
	const char *const *rcpts;
	size_t nrcpt;
	const char *head; /* fields to prepend (CRLF-terminated), may be "" */
	const char *body; /* the message as received */
	size_t len;
	const unsigned *notify;   /* DSN NOTIFY per recipient, NULL none (RFC 3461) */
	const char *const *orcpt; /* DSN ORCPT per recipient, NULL none */
};
int relayd_queue_parts(struct relayd_conn *c, struct queue *q, const struct relayd_part *parts,
                       size_t nparts, struct err *e);

/*
 * The end of DATA on either side: work(job) runs on the pool with the
 * session's message (valid until the session is answered).  It either hands
 * the message to relayd_queue_parts (and sets queued: the commit answers) or
 * leaves its answer in r.
 */
struct relayd_msg_job {
	struct relayd_conn *c;
	const char *msg;
	size_t len;
	int queued;
	struct smtp_reply r;
};

/* An on_data callback's body: SMTP_PENDING, or SMTP_DECIDED with *r a 451. */
int relayd_msg_job_start(struct relayd_conn *c, const char *msg, size_t len, relay_work_fn work,
                         struct smtp_reply *r);

/*
 * auth.c: SMTP AUTH on the submission side (submission_auth = required).
 * The table of submission_users ("address:crypt-hash" lines, '#' comments) is
 * refused when group or others may access the file; it is re-read when the
 * file changes.  Loaded into d->users by relayd_auth_start() (before the
 * listeners), freed by relayd_auth_stop().
 */
int relayd_auth_start(struct relayd *d, struct err *e);
void relayd_auth_stop(struct relayd *d);
struct relayd_users *relayd_users_load(const char *path, struct err *e);
void relayd_users_free(struct relayd_users *u);
size_t relayd_users_count(const struct relayd_users *u);
/* 1 when address (any case) is an unlocked user of u and pass its password; a miss costs
 * one crypt like a hit.  Thread-safe on a table nobody changes meanwhile. */
int relayd_users_check(const struct relayd_users *u, const char *address, const char *pass);
/* 1 when crypt(3) of pass under hash gives hash (constant-time compare).  Thread-safe. */
int relayd_auth_verify(const char *hash, const char *pass);
/* The submission sessions' on_auth: the crypt runs on the pool (SMTP_PENDING). */
int relayd_auth_on_auth(void *ctx, struct smtp_session *s, const char *mech, const char *user,
                        const char *pass, struct smtp_reply *r);
/* The connection's authenticated address, NULL without AUTH. */
const char *relayd_auth_user(const struct relayd_conn *c);
/* 1 when address (not empty) is the authenticated address, in any case. */
int relayd_auth_owns(const struct relayd_conn *c, const char *address);

/* scheduler.c */
int relayd_scheduler_start(struct relayd *d, struct err *e);
void relayd_scheduler_kick(struct relayd *d);
void relayd_scheduler_stop(struct relayd *d);

/* "Sat, 23 Nov 2026 15:43:05 +0000" */
void relayd_rfc5322_date(time_t t, char *out, size_t size);

/* gateway_decrypt.c: the message decrypted by the signer when every recipient is of one
 * domain with gateway_decrypt_keys and it is S/MIME enveloped data (malloc'd, with its
 * X-Anchor-Decrypted field, or marked "failed" and otherwise as it came); NULL when
 * nothing applies or out of memory: queue it as it is (PROTOCOL.md §12.11). */
char *relayd_gateway_decrypt(struct relayd_conn *c, const char *msg, size_t len, size_t *outlen);
#define RELAYD_DECRYPTED_FIELD "X-Anchor-Decrypted"

#endif
