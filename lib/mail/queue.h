/*
 * queue.h - the relay's durable message queue.
 *
 * A spool directory (mode 0700) holds one file per accepted message, named
 * "m.<id>": a line-based text header record (the envelope and the state of
 * each recipient) followed by the message bytes.  A file is written under a
 * temporary name "t.<id>", fsync'd, renamed into place and the directory
 * fsync'd; only then is the message committed and its submitter told so.
 *
 * Commits are grouped (Redis "appendfsync always", Postfix-style durability
 * before the reply): queue_submit() only enqueues; a commit thread, or the
 * caller through queue_commit_pending(), writes every pending message, syncs
 * the directory once for the whole batch and then calls each callback.  The
 * relay sends its "250" from that callback.
 *
 * queue_open() recovers: committed files are loaded with their recipient
 * state, leftover temporary files are removed, and files that do not parse
 * are moved to <spool>/corrupt/ and counted, never trusted.
 *
 * Thread safety: every function except queue_close() may be called from any
 * thread.  Callbacks run on the committing thread, without the queue's lock
 * held, so they may call queue functions (but not queue_close()).
 */
#ifndef ANCHOR_QUEUE_H
#define ANCHOR_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/err.h"
#include "mail/dsn.h"

#define QUEUE_ID_MAX 33          /* 32 hex digits + NUL */
#define QUEUE_MAX_RCPT 1000      /* recipients per message */
#define QUEUE_ADDR_MAX 512       /* bytes of one address */
#define QUEUE_REPLY_MAX 1000     /* bytes of one remembered reply */
#define QUEUE_HEADER_MAX 2000000 /* bytes of a header record (1000 full rcpts fit) */

enum queue_status {
	QUEUE_PENDING = 0, /* never tried */
	QUEUE_DELIVERED,   /* final */
	QUEUE_FAILED,      /* final: permanent failure or expired */
	QUEUE_DEFERRED,    /* temporary failure, retried at next_attempt */
};

struct queue_rcpt {
	char *addr;
	enum queue_status status;
	unsigned attempts;
	int64_t next_attempt; /* unix seconds; 0 when not deferred */
	char *reply;          /* last reply, "" when none; never NULL */
	unsigned dsn_notify;  /* RCPT ... NOTIFY (RFC 3461, DSN_NOTIFY_*); 0 not given */
	char *dsn_orcpt;      /* RCPT ... ORCPT as sent (addr-type;xtext); NULL not given */
};

/* The envelope of one message: what the header record holds. */
struct queue_msg {
	char id[QUEUE_ID_MAX];
	char *sender; /* "" for the null reverse-path */
	int64_t arrival;
	uint64_t size; /* bytes of the message */
	size_t nrcpt;
	struct queue_rcpt *rcpts;
	unsigned flags;       /* QUEUE_F_*; the record's optional "flags" line */
	enum dsn_ret dsn_ret; /* MAIL ... RET (RFC 3461) */
	char *dsn_envid;      /* MAIL ... ENVID as sent (xtext); NULL not given */
};

/* The DSN parameters (RFC 3461) of a message being submitted. */
struct queue_dsn {
	enum dsn_ret ret;
	const char *envid;        /* NULL: not given */
	const unsigned *notify;   /* one per recipient, or NULL: none given */
	const char *const *orcpt; /* one per recipient (NULL entries: not given), or NULL */
};

#define QUEUE_F_REQUIRETLS 1u /* MAIL FROM ... REQUIRETLS (RFC 8689): TLS all the way */

struct queue_opts {
	const char *dir;       /* spool directory, created 0700 if missing */
	int commit_thread;     /* 1: a thread commits; 0: call queue_commit_pending() */
	unsigned backoff_base; /* seconds before the first retry; default 60 */
	unsigned backoff_max;  /* cap of the doubling backoff; default 3600 */
	unsigned lifetime;     /* seconds before deferred becomes failed; default 5 days */
};

struct queue_stats {
	uint64_t submitted; /* queue_submit() calls accepted */
	uint64_t committed; /* messages whose callback reported success */
	uint64_t commit_failed;
	uint64_t batches;        /* commit rounds that wrote at least one message */
	uint64_t file_fsyncs;    /* fsync() of message files (commits and rewrites) */
	uint64_t dir_fsyncs;     /* fsync() of the spool directory */
	uint64_t recovered;      /* committed messages loaded by queue_open() */
	uint64_t tmp_removed;    /* temporary files removed by queue_open() */
	uint64_t corrupt;        /* files moved to corrupt/ */
	uint64_t write_failures; /* recipient states the spool could not take (ENOSPC...) */
	/* gauges */
	uint64_t paused; /* 1 while the spool cannot be written: no delivery is due */
	uint64_t held;   /* messages whose state is held in memory, not yet written */
};

/* One recipient due for a delivery attempt, or (expired) one just failed for having
 * outlived the lifetime: the daemon's cue to send a bounce.  addr is owned by the array. */
struct queue_due {
	char id[QUEUE_ID_MAX];
	size_t rcpt;
	char *addr;
	int expired;
};

struct queue;

/* ok is 1 when the message is committed (send 250), 0 when it is not (e says why). */
typedef void (*queue_commit_cb)(const char *id, int ok, const struct err *e, void *arg);

struct queue *queue_open(const struct queue_opts *opts, struct err *e);
/* Commits what is pending (callbacks run), stops the commit thread, frees. NULL is fine. */
void queue_close(struct queue *q);

/*
 * Enqueue one message.  The sender, recipients and body are copied.  On
 * success the message id is in id_out and cb will be called exactly once,
 * later, from the committing thread.  On failure (bad envelope, out of
 * memory) -1 is returned and cb is never called.
 */
int queue_submit(struct queue *q, const char *sender, const char *const *rcpts, size_t nrcpt,
                 const void *body, size_t len, queue_commit_cb cb, void *arg,
                 char id_out[QUEUE_ID_MAX], struct err *e);
/* The same with envelope flags (QUEUE_F_*), kept in the message's record. */
int queue_submit_flags(struct queue *q, unsigned flags, const char *sender,
                       const char *const *rcpts, size_t nrcpt, const void *body, size_t len,
                       queue_commit_cb cb, void *arg, char id_out[QUEUE_ID_MAX], struct err *e);

/* The same with DSN parameters (dsn NULL: none); ERR_INPUT when one is malformed. */
int queue_submit_dsn(struct queue *q, unsigned flags, const struct queue_dsn *dsn,
                     const char *sender, const char *const *rcpts, size_t nrcpt, const void *body,
                     size_t len, queue_commit_cb cb, void *arg, char id_out[QUEUE_ID_MAX],
                     struct err *e);

/*
 * Enqueue one message for one recipient under the given id (lowercase hex, shorter than
 * QUEUE_ID_MAX): an idempotent submission for a caller that recorded the id first (relay
 * defer.c's accept).  1 when a message with that id is already in the queue (cb is not
 * called); else as queue_submit.
 */
int queue_submit_as(struct queue *q, const char *id, const char *sender, const char *rcpt,
                    const void *body, size_t len, queue_commit_cb cb, void *arg, struct err *e);

/* Commit everything pending now, in the caller's thread; returns how many were committed
 * (successfully or not).  Harmless with a commit thread running. */
size_t queue_commit_pending(struct queue *q);

/*
 * Record the outcome of an attempt for recipient rcpt of message id, durably.
 * QUEUE_DEFERRED increments attempts and schedules the next attempt with the
 * backoff; a deferral past the lifetime becomes QUEUE_FAILED.  When every
 * recipient is final the message is removed (queue_done).
 *
 * When the spool cannot take the new state (a full disk), -1 is returned with
 * the write's error but the state is not lost: it is held in memory (the
 * backoff holds, a delivered recipient is not tried again), the queue pauses
 * (queue_next_due() returns nothing) and the held states are written by the
 * first queue_next_due() that can write them, which resumes the queue.  A
 * crash meanwhile loses only what was held: those recipients are tried again.
 */
int queue_mark(struct queue *q, const char *id, size_t rcpt, enum queue_status status,
               const char *reply, int64_t now, struct err *e);
/* The same with the next attempt of a deferral at next (unix seconds; 0: the backoff), for
 * a peer that said when to ask again (ANCHOR-DEFER's window). */
int queue_mark_at(struct queue *q, const char *id, size_t rcpt, enum queue_status status,
                  const char *reply, int64_t now, int64_t next, struct err *e);

/* Remove a message from the spool, whatever the state of its recipients. */
int queue_done(struct queue *q, const char *id, struct err *e);

/*
 * Recipients due at now: pending ones, and deferred ones whose next attempt
 * has come.  The unfinished recipients of a message past the lifetime are
 * failed instead (durably, with a final reply) and returned with expired = 1;
 * the message stays, every recipient final, until the caller has bounced it
 * and calls queue_done() (queue_final_ids() finds such messages after a
 * restart).  A recipient returned for delivery is not
 * returned again until it is marked or released (in this process: a
 * restart forgets it).  While the queue is paused (see queue_mark) it first
 * writes the held states; until that succeeds nothing is due and nothing
 * expires.  *out is freed with queue_due_free().
 */
int queue_next_due(struct queue *q, int64_t now, struct queue_due **out, size_t *n, struct err *e);
void queue_due_free(struct queue_due *due, size_t n);

/* Give back a recipient queue_next_due() returned, unattempted and unchanged (the queue
 * paused before its delivery began): it is due again at the next queue_next_due(). */
void queue_release(struct queue *q, const char *id, size_t rcpt);

/* 1 while the queue is paused because its spool cannot be written (see queue_mark). */
int queue_paused(struct queue *q);

/* The ids of messages whose recipients are all final (expired ones waiting for their
 * bounce); free with queue_ids_free. */
int queue_final_ids(struct queue *q, char ***ids, size_t *n, struct err *e);

/* Seconds to wait after the attempts'th failed attempt (attempts >= 1). */
unsigned queue_backoff(const struct queue *q, unsigned attempts);

/* A copy of a message's envelope (queue_msg_free) and its bytes (free). */
struct queue_msg *queue_msg_get(struct queue *q, const char *id, struct err *e);
int queue_body_read(struct queue *q, const char *id, char **body, size_t *len, struct err *e);

/* The ids of all queued messages, sorted; free each and the array with queue_ids_free. */
int queue_ids(struct queue *q, char ***ids, size_t *n, struct err *e);
void queue_ids_free(char **ids, size_t n);

void queue_stats_get(struct queue *q, struct queue_stats *out);

const char *queue_status_name(enum queue_status s);

/* The header record, exported for the fuzzer and the tests. */

/* Parse a spool file: the header record, then exactly m->size bytes of body starting at
 * *body_off.  Strict: any malformed, truncated or trailing data is an ERR_INPUT. */
struct queue_msg *queue_record_parse(const char *buf, size_t len, size_t *body_off, struct err *e);
/* The header record of m, malloc'd, NUL-terminated. */
char *queue_record_format(const struct queue_msg *m, size_t *len, struct err *e);
/* 1 when a is a valid address for a record (no control characters, spaces or '<>'). */
int queue_addr_valid(const char *a);
void queue_msg_free(struct queue_msg *m);
struct queue_msg *queue_msg_dup(const struct queue_msg *m);

#endif
