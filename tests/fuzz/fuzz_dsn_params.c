/*
 * fuzz_dsn_params.c - the DSN parameters (RFC 3461): xtext, RET, ENVID, NOTIFY and
 * ORCPT through lib/mail/dsn.h, and as MAIL/RCPT parameters through the SMTP
 * command parser.
 *
 * The first byte picks MAIL or RCPT; the rest is the parameter list.  Whatever
 * the parser takes must satisfy the checks the queue applies again (a value the
 * session accepted is never refused later), and decoding never overruns.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dsn.h"
#include "mail/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void values(const char *v, size_t n)
{
	char out[DSN_ORCPT_MAX + 1], fmt[64];
	enum dsn_ret r;
	unsigned notify;
	int len = dsn_xtext_decode(v, n, out, sizeof(out));

	if (len >= 0 && (size_t)len != strlen(out))
		abort();
	if (len >= 0 && !dsn_xtext_valid(v, n))
		abort();
	(void)dsn_ret_parse(v, n, &r);
	(void)dsn_envid_valid(v, n);
	(void)dsn_orcpt_valid(v, n);
	if (dsn_notify_parse(v, n, &notify) == 0) {
		unsigned again;

		dsn_notify_format(notify, fmt, sizeof(fmt));
		if (dsn_notify_parse(fmt, strlen(fmt), &again) != 0 || again != notify)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[SMTP_LINE_MAX + 64];
	struct smtp_command c;
	struct err e = {0};
	size_t pre, n;

	if (size == 0)
		return 0;
	values((const char *)data + 1, size - 1);
	pre = (size_t)snprintf(line, sizeof(line), "%s",
	                       data[0] & 1 ? "RCPT TO:<b@c.example> " : "MAIL FROM:<a@b.example> ");
	n = size - 1 < sizeof(line) - pre ? size - 1 : sizeof(line) - pre;
	memcpy(line + pre, data + 1, n);
	if (smtp_parse_command(line, pre + n, &c, &e) != 0)
		return 0;
	if (c.dsn_envid[0] && !dsn_envid_valid(c.dsn_envid, strlen(c.dsn_envid)))
		abort();
	if (c.dsn_orcpt[0] && !dsn_orcpt_valid(c.dsn_orcpt, strlen(c.dsn_orcpt)))
		abort();
	if ((c.dsn_notify & DSN_NOTIFY_NEVER) && c.dsn_notify != DSN_NOTIFY_NEVER)
		abort();
	return 0;
}
