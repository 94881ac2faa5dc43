/*
 * err.h - errors as values.
 *
 * Library functions return 0 on success and -1 on failure, and fill a
 * caller-owned struct err.  The kind decides how the error maps onto the
 * outside world (HTTP status, SMTP reply class, exit status) at the one
 * place where it is handled and logged; the code is a short stable slug for
 * machines ("bad_csr"), the message a sentence for people.
 */
#ifndef ANCHOR_ERR_H
#define ANCHOR_ERR_H

#include <stddef.h>

enum err_kind {
	ERR_NONE = 0,
	ERR_INPUT,     /* the request is malformed or violates a rule: 400 */
	ERR_AUTH,      /* missing or wrong credentials: 401 */
	ERR_FORBIDDEN, /* credentials fine, action not allowed: 403 */
	ERR_NOTFOUND,  /* 404 */
	ERR_CONFLICT,  /* state forbids it (token used, duplicate): 409 */
	ERR_GONE,      /* existed, no longer valid (expired token): 410 */
	ERR_TOOBIG,    /* 413 */
	ERR_MEDIA,     /* wrong content type: 415 */
	ERR_UNPROC,    /* well-formed but semantically refused (weak key): 422 */
	ERR_RATE,      /* 429 */
	ERR_TEMP,      /* transient failure, try again (database down): 503 */
	ERR_INTERNAL,  /* a bug or an impossible state: 500 */
};

#define ERR_CODE_MAX 40
#define ERR_MSG_MAX 256

struct err {
	enum err_kind kind;
	char code[ERR_CODE_MAX];
	char msg[ERR_MSG_MAX];
};

/* Set an error.  err_set() is an expression worth -1, so callers can write
 * `return err_set(...)`.  It is a (GNU statement-expression) macro so that the -1 is
 * visible where it is used: the static analysers then follow the failure paths as they
 * are, instead of imagining err_set returning something else. */
void err_setf(struct err *e, enum err_kind kind, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define err_set(e, kind, code, ...)                                                                \
	__extension__({                                                                            \
		err_setf((e), (kind), (code), __VA_ARGS__);                                        \
		-1;                                                                                \
	})

/* Append the OpenSSL error queue (if any) to the message and clear it; worth -1 too. */
void err_setf_ssl(struct err *e, enum err_kind kind, const char *code, const char *what);
#define err_set_ssl(e, kind, code, what)                                                           \
	__extension__({                                                                            \
		err_setf_ssl((e), (kind), (code), (what));                                         \
		-1;                                                                                \
	})

void err_clear(struct err *e);

/* HTTP status for an error kind (500 for unknown kinds). */
int err_http_status(enum err_kind kind);

/* True when retrying the same request later may succeed. */
int err_is_temporary(enum err_kind kind);

#endif
