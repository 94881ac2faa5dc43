/*
 * http_gate.h - the checks every HTTP request passes before any handler sees it.
 *
 * Pure functions over bytes (no libmicrohttpd), so that they can be fuzzed and
 * unit tested; lib/http/http_path.c runs them for every daemon.  Two gates:
 *
 *  - the request target (path and query string, as sent on the request line,
 *    before percent-decoding): every '%' must start a %XX escape, no raw
 *    control byte, and the decoded bytes must hold no NUL and be valid UTF-8.
 *    libmicrohttpd hands the handlers NUL-terminated decoded strings, so a
 *    %00 would otherwise cut a name short ("demo.example%00.evil" read as
 *    "demo.example"), and invalid UTF-8 could not be echoed in a JSON error;
 *
 *  - the message framing (RFC 9112 §6): at most one Content-Length, a plain
 *    decimal; at most one Transfer-Encoding, exactly "chunked", never with a
 *    Content-Length nor in HTTP/1.0; field names are tokens (no whitespace
 *    before the colon).  libmicrohttpd reads only the first Content-Length,
 *    so a second one, or one it does not recognise, would let the bytes of a
 *    body be read as a second request.
 *
 * A refusal is a verdict; http_gate_refusal() says what the client is told.
 */
#ifndef ANCHOR_HTTP_GATE_H
#define ANCHOR_HTTP_GATE_H

#include <stddef.h>
#include <stdint.h>

enum http_gate_verdict {
	HTTP_GATE_OK = 0,
	HTTP_GATE_BAD_ESCAPE,     /* '%' not followed by two hex digits */
	HTTP_GATE_RAW_CONTROL,    /* a raw control byte in the target */
	HTTP_GATE_NUL,            /* %00 */
	HTTP_GATE_BAD_UTF8,       /* decoded bytes are not UTF-8 */
	HTTP_GATE_CL_REPEATED,    /* Content-Length more than once */
	HTTP_GATE_CL_INVALID,     /* Content-Length not a plain decimal */
	HTTP_GATE_CL_AND_TE,      /* both Content-Length and Transfer-Encoding */
	HTTP_GATE_TE_REPEATED,    /* Transfer-Encoding more than once */
	HTTP_GATE_TE_HTTP10,      /* Transfer-Encoding in an HTTP/1.0 request */
	HTTP_GATE_TE_UNSUPPORTED, /* a transfer coding other than "chunked" */
	HTTP_GATE_BAD_FIELD,      /* a field name that is not a token, or a NUL in a value */
	HTTP_GATE_NVERDICTS
};

/* What the client gets for a verdict: status, JSON "error" code, "message". */
struct http_gate_refusal {
	int status;
	const char *code;
	const char *message;
	int close; /* 1: the framing is in doubt, the connection is closed after the answer */
};

/* The refusal for a verdict other than HTTP_GATE_OK (NULL for OK or out of range).
 * The pointers are static and distinct per verdict. */
const struct http_gate_refusal *http_gate_refusal(enum http_gate_verdict v);
/* The verdict whose refusal p is, or HTTP_GATE_OK when p is none of them. */
enum http_gate_verdict http_gate_refusal_verdict(const void *p);

/* The request target as sent (path, optionally "?" and the query string). */
enum http_gate_verdict http_gate_target(const char *target, size_t len);

/* Framing: feed every header field in turn, then call _end. */
struct http_gate_framing {
	int http10;
	int n_length;                   /* Content-Length fields seen */
	int n_encoding;                 /* Transfer-Encoding fields seen */
	enum http_gate_verdict verdict; /* the first refusal, sticky */
	uint64_t length;                /* the Content-Length (UINT64_MAX when it overflows) */
};

void http_gate_framing_init(struct http_gate_framing *st, int http10);
/* Returns the verdict so far (the first refusal stays). */
enum http_gate_verdict http_gate_framing_field(struct http_gate_framing *st, const char *name,
                                               size_t name_len, const char *value,
                                               size_t value_len);
/* The final verdict; on OK, *has_body is 1 when a body follows (a non-zero Content-Length
 * or chunked) and *chunked says which. */
enum http_gate_verdict http_gate_framing_end(const struct http_gate_framing *st, int *has_body,
                                             int *chunked);

#endif
