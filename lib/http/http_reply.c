/*
 * http_reply.c - how a handler writes its answer: a body with its type, a JSON
 * document, the JSON error of a struct err, extra headers; see http.h.
 *
 * The response is only filled in here; http_path.c sends it, counts it and logs it
 * once the handler has returned.
 */
#include "http/http.h"
#include "http/http_priv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"

void http_reply_text(struct http_response *resp, int status, const char *content_type, char *body,
                     size_t len)
{
	free(resp->body);
	resp->status = status;
	resp->body = body;
	resp->body_len = len;
	resp->content_type = content_type;
}

/* jansson allocates with malloc (the project never calls json_set_alloc_funcs),
 * so its output can be handed to the layer, which frees it with free(). */
void http_reply_json(struct http_response *resp, int status, json_t *body)
{
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (text == NULL) {
		text = strdup("{\"error\":\"internal\",\"message\":\"The response could not be "
		              "encoded.\"}");
		status = 500;
	}
	http_reply_text(resp, status, HTTP_JSON, text, text != NULL ? strlen(text) : 0);
}

void http_reply_code(struct http_response *resp, int status, const char *code, const char *msg)
{
	json_t *j = json_pack("{s:s, s:s}", "error", code, "message", msg);

	if (j == NULL) {
		/* A message that echoes bytes from the client may not be UTF-8: the client still
		 * gets its error, with those bytes as '?', rather than a 500. */
		char c[ERR_CODE_MAX], m[ERR_MSG_MAX];

		snprintf(c, sizeof(c), "%s", code);
		snprintf(m, sizeof(m), "%s", msg);
		utf8_sanitize(c);
		utf8_sanitize(m);
		j = json_pack("{s:s, s:s}", "error", c, "message", m);
	}
	http_reply_json(resp, status, j);
}

void http_reply_error(struct http_response *resp, const struct err *e)
{
	/* An internal error's message is for the log, not for the client. */
	if (e->kind == ERR_INTERNAL || err_http_status(e->kind) == 500) {
		http_reply_code(
		    resp, 500, "internal",
		    "Internal error; the X-Request-Id identifies it in the server log.");
		return;
	}
	http_reply_code(resp, err_http_status(e->kind), e->code[0] ? e->code : "error", e->msg);
}

void http_reply_errorf(struct http_response *resp, enum err_kind kind, const char *code,
                       const char *fmt, ...)
{
	struct err e = {.kind = kind};
	va_list ap;

	snprintf(e.code, sizeof(e.code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
	va_end(ap);
	http_reply_error(resp, &e);
}

void http_add_header(struct http_response *resp, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (resp->nheaders >= HTTP_MAX_HEADERS) {
		log_warn(NULL, "http: header %s dropped: more than %d headers", name,
		         HTTP_MAX_HEADERS);
		return;
	}
	resp->headers[resp->nheaders].name = name;
	va_start(ap, fmt);
	vsnprintf(resp->headers[resp->nheaders].value, sizeof(resp->headers[0].value), fmt, ap);
	va_end(ap);
	resp->nheaders++;
}
