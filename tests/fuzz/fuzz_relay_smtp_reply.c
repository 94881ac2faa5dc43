/*
 * fuzz_relay_smtp_reply.c - the delivery client's reply parser
 * (relay/smtp_reply.c) on arbitrary peer bytes: whole replies, line by line
 * feeding, the one-line text and the EHLO keywords.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const struct relay_smtp_reply *r)
{
	char one[600];
	struct relay_smtp_caps caps;

	if (r->code < 200 || r->code > 559 || r->nlines < 1 || r->nlines > RELAY_REPLY_LINES_MAX)
		__builtin_trap();
	if (memchr(r->text, '\0', sizeof(r->text)) == NULL ||
	    memchr(r->enhanced, '\0', sizeof(r->enhanced)) == NULL)
		__builtin_trap();
	for (const char *p = r->text; *p; p++) /* what reaches logs and bounces is printable */
		if (*p != '\n' && (*p < 0x20 || *p > 0x7e))
			__builtin_trap();
	if (r->enhanced[0] != '\0' && r->enhanced[0] != (char)('0' + r->code / 100))
		__builtin_trap();
	relay_smtp_reply_oneline(r, one, sizeof(one));
	if (memchr(one, '\0', sizeof(one)) == NULL || strchr(one, '\n') != NULL)
		__builtin_trap();
	relay_smtp_caps_parse(r, &caps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct relay_smtp_reply r;
	struct err e;
	size_t pos = 0;

	/* consecutive whole replies, as a pipelining peer sends them */
	while (pos < size) {
		size_t used = 0;
		int rc;
		err_clear(&e);
		rc = relay_smtp_reply_parse(buf + pos, size - pos, &r, &used, &e);
		if (rc < 0) {
			if (strcmp(e.code, "bad_reply") != 0)
				__builtin_trap();
			break;
		}
		if (rc == 0)
			break;
		if (used == 0 || used > size - pos)
			__builtin_trap();
		check_reply(&r);
		pos += used;
	}
	return 0;
}
