/*
 * queue_priv.h - what queue_store.c and queue_commit.c share; not an interface.
 *
 * queue_store.c owns the spool (files, recovery, the index) and uses nothing of
 * queue_commit.c; queue_commit.c accepts and commits messages and owns the queue's
 * lifetime (queue_open, queue_close), which starts and stops its commit thread.
 */
#ifndef ANCHOR_QUEUE_PRIV_H
#define ANCHOR_QUEUE_PRIV_H

#include <pthread.h>
#include <stdio.h>

#include "mail/queue.h"

/* What of an entry the spool has not taken yet (the spool could not be written). */
enum queue_held {
	QUEUE_HELD_NONE = 0,
	QUEUE_HELD_REWRITE, /* m is newer than m.<id> */
	QUEUE_HELD_REMOVE,  /* every recipient final: m.<id> is to go */
};

/* A committed message: its envelope, and which recipients are out for delivery. */
struct queue_entry {
	struct queue_msg *m;
	unsigned char *busy; /* nrcpt flags, in memory only */
	enum queue_held held;
};

/* A submitted message waiting for the next commit. */
struct queue_job {
	char id[QUEUE_ID_MAX];
	struct queue_msg *m; /* NULL once the index owns it */
	char *body;
	size_t len;
	queue_commit_cb cb;
	void *arg;
	int ok;
	struct err e;
	struct queue_job *next;
};

struct queue {
	struct queue_opts opts;
	char *dir;
	int dirfd;

	pthread_mutex_t lock; /* the index, the pending list, stats */
	pthread_cond_t cond;  /* pending list not empty, or stopping */
	struct queue_entry *ents;
	size_t nents, capents;
	struct queue_job *pending, **pending_tail;
	int stopping;
	struct queue_stats st;
	/* The spool could not be written: states are held in memory (nheld entries) and
	 * delivery waits until queue_next_due() has written them. */
	int paused;
	int64_t paused_since;
	size_t nheld;

	pthread_mutex_t commit_lock; /* one commit round at a time */
	pthread_t thread;
	int has_thread;
};

/* queue_dsn.c: the DSN parameters into m (checked: ERR_INPUT), and their record lines. */
int queue_msg_set_dsn(struct queue_msg *m, const struct queue_dsn *dsn, struct err *e);
void queue_dsn_format_msg(FILE *f, const struct queue_msg *m);
void queue_dsn_format_rcpt(FILE *f, const struct queue_rcpt *r);
/* A record line's value: 0 and the field set, or -1 (ERR_INPUT) when it is malformed. */
int queue_dsn_parse_ret(const char *v, size_t n, struct queue_msg *m, struct err *e);
int queue_dsn_parse_envid(const char *v, size_t n, struct queue_msg *m, struct err *e);
int queue_dsn_parse_notify(const char *v, size_t n, struct queue_rcpt *r, struct err *e);
int queue_dsn_parse_orcpt(const char *v, size_t n, struct queue_rcpt *r, struct err *e);
/* Copies m's DSN fields into c (strings duplicated): -1 when out of memory. */
int queue_dsn_dup(struct queue_msg *c, const struct queue_msg *m);

/* Write m and body to t.<id>, fsync, rename to m.<id>; the directory is not synced. */
int queue_file_write(struct queue *q, const struct queue_msg *m, const char *body, size_t len,
                     struct err *e);
/* The two halves of queue_file_write: t.<id> written and fsync'd, then renamed to m.<id>. */
int queue_file_write_tmp(struct queue *q, const struct queue_msg *m, const char *body, size_t len,
                         struct err *e);
int queue_file_publish(struct queue *q, const char *id, struct err *e);
int queue_dir_sync(struct queue *q, struct err *e);
/* Add a committed message to the index (takes m); call with q->lock held. */
int queue_index_add(struct queue *q, struct queue_msg *m, struct err *e);
void queue_index_free(struct queue *q);
/* Make (mode 0700) or open the spool directory and its corrupt/ folder, durably. */
int queue_spool_open(struct queue *q, struct err *e);
/* Load the spool at open: index committed files, remove temporaries, quarantine junk. */
int queue_recover(struct queue *q, struct err *e);

/* Load m.<id>: its envelope and, when body is not NULL, a copy of its bytes. */
int queue_file_load(struct queue *q, const char *name, struct queue_msg **out, char **body,
                    size_t *blen, struct err *e);
/* Bump a counter of q->st (they are read without the lock). */
void queue_count(uint64_t *field);

/* queue_record_parse() when only the first avail bytes of a total-byte file are at buf:
 * enough to read the header record and check the body's size without reading it. */
struct queue_msg *queue_record_parse_head(const char *buf, size_t avail, uint64_t total,
                                          size_t *body_off, struct err *e);

void queue_job_free(struct queue_job *j);
void *queue_commit_main(void *arg);

#endif
