/* test_frame.c - frames: encoding, strict parsing, and the pooled client against a
 * frame_serve server whose restart the client rides out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/frame.h"

static void test_roundtrip(void **state)
{
	struct frame_field f[3] = {
	    frame_str("a.example"), frame_str(""), {(const uint8_t *)"\0x", 2}};
	struct frame_msg m;
	struct err e = {0};
	size_t len = 0, blen = 0;
	uint8_t *out = frame_encode(7, f, 3, &len, &e);

	assert_non_null(out);
	assert_int_equal(frame_len(out, &blen, &e), 0);
	assert_int_equal(blen + 4, len);
	assert_int_equal(frame_parse(out + 4, blen, &m, &e), 0);
	assert_int_equal(m.type, 7);
	assert_int_equal(m.n, 3);
	assert_memory_equal(m.f[0].p, "a.example", 9);
	assert_int_equal(m.f[1].len, 0);
	assert_int_equal(m.f[2].len, 2);
	free(out);
}

static void test_refusals(void **state)
{
	static const uint8_t zero[4] = {0, 0, 0, 0}, huge[4] = {0, 0x20, 0, 0};
	static const uint8_t runs_past[] = {1, 1, 0, 0, 0, 9, 'x'};
	static const uint8_t trailing[] = {1, 0, 'x'};
	static const uint8_t too_many[] = {1, FRAME_MAX_FIELDS + 1};
	struct frame_msg m;
	struct err e = {0};
	size_t len;
	char buf[4];
	struct frame_field nul = {(const uint8_t *)"a\0b", 3}, longf = frame_str("abcd");

	assert_int_equal(frame_len(zero, &len, &e), -1);
	assert_int_equal(e.kind, ERR_INPUT);
	assert_int_equal(frame_len(huge, &len, &e), -1);
	assert_int_equal(e.kind, ERR_TOOBIG);
	assert_int_equal(frame_parse(runs_past, sizeof(runs_past), &m, &e), -1);
	assert_int_equal(frame_parse(trailing, sizeof(trailing), &m, &e), -1);
	assert_int_equal(frame_parse(too_many, sizeof(too_many), &m, &e), -1);
	assert_int_equal(frame_parse(trailing, 1, &m, &e), -1);
	assert_int_equal(frame_field_str(&nul, buf, sizeof(buf), &e), -1);
	assert_int_equal(frame_field_str(&longf, buf, sizeof(buf), &e), -1);
}

static void test_error_answer(void **state)
{
	struct err why = {0}, back = {0};
	struct frame_msg m;
	size_t len = 0;
	uint8_t *out;

	err_set(&why, ERR_FORBIDDEN, "token_unsealed", "no\nseal");
	out = frame_encode_error(&why, &len);
	assert_non_null(out);
	assert_int_equal(frame_parse(out + 4, len - 4, &m, &back), 0);
	assert_int_equal(frame_answer_error(&m, &back), -1);
	assert_int_equal(back.kind, ERR_FORBIDDEN);
	assert_string_equal(back.code, "token_unsealed");
	assert_string_equal(back.msg, "no?seal"); /* control characters do not pass */
	free(out);
}

/* ---- a server on a thread: echoes its fields back, reversed, as op + 1 fields */

static uint8_t *echo(void *ctx, const uint8_t *body, size_t len, size_t *outlen)
{
	struct frame_msg m;
	struct frame_field f[FRAME_MAX_FIELDS];
	struct err e = {0};

	(void)ctx;
	if (frame_parse(body, len, &m, &e) < 0)
		return frame_encode_error(&e, outlen);
	if (m.type == 9) {
		err_set(&e, ERR_CONFLICT, "refused", "as asked");
		return frame_encode_error(&e, outlen);
	}
	for (int k = 0; k < m.n; k++)
		f[k] = m.f[m.n - 1 - k];
	return frame_encode(FRAME_OK, f, m.n, outlen, &e);
}

struct srv {
	char path[64];
	int pipe[2];
	pthread_t t;
	int rc;
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	struct err e = {0};

	s->rc = frame_serve(s->path, s->pipe[0], 4, echo, NULL, &e);
	return NULL;
}

static void srv_start(struct srv *s)
{
	assert_int_equal(pipe(s->pipe), 0);
	assert_int_equal(pthread_create(&s->t, NULL, srv_main, s), 0);
	for (int k = 0; k < 500 && access(s->path, F_OK) != 0; k++)
		usleep(10000);
	assert_int_equal(access(s->path, F_OK), 0);
}

static void srv_stop(struct srv *s)
{
	close(s->pipe[1]);
	pthread_join(s->t, NULL);
	close(s->pipe[0]);
	assert_int_equal(s->rc, 0);
}

static void test_client_and_restart(void **state)
{
	struct srv s = {0};
	struct frame_client *c;
	struct frame_field f[2] = {frame_str("one"), frame_str("two")};
	struct frame_msg ans;
	struct err e = {0};
	uint8_t *buf = NULL;
	char dir[] = "/tmp/test-frame.XXXXXX";

	assert_non_null(mkdtemp(dir));
	snprintf(s.path, sizeof(s.path), "%s/s", dir);
	c = frame_client_new(s.path, "test server", 2000, &e);
	assert_non_null(c);
	/* Nobody listens yet: temporary. */
	assert_int_equal(frame_client_call(c, 1, f, 2, 2, &ans, &buf, &e), -1);
	assert_int_equal(e.kind, ERR_TEMP);
	srv_start(&s);
	assert_int_equal(frame_client_call(c, 1, f, 2, 2, &ans, &buf, &e), 0);
	assert_memory_equal(ans.f[0].p, "two", 3);
	free(buf);
	/* The server's refusal comes back as it was. */
	assert_int_equal(frame_client_call(c, 9, f, 2, 2, &ans, &buf, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_string_equal(e.code, "refused");
	/* A wrong number of answer fields is garbage. */
	assert_int_equal(frame_client_call(c, 1, f, 2, 1, &ans, &buf, &e), -1);
	assert_string_equal(e.code, "signer_garbage");
	/* Restarted: the pooled connection is dead, the call goes through a new one. */
	srv_stop(&s);
	srv_start(&s);
	assert_int_equal(frame_client_call(c, 1, f, 1, 1, &ans, &buf, &e), 0);
	assert_memory_equal(ans.f[0].p, "one", 3);
	free(buf);
	srv_stop(&s);
	frame_client_free(c);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_error_answer),
	    cmocka_unit_test(test_client_and_restart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
