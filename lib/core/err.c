/* err.c - errors as values; see err.h. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static void set_code(struct err *e, const char *code)
{
	if (code != e->code) /* keeping the code an earlier error set */
		snprintf(e->code, sizeof(e->code), "%s", code ? code : "error");
}

void err_setf(struct err *e, enum err_kind kind, const char *code, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX]; /* sizeof(e->msg), without naming e before the NULL check */
	va_list ap;

	if (e == NULL)
		return;
	/* Format aside first: callers wrap an earlier error as err_set(e, ..., "%s", e->msg),
	 * and vsnprintf into the buffer it is reading from garbles the message. */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->kind = kind;
	set_code(e, code);
	memcpy(e->msg, msg, sizeof(msg));
}

void err_setf_ssl(struct err *e, enum err_kind kind, const char *code, const char *what)
{
	unsigned long ssl;
	char buf[160];

	ssl = ERR_peek_last_error();
	if (ssl != 0) {
		ERR_error_string_n(ssl, buf, sizeof(buf));
		err_set(e, kind, code, "%s (%s)", what, buf);
	} else {
		err_set(e, kind, code, "%s", what);
	}
	ERR_clear_error();
}

void err_clear(struct err *e)
{
	if (e == NULL)
		return;
	memset(e, 0, sizeof(*e));
}

int err_http_status(enum err_kind kind)
{
	switch (kind) {
	case ERR_NONE:
		return 200;
	case ERR_INPUT:
		return 400;
	case ERR_AUTH:
		return 401;
	case ERR_FORBIDDEN:
		return 403;
	case ERR_NOTFOUND:
		return 404;
	case ERR_CONFLICT:
		return 409;
	case ERR_GONE:
		return 410;
	case ERR_TOOBIG:
		return 413;
	case ERR_MEDIA:
		return 415;
	case ERR_UNPROC:
		return 422;
	case ERR_RATE:
		return 429;
	case ERR_TEMP:
		return 503;
	case ERR_INTERNAL:
		break;
	}
	return 500;
}

int err_is_temporary(enum err_kind kind)
{
	return kind == ERR_TEMP || kind == ERR_RATE;
}
