/*
 * fuzz_relay_defer.c - ANCHOR-DEFER's parsers (lib/mail/defer_proto.c) on arbitrary peer
 * bytes: the command lines a peer sends the receiving relay, and the offer and status
 * lines the receiving relay sends back.  The first byte picks the parser; whatever one
 * accepts must format back into text that parses to the same value.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mail/defer_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char key[DEFER_SECRET_LEN] = "fuzz-fuzz-fuzz-fuzz-fuzz-fuzz-32";

static void command(const char *text, size_t len)
{
	enum defer_op op;
	char tok[DEFER_TOKEN_MAX], id[DEFER_ID_LEN + 1];
	struct err e = {0};
	int rc = defer_parse_command(text, len, &op, tok, &e);

	if (rc == 1 && (op == DEFER_OP_NONE || !defer_token_split(tok, id) ||
	                memcmp(id, tok, DEFER_ID_LEN) != 0))
		__builtin_trap();
	/* a token read off the wire never verifies without the secret */
	if (rc == 1 && defer_token_verify(key, tok, "b@d.test", "peer"))
		__builtin_trap();
}

static void offer(const char *text, size_t len)
{
	struct defer_offer o, p;
	char out[DEFER_RCPT_MAX + 2 * DEFER_TOKEN_MAX];
	struct err e = {0};

	if (defer_offer_parse(text, len, &o, &e) < 0)
		return;
	if (o.min < 1 || o.min > o.max || o.max > DEFER_WINDOW_MAX ||
	    !defer_token_split(o.token, NULL))
		__builtin_trap();
	if (defer_offer_format(&o, out, sizeof(out)) < 0 ||
	    defer_offer_parse(out, strlen(out), &p, &e) < 0 || memcmp(&o, &p, sizeof(o)) != 0)
		__builtin_trap();
}

static void status(const char *text, size_t len)
{
	struct defer_status st, again;
	char out[DEFER_REASON_MAX + 40];
	struct err e = {0};

	if (defer_status_parse(text, len, &st, &e) < 0)
		return;
	for (const char *p = st.reason; *p; p++) /* what reaches logs and the API is one line */
		if (*p == '\r' || *p == '\n')
			__builtin_trap();
	if (defer_status_format(&st, out, sizeof(out)) < 0 ||
	    defer_status_parse(out, strlen(out), &again, &e) < 0 || again.state != st.state)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[1024];

	if (size < 1 || size > sizeof(buf))
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		command(buf, size - 1);
		break;
	case 1:
		offer(buf, size - 1);
		break;
	default:
		status(buf, size - 1);
		break;
	}
	return 0;
}
