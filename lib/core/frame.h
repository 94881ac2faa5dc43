/*
 * frame.h - length-prefixed frames over a local stream socket, and a small
 * pooled client for them: the wire under a daemon and its signer process.
 *
 * A frame is a 4-byte big-endian length N (1 <= N <= FRAME_MAX) followed by
 * N bytes of body:
 *
 *   type (1 byte)  nfields (1 byte, <= FRAME_MAX_FIELDS)
 *   then nfields times: length (4 bytes, big-endian) and that many bytes
 *
 * and nothing after the last field.  In a request the type is the op; in an
 * answer it is FRAME_OK for success (the op's result fields) or an enum
 * err_kind with two fields, the error's code and message.  What each op
 * carries is the business of its protocol (keyserver/signer_proto.h).
 */
#ifndef ANCHOR_FRAME_H
#define ANCHOR_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define FRAME_MAX (1024 * 1024)
#define FRAME_MAX_FIELDS 8
#define FRAME_OK 0 /* the answer type of a success */

struct frame_field {
	const uint8_t *p;
	size_t len;
};

/* A parsed body; the fields point into it. */
struct frame_msg {
	uint8_t type;
	int n;
	struct frame_field f[FRAME_MAX_FIELDS];
};

/* The body length a 4-byte frame header announces; ERR_TOOBIG beyond FRAME_MAX,
 * ERR_INPUT for 0. */
int frame_len(const uint8_t hdr[4], size_t *len, struct err *e);
/* Parse a body strictly (ERR_INPUT "bad_frame"). */
int frame_parse(const uint8_t *body, size_t len, struct frame_msg *m, struct err *e);
/* A whole frame (header included), malloc'd, *outlen bytes. */
uint8_t *frame_encode(uint8_t type, const struct frame_field *f, int n, size_t *outlen,
                      struct err *e);
/* A field as a C string (no NUL inside, 1 .. cap-1 bytes; ERR_INPUT "bad_request"). */
int frame_field_str(const struct frame_field *f, char *out, size_t cap, struct err *e);
/* A field from a C string (NULL: empty). */
struct frame_field frame_str(const char *s);
/* The error answer of an err (a whole frame, malloc'd). */
uint8_t *frame_encode_error(const struct err *why, size_t *outlen);
/* An error answer turned back into an err (code and message sanitised). */
int frame_answer_error(const struct frame_msg *m, struct err *e);

/* ---------------------------------------------------------------- client */

/*
 * A thread-safe client: a pool of at most FRAME_CLIENT_POOL connections to
 * the socket at path.  A pooled connection found broken (the server was
 * restarted) is replaced once; a call that cannot finish within timeout_ms
 * fails with ERR_TEMP ("<what>_unavailable", "<what>_timeout").
 */
struct frame_client;

struct frame_client *frame_client_new(const char *path, const char *what, int timeout_ms,
                                      struct err *e);
void frame_client_free(struct frame_client *c); /* accepts NULL */

/* One request and its answer: 0 with *ans (whose fields point into *buf; free it)
 * holding exactly nfields fields, or -1 (the server's refusal, with its kind). */
int frame_client_call(struct frame_client *c, uint8_t op, const struct frame_field *f, int n,
                      int nfields, struct frame_msg *ans, uint8_t **buf, struct err *e);

/* ---------------------------------------------------------------- server */

/* One request body in, one whole answer frame out (malloc'd; NULL drops the connection). */
typedef uint8_t *(*frame_handler)(void *ctx, const uint8_t *body, size_t len, size_t *outlen);

/*
 * Listen on path (0600, in a directory made 0700 when missing; bound under a
 * temporary name and renamed into place once it listens, so whoever sees the
 * path can connect) and serve each connection on its own thread, at most
 * max_conn at once, until parent_fd (when >= 0) reports end of file: the
 * parent closed its end of the pipe or died.  Returns 0 then, 1 when a
 * connection thread did not end in time (ctx must then be left alone), -1
 * when it cannot listen.  Requests are answered in order on each connection.
 */
int frame_serve(const char *path, int parent_fd, int max_conn, frame_handler fn, void *ctx,
                struct err *e);

#endif
