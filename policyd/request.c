/*
 * request.c - the Postfix policy delegation protocol (SMTPD_POLICY_README):
 * "name=value" lines, one request ending with an empty line.  Only the
 * attributes anchor-policyd uses are kept; the others are counted.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "policyd.h"

void policy_request_reset(struct policy_request *r)
{
	memset(r, 0, sizeof(*r));
}

static void mark_bad(struct policy_request *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void mark_bad(struct policy_request *r, const char *fmt, ...)
{
	va_list ap;

	if (r->bad)
		return; /* the first fault is the one worth logging */
	r->bad = 1;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	for (char *p = r->why; *p; p++) /* it goes to the log */
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

struct attr {
	const char *name;
	size_t off, size;
};

#define A(n, f)                                                                                    \
	{                                                                                          \
		n, offsetof(struct policy_request, f), sizeof(((struct policy_request *)0)->f)     \
	}

static const struct attr kept[] = {
    A("request", request),
    A("protocol_state", protocol_state),
    A("client_address", client_address),
    A("helo_name", helo_name),
    A("sender", sender),
    A("recipient", recipient),
    A("queue_id", queue_id),
    A("instance", instance),
};

int policy_request_line(struct policy_request *r, const char *line, size_t len, int max_attrs)
{
	const char *eq;
	size_t nlen, vlen, i;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 1;
	if (++r->nattrs > max_attrs) {
		mark_bad(r, "more than %d attributes", max_attrs);
		return 0;
	}
	if (memchr(line, '\0', len) != NULL) {
		mark_bad(r, "a line holds a NUL octet");
		return 0;
	}
	eq = memchr(line, '=', len);
	if (eq == NULL || eq == line) {
		mark_bad(r, "a line is not name=value: \"%.*s\"", (int)(len > 40 ? 40 : len), line);
		return 0;
	}
	nlen = (size_t)(eq - line);
	vlen = len - nlen - 1;
	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		char *dst = (char *)r + kept[i].off;

		if (strlen(kept[i].name) != nlen || memcmp(kept[i].name, line, nlen) != 0)
			continue;
		if (vlen >= kept[i].size) {
			mark_bad(r, "attribute %s is too long", kept[i].name);
			return 0;
		}
		if (dst[0] != '\0') {
			mark_bad(r, "attribute %s appears twice", kept[i].name);
			return 0;
		}
		memcpy(dst, eq + 1, vlen);
		dst[vlen] = '\0';
		return 0;
	}
	return 0; /* an attribute we do not use */
}

int policy_request_check(const struct policy_request *r, struct err *e)
{
	unsigned char a[16];

	if (r->bad)
		return err_set(e, ERR_INPUT, "bad_request", "%s", r->why);
	if (strcmp(r->request, "smtpd_access_policy") != 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "request=%.32s is not smtpd_access_policy", r->request);
	if (r->client_address[0] == '\0')
		return err_set(e, ERR_INPUT, "bad_request", "no client_address attribute");
	if (inet_pton(AF_INET, r->client_address, a) != 1 &&
	    inet_pton(AF_INET6, r->client_address, a) != 1)
		return err_set(e, ERR_INPUT, "bad_request",
		               "client_address=%.64s is not an IP address", r->client_address);
	return 0;
}

void policy_sender_domain(const struct policy_request *r, char *out, size_t size)
{
	const char *at = strrchr(r->sender, '@');
	size_t i;

	out[0] = '\0';
	if (at == NULL || at[1] == '\0' || strlen(at + 1) >= size)
		return;
	for (i = 0; at[1 + i]; i++)
		out[i] = (char)tolower((unsigned char)at[1 + i]);
	out[i] = '\0';
}
