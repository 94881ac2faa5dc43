/* fuzz_smtp_command.c - smtp_parse_command on arbitrary lines. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_command cmd;
	struct err e;
	int code;

	err_clear(&e);
	if (smtp_parse_command((const char *)data, size, &cmd, &e) == 0) {
		if (cmd.verb == SMTP_NONE || size + 2 > SMTP_LINE_MAX ||
		    memchr(cmd.arg, '\0', sizeof(cmd.arg)) == NULL ||
		    memchr(cmd.path, '\0', sizeof(cmd.path)) == NULL)
			__builtin_trap();
		/* what the relay relies on: a non-null path is a valid mailbox */
		if ((cmd.verb == SMTP_MAIL || cmd.verb == SMTP_RCPT) && !cmd.null_path &&
		    strcasecmp(cmd.path, "postmaster") != 0 &&
		    !smtp_mailbox_valid(cmd.path, strlen(cmd.path)))
			__builtin_trap();
		if (cmd.null_path && cmd.verb != SMTP_MAIL)
			__builtin_trap();
		if (strpbrk(cmd.arg, "\r\n") != NULL || strpbrk(cmd.path, "\r\n") != NULL)
			__builtin_trap();
	} else {
		code = cmd.error.code;
		if (code != 500 && code != 501 && code != 502 && code != 552 && code != 555)
			__builtin_trap();
		if (e.kind != ERR_INPUT || cmd.error.status[0] != (char)('0' + code / 100))
			__builtin_trap();
	}
	return 0;
}
