/*
 * fuzz_smtp_command.c - smtp_parse_command on arbitrary lines, with and
 * without AUTH (SMTP_PARSE_AUTH), and the base64 decoder of AUTH responses.
 * BDAT (RFC 3030): a chunk size is known exactly when the line is a BDAT
 * whose size could be read (the session reads that many octets, also after
 * a refusal), and then it is the decimal number on the line.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "mail/smtp.h"
#include "pki/name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_base64(const uint8_t *data, size_t size)
{
	unsigned char out[1024];
	long n;

	if (size > 1024)
		return;
	n = smtp_base64_decode((const char *)data, size, out, sizeof(out));
	if (n >= 0 && (size % 4 != 0 || (size_t)n > size / 4 * 3 || (size_t)n + 3 <= size / 4 * 3))
		__builtin_trap();
}

/* The BDAT size on the line (after "BDAT "), as the session will read it. */
static void check_bdat(const uint8_t *data, size_t size, const struct smtp_command *cmd)
{
	uint64_t n = 0;
	size_t i;

	if (cmd->chunk_known && (cmd->verb != SMTP_BDAT || size < 6))
		__builtin_trap();
	if (!cmd->chunk_known) {
		if (cmd->chunk_size != 0 || cmd->chunk_last)
			__builtin_trap();
		return;
	}
	for (i = 5; i < size && data[i] >= '0' && data[i] <= '9'; i++)
		n = n * 10 + (uint64_t)(data[i] - '0');
	if (i == 5 || n != cmd->chunk_size)
		__builtin_trap();
}

static void check_one(const uint8_t *data, size_t size, int opts)
{
	struct smtp_command cmd;
	struct err e;
	unsigned char scratch[SMTP_LINE_MAX];
	char canon[256];
	int code;

	err_clear(&e);
	if (smtp_parse_command_opts((const char *)data, size, opts, &cmd, &e) == 0) {
		if (cmd.verb == SMTP_NONE || size + 2 > SMTP_LINE_MAX ||
		    memchr(cmd.arg, '\0', sizeof(cmd.arg)) == NULL ||
		    memchr(cmd.path, '\0', sizeof(cmd.path)) == NULL)
			__builtin_trap();
		/* what the relay relies on: a non-null path is a valid mailbox, a UTF-8 one
		 * (RFC 6531) a valid internationalised address with its domain in A-labels */
		if ((cmd.verb == SMTP_MAIL || cmd.verb == SMTP_RCPT) && !cmd.null_path &&
		    strcasecmp(cmd.path, "postmaster") != 0 &&
		    (cmd.path_utf8 ? name_canon_address(cmd.path, canon, sizeof(canon), &e) != 0 ||
		                         !name_is_ascii(strrchr(cmd.path, '@'))
		                   : !smtp_mailbox_valid(cmd.path, strlen(cmd.path))))
			__builtin_trap();
		/* 8-bit only in a path read as UTF-8 (a U-label domain alone comes out ASCII) */
		if (!cmd.path_utf8 && !name_is_ascii(cmd.path))
			__builtin_trap();
		if (cmd.null_path && cmd.verb != SMTP_MAIL)
			__builtin_trap();
		if (cmd.verb == SMTP_BDAT && !cmd.chunk_known)
			__builtin_trap();
		if (cmd.requiretls && cmd.verb != SMTP_MAIL) /* RFC 8689: a MAIL parameter */
			__builtin_trap();
		if (strpbrk(cmd.arg, "\r\n") != NULL || strpbrk(cmd.path, "\r\n") != NULL)
			__builtin_trap();
		/* AUTH only when asked for; its mechanism is a SASL name, its response base64 */
		if (cmd.verb == SMTP_AUTH) {
			if (!(opts & SMTP_PARSE_AUTH) || cmd.mech[0] == '\0' ||
			    strlen(cmd.mech) > 20 ||
			    strspn(cmd.mech, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			                     "0123456789-_") != strlen(cmd.mech))
				__builtin_trap();
			if (smtp_base64_decode(cmd.arg, strlen(cmd.arg), scratch, sizeof(scratch)) <
			    0)
				__builtin_trap();
			if (!cmd.has_initial && cmd.arg[0] != '\0')
				__builtin_trap();
		}
	} else {
		code = cmd.error.code;
		if (code != 500 && code != 501 && code != 502 && code != 552 && code != 555)
			__builtin_trap();
		if (e.kind != ERR_INPUT || cmd.error.status[0] != (char)('0' + code / 100))
			__builtin_trap();
		if (cmd.verb == SMTP_BDAT && code != 501)
			__builtin_trap();
	}
	check_bdat(data, size, &cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_one(data, size, 0);
	check_one(data, size, SMTP_PARSE_AUTH);
	check_base64(data, size);
	return 0;
}
