/*
 * test_queue.c - the durable message queue (lib/queue*.c).
 *
 * Besides the cmocka tests, two drivers for tests/integration/test_queue_crash.py:
 *   QUEUE_CRASH_DIR=DIR  submit messages from several threads forever (or
 *                        QUEUE_CRASH_MAX of them), printing "ack <id>" once
 *                        each is committed; meant to be killed with SIGKILL
 *   QUEUE_LIST_DIR=DIR   open (recover) the queue and print "ok <id>" or
 *                        "bad <id>" for every message after checking the
 *                        checksum it carries, then a "stats ..." line
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pki/crypto.h"
#include "mail/queue.h"

static char spool[256];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	char tmpl[] = "/tmp/anchor-queue-XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	snprintf(spool, sizeof(spool), "%s/spool", tmpl);
	return 0;
}

static int teardown(void **state)
{
	char *slash = strrchr(spool, '/');

	*slash = '\0';
	nftw(spool, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static struct queue *open_q(int thread, unsigned lifetime)
{
	struct queue_opts o = {.dir = spool, .commit_thread = thread, .lifetime = lifetime};
	struct err e = {0};
	struct queue *q = queue_open(&o, &e);

	if (q == NULL)
		fail_msg("queue_open: %s", e.msg);
	return q;
}

struct ack {
	int calls, ok;
	char id[QUEUE_ID_MAX];
};

static void on_commit(const char *id, int ok, const struct err *e, void *arg)
{
	struct ack *a = arg;

	a->calls++;
	a->ok = ok;
	snprintf(a->id, sizeof(a->id), "%s", id);
}

static void submit1(struct queue *q, const char *body, const char *const *rcpts, size_t n,
                    char id[QUEUE_ID_MAX], struct ack *a)
{
	struct err e = {0};

	assert_int_equal(queue_submit(q, "alice@example.org", rcpts, n, body, strlen(body),
	                              on_commit, a, id, &e),
	                 0);
}

static int file_exists(const char *name)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", spool, name);
	return stat(p, &st) == 0;
}

static void test_commit_then_reopen(void **state)
{
	const char *rcpts[] = {"bob@example.net", "carol@example.com"};
	struct ack a[3] = {{0}};
	char id[3][QUEUE_ID_MAX], name[64], **ids, *body;
	struct err e = {0};
	struct stat st;
	size_t n, len;
	struct queue *q = open_q(0, 0);

	assert_int_equal(stat(spool, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	submit1(q, "Subject: one\r\n\r\nbody one\r\n", rcpts, 2, id[0], &a[0]);
	submit1(q, "Subject: two\r\n\r\n", rcpts, 1, id[1], &a[1]);
	submit1(q, "", rcpts + 1, 1, id[2], &a[2]);
	/* Nothing is acknowledged, nor on disk, before the commit. */
	snprintf(name, sizeof(name), "m.%s", id[0]);
	assert_false(file_exists(name));
	assert_int_equal(a[0].calls, 0);
	assert_int_equal(queue_commit_pending(q), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(a[i].calls, 1);
		assert_int_equal(a[i].ok, 1);
		assert_string_equal(a[i].id, id[i]);
	}
	assert_true(file_exists(name));
	assert_int_equal(queue_commit_pending(q), 0);
	queue_close(q);

	q = open_q(0, 0);
	assert_int_equal(queue_ids(q, &ids, &n, &e), 0);
	assert_int_equal(n, 3);
	queue_ids_free(ids, n);
	struct queue_msg *m = queue_msg_get(q, id[0], &e);
	assert_non_null(m);
	assert_string_equal(m->sender, "alice@example.org");
	assert_int_equal(m->nrcpt, 2);
	assert_string_equal(m->rcpts[1].addr, "carol@example.com");
	assert_int_equal(m->rcpts[1].status, QUEUE_PENDING);
	queue_msg_free(m);
	assert_int_equal(queue_body_read(q, id[0], &body, &len, &e), 0);
	assert_int_equal(len, strlen("Subject: one\r\n\r\nbody one\r\n"));
	assert_memory_equal(body, "Subject: one\r\n\r\nbody one\r\n", len);
	free(body);
	assert_int_equal(queue_body_read(q, id[2], &body, &len, &e), 0);
	assert_int_equal(len, 0);
	free(body);
	struct queue_stats s;
	queue_stats_get(q, &s);
	assert_int_equal(s.recovered, 3);
	queue_close(q);
}

static void test_status_survives_reopen(void **state)
{
	const char *rcpts[] = {"a@x.example", "b@x.example", "c@x.example"};
	struct ack a = {0};
	char id[QUEUE_ID_MAX], name[64];
	struct err e = {0};
	struct queue *q = open_q(0, 0);
	int64_t now = (int64_t)time(NULL);

	submit1(q, "hello\r\n", rcpts, 3, id, &a);
	queue_commit_pending(q);
	assert_int_equal(queue_mark(q, id, 0, QUEUE_DELIVERED, "250 2.0.0 ok", now, &e), 0);
	assert_int_equal(queue_mark(q, id, 1, QUEUE_DEFERRED, "451 4.3.0 busy\r\nx", now, &e), 0);
	assert_int_equal(queue_mark(q, id, 7, QUEUE_DELIVERED, "", now, &e), -1);
	assert_int_equal(queue_mark(q, "ffff", 0, QUEUE_DELIVERED, "", now, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	queue_close(q);

	q = open_q(0, 0);
	struct queue_msg *m = queue_msg_get(q, id, &e);
	assert_non_null(m);
	assert_int_equal(m->rcpts[0].status, QUEUE_DELIVERED);
	assert_string_equal(m->rcpts[0].reply, "250 2.0.0 ok");
	assert_int_equal(m->rcpts[1].status, QUEUE_DEFERRED);
	assert_int_equal(m->rcpts[1].attempts, 1);
	assert_int_equal(m->rcpts[1].next_attempt, now + 60);
	assert_string_equal(m->rcpts[1].reply, "451 4.3.0 busy  x"); /* CR LF blanked */
	assert_int_equal(m->rcpts[2].status, QUEUE_PENDING);
	queue_msg_free(m);
	/* Every recipient final: the file goes. */
	assert_int_equal(queue_mark(q, id, 1, QUEUE_DELIVERED, "250 ok", now, &e), 0);
	snprintf(name, sizeof(name), "m.%s", id);
	assert_true(file_exists(name));
	assert_int_equal(queue_mark(q, id, 2, QUEUE_FAILED, "550 5.1.1 no such user", now, &e), 0);
	assert_false(file_exists(name));
	assert_null(queue_msg_get(q, id, &e));
	queue_close(q);
	q = open_q(0, 0);
	struct queue_stats s;
	queue_stats_get(q, &s);
	assert_int_equal(s.recovered, 0);
	queue_close(q);
}

static void write_file(const char *name, const char *data, size_t len)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", spool, name);
	assert_non_null(f = fopen(p, "w"));
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void test_temp_files_cleaned(void **state)
{
	const char *rcpts[] = {"bob@example.net"};
	struct ack a = {0};
	char id[QUEUE_ID_MAX];
	struct queue_stats s;
	struct queue *q = open_q(0, 0);

	submit1(q, "kept\r\n", rcpts, 1, id, &a);
	queue_commit_pending(q);
	queue_close(q);
	/* A crash between write and rename leaves t.<id>: it was never acknowledged. */
	write_file("t.00000000000000000000000000000001", "anchor-queue 1\nid 0", 19);
	write_file("t.0123", "", 0);
	q = open_q(0, 0);
	queue_stats_get(q, &s);
	assert_int_equal(s.tmp_removed, 2);
	assert_int_equal(s.recovered, 1);
	assert_int_equal(s.corrupt, 0);
	assert_false(file_exists("t.0123"));
	assert_false(file_exists("t.00000000000000000000000000000001"));
	queue_close(q);
}

static void test_backoff_schedule(void **state)
{
	const char *rcpts[] = {"bob@example.net"};
	const unsigned want[] = {60, 120, 240, 480, 960, 1920, 3600, 3600, 3600};
	struct queue_due *due;
	struct ack a = {0};
	char id[QUEUE_ID_MAX];
	struct err e = {0};
	size_t n;
	struct queue *q = open_q(0, 0);
	int64_t now = (int64_t)time(NULL);

	for (unsigned i = 0; i < 9; i++)
		assert_int_equal(queue_backoff(q, i + 1), want[i]);
	assert_int_equal(queue_backoff(q, 1000000), 3600);
	submit1(q, "x\r\n", rcpts, 1, id, &a);
	queue_commit_pending(q);
	for (unsigned i = 0; i < 9; i++) {
		/* Due now, and handed out only once until marked. */
		assert_int_equal(queue_next_due(q, now, &due, &n, &e), 0);
		assert_int_equal(n, 1);
		assert_string_equal(due[0].id, id);
		assert_string_equal(due[0].addr, "bob@example.net");
		assert_int_equal(due[0].expired, 0);
		queue_due_free(due, n);
		assert_int_equal(queue_next_due(q, now, &due, &n, &e), 0);
		assert_int_equal(n, 0);
		queue_due_free(due, n);
		assert_int_equal(queue_mark(q, id, 0, QUEUE_DEFERRED, "421 later", now, &e), 0);
		/* Not due one second early. */
		assert_int_equal(queue_next_due(q, now + want[i] - 1, &due, &n, &e), 0);
		assert_int_equal(n, 0);
		queue_due_free(due, n);
		now += want[i];
	}
	struct queue_msg *m = queue_msg_get(q, id, &e);
	assert_int_equal(m->rcpts[0].attempts, 9);
	queue_msg_free(m);
	queue_close(q);
}

static void test_expiry(void **state)
{
	const char *rcpts[] = {"a@x.example", "b@x.example"};
	struct queue_due *due;
	struct ack a = {0}, b = {0};
	char id[QUEUE_ID_MAX], id2[QUEUE_ID_MAX];
	struct err e = {0};
	size_t n;
	struct queue *q = open_q(0, 600);
	int64_t t0 = (int64_t)time(NULL);

	submit1(q, "x\r\n", rcpts, 2, id, &a);
	submit1(q, "y\r\n", rcpts, 1, id2, &b);
	queue_commit_pending(q);
	assert_int_equal(queue_mark(q, id, 0, QUEUE_DELIVERED, "250 ok", t0, &e), 0);
	assert_int_equal(queue_mark(q, id, 1, QUEUE_DEFERRED, "451 greylisted", t0, &e), 0);
	/* A deferral past the lifetime is final at once. */
	assert_int_equal(queue_mark(q, id2, 0, QUEUE_DEFERRED, "451 again", t0 + 700, &e), 0);
	assert_null(queue_msg_get(q, id2, &e));
	/* next_due past the lifetime fails what is left and reports it; the message stays
	 * (for its bounce) until queue_done(), and a restart finds it again. */
	assert_int_equal(queue_next_due(q, t0 + 601, &due, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(due[0].id, id);
	assert_int_equal(due[0].rcpt, 1);
	assert_int_equal(due[0].expired, 1);
	queue_due_free(due, n);
	struct queue_msg *m = queue_msg_get(q, id, &e);
	assert_non_null(m);
	assert_int_equal(m->rcpts[1].status, QUEUE_FAILED);
	queue_msg_free(m);
	assert_int_equal(queue_next_due(q, t0 + 602, &due, &n, &e), 0);
	assert_int_equal(n, 0);
	queue_due_free(due, n);
	queue_close(q);
	q = open_q(0, 600);
	char **ids;
	size_t nids;
	assert_int_equal(queue_final_ids(q, &ids, &nids, &e), 0);
	assert_int_equal(nids, 1);
	assert_string_equal(ids[0], id);
	queue_ids_free(ids, nids);
	assert_int_equal(queue_done(q, id, &e), 0);
	assert_int_equal(queue_final_ids(q, &ids, &nids, &e), 0);
	assert_int_equal(nids, 0);
	queue_ids_free(ids, nids);
	assert_int_equal(queue_next_due(q, t0 + 601, &due, &n, &e), 0);
	assert_int_equal(n, 0);
	queue_due_free(due, n);
	queue_close(q);
}

static void test_expiry_survives_in_record(void **state)
{
	const char *rcpts[] = {"a@x.example", "b@x.example"};
	struct ack a = {0};
	char id[QUEUE_ID_MAX];
	struct err e = {0};
	struct queue *q = open_q(0, 600);
	int64_t t0 = (int64_t)time(NULL);

	submit1(q, "x\r\n", rcpts, 2, id, &a);
	queue_commit_pending(q);
	assert_int_equal(queue_mark(q, id, 0, QUEUE_DEFERRED, "451 a", t0 + 601, &e), 0);
	struct queue_msg *m = queue_msg_get(q, id, &e);
	assert_int_equal(m->rcpts[0].status, QUEUE_FAILED);
	assert_string_equal(m->rcpts[0].reply, "expired in queue; last reply: 451 a");
	queue_msg_free(m);
	queue_close(q);
}

static const char good_rec[] = "anchor-queue 1\n"
                               "id 0123456789abcdef\n"
                               "arrival 1700000000\n"
                               "size 5\n"
                               "sender \n"
                               "rcpt deferred 2 1700000300 bob@example.net\n"
                               "reply 451 4.7.0 try again later\n"
                               "rcpt pending 0 0 c@example.net\n"
                               "reply \n"
                               "end\n"
                               "hello";

static void test_record_strict(void **state)
{
	static const char *const bad[] = {
	    "",
	    "anchor-queue 2\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nend\n", /* no rcpt */
	    "anchor-queue 1\nid 0G\narrival 1\nsize 0\nsender \nrcpt pending 0 0 a\nreply \nend\n",
	    "anchor-queue 1\nid 01\narrival 01\nsize 0\nsender \nrcpt pending 0 0 a\nreply \nend\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 99999999999999999999\nsender \nrcpt pending 0 "
	    "0 a\nreply \nend\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nrcpt bogus 0 0 a\nreply \nend\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nrcpt pending -1 0 a\nreply \nend\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nrcpt pending 0 0 a b\nreply "
	    "\nend\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nrcpt pending 0 0 a\nend\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nrcpt pending 0 0 a\nreply "
	    "\r\nend\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender a b\nrcpt pending 0 0 a\nreply "
	    "\nend\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nrcpt pending 0 0 a\nreply \nend",
	    "anchor-queue 1\nid 01\narrival 1\nsize 2\nsender \nrcpt pending 0 0 a\nreply \nend\nx",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nrcpt pending 0 0 a\nreply \nend\nx",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nflags \nrcpt pending 0 0 a\nreply "
	    "\nend\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nflags requiretls2\nrcpt pending 0 "
	    "0 "
	    "a\nreply \nend\n",
	    "anchor-queue 1\nid 01\narrival 1\nsize 0\nsender \nflags requiretls\nflags "
	    "requiretls\nrcpt pending 0 0 a\nreply \nend\n",
	};
	struct err e = {0};
	size_t off = 0, len;
	struct queue_msg *m;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = queue_record_parse(bad[i], strlen(bad[i]), &off, &e);
		if (m != NULL)
			fail_msg("bad record %zu accepted", i);
		assert_int_equal(e.kind, ERR_INPUT);
	}
	/* Every truncation of a good record is refused too. */
	for (size_t k = 0; k < sizeof(good_rec) - 1; k++) {
		m = queue_record_parse(good_rec, k, &off, &e);
		if (m != NULL)
			fail_msg("truncation at %zu accepted", k);
	}
	m = queue_record_parse(good_rec, sizeof(good_rec) - 1, &off, &e);
	assert_non_null(m);
	assert_string_equal(m->sender, "");
	assert_int_equal(m->nrcpt, 2);
	assert_int_equal(m->rcpts[0].status, QUEUE_DEFERRED);
	assert_int_equal(m->rcpts[0].next_attempt, 1700000300);
	assert_string_equal(m->rcpts[0].reply, "451 4.7.0 try again later");
	assert_string_equal(good_rec + off, "hello");
	char *txt = queue_record_format(m, &len, &e);
	assert_non_null(txt);
	assert_int_equal(len, off);
	assert_memory_equal(txt, good_rec, len);
	free(txt);
	assert_int_equal(m->flags, 0); /* a record without "flags" (written before them) */
	/* REQUIRETLS survives a round trip, and a rewrite (queue_msg_dup) */
	m->flags = QUEUE_F_REQUIRETLS;
	struct queue_msg *d = queue_msg_dup(m);
	assert_non_null(d);
	txt = queue_record_format(d, &len, &e);
	assert_non_null(txt);
	assert_non_null(strstr(txt, "\nsender \nflags requiretls\nrcpt "));
	queue_msg_free(d);
	txt = realloc(txt, len + 6); /* the body, and a NUL as the spool reader leaves */
	assert_non_null(txt);
	memcpy(txt + len, "hello", 6);
	d = queue_record_parse(txt, len + 5, &off, &e);
	assert_non_null(d);
	assert_int_equal(d->flags, QUEUE_F_REQUIRETLS);
	assert_int_equal(d->nrcpt, 2);
	queue_msg_free(d);
	free(txt);
	queue_msg_free(m);
}

static void test_malformed_quarantined(void **state)
{
	const char *rcpts[] = {"bob@example.net"};
	struct ack a = {0};
	char id[QUEUE_ID_MAX], **ids, path[512];
	struct queue_stats s;
	struct err e = {0};
	size_t n;
	struct queue *q = open_q(0, 0);

	submit1(q, "fine\r\n", rcpts, 1, id, &a);
	queue_commit_pending(q);
	queue_close(q);
	write_file("m.0123456789abcdef", good_rec, sizeof(good_rec) - 3); /* truncated body */
	write_file("m.0000000000000001", good_rec, sizeof(good_rec) - 1); /* id mismatch */
	write_file("m.0000000000000002", "\x00\xff garbage", 10);
	snprintf(path, sizeof(path), "%s/m.0000000000000003", spool);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/m.0000000000000004", spool);
	assert_int_equal(symlink("m.0000000000000002", path), 0);
	q = open_q(0, 0);
	queue_stats_get(q, &s);
	assert_int_equal(s.corrupt, 5);
	assert_int_equal(s.recovered, 1);
	assert_int_equal(queue_ids(q, &ids, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], id);
	queue_ids_free(ids, n);
	assert_true(file_exists("corrupt/m.0123456789abcdef"));
	assert_true(file_exists("corrupt/m.0000000000000001"));
	assert_true(file_exists("corrupt/m.0000000000000002"));
	assert_false(file_exists("m.0000000000000002"));
	assert_true(file_exists("corrupt/m.0000000000000003"));
	assert_false(file_exists("m.0000000000000003"));
	assert_false(file_exists("m.0000000000000004"));
	queue_close(q);
}

static void test_submit_refusals(void **state)
{
	const char *good[] = {"bob@example.net"};
	const char *spaced[] = {"bob @example.net"};
	const char *angle[] = {"<bob@example.net>"};
	const char *empty[] = {""};
	char id[QUEUE_ID_MAX];
	struct err e = {0};
	struct queue *q = open_q(0, 0);

	assert_int_equal(queue_submit(q, "a\nb", good, 1, "x", 1, NULL, NULL, id, &e), -1);
	assert_int_equal(queue_submit(q, "", good, 0, "x", 1, NULL, NULL, id, &e), -1);
	assert_int_equal(queue_submit(q, "", spaced, 1, "x", 1, NULL, NULL, id, &e), -1);
	assert_int_equal(queue_submit(q, "", angle, 1, "x", 1, NULL, NULL, id, &e), -1);
	assert_int_equal(queue_submit(q, "", empty, 1, "x", 1, NULL, NULL, id, &e), -1);
	assert_int_equal(e.kind, ERR_INPUT);
	/* The null reverse-path is fine; a callback is optional. */
	assert_int_equal(queue_submit(q, "", good, 1, "x", 1, NULL, NULL, id, &e), 0);
	assert_int_equal(queue_commit_pending(q), 1);
	queue_close(q);
}

/* Group commit: sessions on several threads, each waiting for its "250". */
#define GC_THREADS 8
#define GC_PER_THREAD 40

struct session {
	struct queue *q;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int acked, failed;
};

static void session_ack(const char *id, int ok, const struct err *e, void *arg)
{
	struct session *s = arg;

	pthread_mutex_lock(&s->mu);
	s->acked++;
	s->failed += !ok;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void *session_main(void *arg)
{
	struct session *s = arg;
	const char *rcpts[] = {"bob@example.net"};
	char id[QUEUE_ID_MAX], body[600];
	struct err e = {0};

	memset(body, 'x', sizeof(body));
	for (int i = 0; i < GC_PER_THREAD; i++) {
		if (queue_submit(s->q, "a@example.org", rcpts, 1, body, sizeof(body), session_ack,
		                 s, id, &e) < 0)
			return NULL;
		pthread_mutex_lock(&s->mu);
		while (s->acked <= i)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

static void test_group_commit_threads(void **state)
{
	struct session ss[GC_THREADS];
	pthread_t th[GC_THREADS];
	struct queue_stats s0, s1;
	struct err e = {0};
	char **ids;
	size_t n;
	struct queue *q = open_q(1, 0);
	const int total = GC_THREADS * GC_PER_THREAD;

	queue_stats_get(q, &s0);
	for (int i = 0; i < GC_THREADS; i++) {
		ss[i] = (struct session){.q = q};
		pthread_mutex_init(&ss[i].mu, NULL);
		pthread_cond_init(&ss[i].cv, NULL);
		assert_int_equal(pthread_create(&th[i], NULL, session_main, &ss[i]), 0);
	}
	for (int i = 0; i < GC_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ss[i].acked, GC_PER_THREAD);
		assert_int_equal(ss[i].failed, 0);
		pthread_mutex_destroy(&ss[i].mu);
		pthread_cond_destroy(&ss[i].cv);
	}
	queue_stats_get(q, &s1);
	uint64_t dirs = s1.dir_fsyncs - s0.dir_fsyncs;
	printf("group commit: %d messages from %d threads, %llu batches, %llu directory "
	       "fsyncs, %llu file fsyncs (%.1f messages per directory fsync)\n",
	       total, GC_THREADS, (unsigned long long)s1.batches, (unsigned long long)dirs,
	       (unsigned long long)(s1.file_fsyncs - s0.file_fsyncs), (double)total / (double)dirs);
	assert_int_equal(s1.committed, total);
	assert_int_equal(s1.file_fsyncs - s0.file_fsyncs, total);
	assert_int_equal(dirs, s1.batches);
	/* With 8 sessions waiting, some round must carry more than one of them.  How many
	 * depends on the scheduler (1.6-4 per round seen on a loaded 2-core machine): the
	 * figure is bench/relay.sh's to report, this only proves that rounds are shared. */
	assert_true(dirs < (uint64_t)total);
	assert_int_equal(queue_ids(q, &ids, &n, &e), 0);
	assert_int_equal(n, total);
	queue_ids_free(ids, n);
	queue_close(q);
}

/* ---- drivers for the crash test ---- */

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void crash_ack(const char *id, int ok, const struct err *e, void *arg)
{
	if (ok) {
		pthread_mutex_lock(&out_mu);
		printf("ack %s\n", id);
		fflush(stdout);
		pthread_mutex_unlock(&out_mu);
	}
	session_ack(id, ok, e, arg);
}

static long crash_max;

/* Body: "sum <sha256 hex of the rest>\n" then a few KB of varied text. */
static size_t crash_body(char *buf, size_t cap, unsigned *seed, int seq)
{
	size_t n = 200 + (size_t)(rand_r(seed) % 8000), off = 69;
	char hex[CRYPTO_HEX256_LEN];

	off += (size_t)snprintf(buf + off, cap - off, "X-Seq: %d\r\n\r\n", seq);
	for (; off < n; off++)
		buf[off] = (char)('a' + rand_r(seed) % 26);
	crypto_sha256_hex(buf + 69, n - 69, hex);
	memcpy(buf, "sum ", 4);
	memcpy(buf + 4, hex, 64);
	buf[68] = '\n';
	return n;
}

static void *crash_session(void *arg)
{
	struct session *s = arg;
	const char *rcpts[] = {"bob@example.net", "carol@example.com"};
	char id[QUEUE_ID_MAX], body[8400];
	unsigned seed = (unsigned)(uintptr_t)arg ^ (unsigned)getpid();
	struct err e = {0};

	for (int i = 0; i < crash_max; i++) {
		size_t n = crash_body(body, sizeof(body), &seed, i);
		if (queue_submit(s->q, "a@example.org", rcpts, 2, body, n, crash_ack, s, id, &e) <
		    0) {
			fprintf(stderr, "submit: %s\n", e.msg);
			return NULL;
		}
		pthread_mutex_lock(&s->mu);
		while (s->acked <= i)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

static int crash_driver(const char *dir)
{
	struct queue_opts o = {.dir = dir, .commit_thread = 1};
	struct session ss[4];
	pthread_t th[4];
	struct err e = {0};
	struct queue *q = queue_open(&o, &e);

	if (q == NULL) {
		fprintf(stderr, "queue_open: %s\n", e.msg);
		return 1;
	}
	crash_max = getenv("QUEUE_CRASH_MAX") ? atol(getenv("QUEUE_CRASH_MAX")) : 1000000;
	for (int i = 0; i < 4; i++) {
		ss[i] = (struct session){.q = q};
		pthread_mutex_init(&ss[i].mu, NULL);
		pthread_cond_init(&ss[i].cv, NULL);
		pthread_create(&th[i], NULL, crash_session, &ss[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	queue_close(q);
	return 0;
}

static int body_intact(const char *body, size_t len)
{
	char hex[CRYPTO_HEX256_LEN];

	if (len < 69 || memcmp(body, "sum ", 4) != 0 || body[68] != '\n')
		return 0;
	crypto_sha256_hex(body + 69, len - 69, hex);
	return memcmp(hex, body + 4, 64) == 0;
}

static int list_driver(const char *dir)
{
	struct queue_opts o = {.dir = dir};
	struct queue_stats s;
	struct err e = {0};
	char **ids = NULL;
	size_t n = 0;
	int bad = 0;
	struct queue *q = queue_open(&o, &e);

	if (q == NULL || queue_ids(q, &ids, &n, &e) < 0) {
		fprintf(stderr, "queue: %s\n", e.msg);
		queue_close(q);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		char *body = NULL;
		size_t len = 0;
		struct queue_msg *m = queue_msg_get(q, ids[i], &e);
		int ok = m != NULL && m->nrcpt == 2 &&
		         queue_body_read(q, ids[i], &body, &len, &e) == 0 && body_intact(body, len);
		printf("%s %s\n", ok ? "ok" : "bad", ids[i]);
		bad += !ok;
		free(body);
		queue_msg_free(m);
	}
	queue_stats_get(q, &s);
	printf("stats recovered=%llu tmp_removed=%llu corrupt=%llu\n",
	       (unsigned long long)s.recovered, (unsigned long long)s.tmp_removed,
	       (unsigned long long)s.corrupt);
	queue_ids_free(ids, n);
	queue_close(q);
	return bad ? 1 : 0;
}

/*
 * A spool that cannot take a rewrite (here t.<id> is a directory, as a full disk
 * refuses it): the new states are held in memory, the queue pauses (nothing is
 * due, however late), and the first queue_next_due() that can write them resumes
 * it with the backoff intact and the states on disk.
 */
static void test_unwritable_spool_holds_state(void **state)
{
	const char *rcpts[] = {"a@x.example", "b@x.example"};
	struct queue_due *due;
	struct queue_stats s;
	struct ack a = {0};
	char id[QUEUE_ID_MAX], tmp[512];
	struct err e = {0};
	size_t n;
	struct queue *q = open_q(0, 0);
	int64_t t0 = (int64_t)time(NULL);

	submit1(q, "x\r\n", rcpts, 2, id, &a);
	queue_commit_pending(q);
	assert_int_equal(queue_next_due(q, t0, &due, &n, &e), 0);
	assert_int_equal(n, 2);
	queue_due_free(due, n);
	snprintf(tmp, sizeof(tmp), "%s/t.%s", spool, id);
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(queue_mark(q, id, 0, QUEUE_DELIVERED, "250 ok", t0, &e), -1);
	assert_int_equal(queue_mark(q, id, 1, QUEUE_DEFERRED, "451 later", t0, &e), -1);
	queue_stats_get(q, &s);
	assert_int_equal(s.paused, 1);
	assert_int_equal(s.held, 1);
	assert_int_equal(s.write_failures, 2);
	assert_int_equal(queue_paused(q), 1);
	/* paused: nothing is due, not even long after the backoff; one write tried */
	assert_int_equal(queue_next_due(q, t0 + 100000, &due, &n, &e), 0);
	assert_int_equal(n, 0);
	queue_stats_get(q, &s);
	assert_int_equal(s.write_failures, 3);
	/* the spool takes writes again: resumed, the delivered recipient is never due
	 * again and the deferred one only after its backoff */
	assert_int_equal(rmdir(tmp), 0);
	assert_int_equal(queue_next_due(q, t0 + 1, &due, &n, &e), 0);
	assert_int_equal(n, 0);
	queue_stats_get(q, &s);
	assert_int_equal(s.paused, 0);
	assert_int_equal(s.held, 0);
	assert_int_equal(queue_next_due(q, t0 + 61, &due, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(due[0].rcpt, 1);
	queue_due_free(due, n);
	queue_close(q);
	/* and the held states reached the disk */
	q = open_q(0, 0);
	struct queue_msg *m = queue_msg_get(q, id, &e);
	assert_non_null(m);
	assert_int_equal(m->rcpts[0].status, QUEUE_DELIVERED);
	assert_int_equal(m->rcpts[1].status, QUEUE_DEFERRED);
	assert_int_equal(m->rcpts[1].attempts, 1);
	assert_int_equal(m->rcpts[1].next_attempt, t0 + 60);
	queue_msg_free(m);
	queue_close(q);
}

/* A recipient given back unattempted is due again, its state unchanged. */
static void test_release(void **state)
{
	const char *rcpts[] = {"a@x.example"};
	struct queue_due *due;
	struct ack a = {0};
	char id[QUEUE_ID_MAX];
	struct err e = {0};
	size_t n;
	struct queue *q = open_q(0, 0);
	int64_t t0 = (int64_t)time(NULL);

	submit1(q, "x\r\n", rcpts, 1, id, &a);
	queue_commit_pending(q);
	assert_int_equal(queue_next_due(q, t0, &due, &n, &e), 0);
	assert_int_equal(n, 1);
	queue_due_free(due, n);
	assert_int_equal(queue_next_due(q, t0, &due, &n, &e), 0);
	assert_int_equal(n, 0);
	queue_release(q, id, 0);
	queue_release(q, "ffff", 0); /* unknown: ignored */
	assert_int_equal(queue_next_due(q, t0, &due, &n, &e), 0);
	assert_int_equal(n, 1);
	queue_due_free(due, n);
	queue_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_commit_then_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_survives_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_temp_files_cleaned, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backoff_schedule, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expiry_survives_in_record, setup, teardown),
	    cmocka_unit_test(test_record_strict),
	    cmocka_unit_test_setup_teardown(test_malformed_quarantined, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_submit_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_commit_threads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unwritable_spool_holds_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_release, setup, teardown),
	};

	if (getenv("QUEUE_CRASH_DIR") != NULL)
		return crash_driver(getenv("QUEUE_CRASH_DIR"));
	if (getenv("QUEUE_LIST_DIR") != NULL)
		return list_driver(getenv("QUEUE_LIST_DIR"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
