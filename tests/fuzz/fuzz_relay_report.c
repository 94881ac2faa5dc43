/*
 * fuzz_relay_report.c - the relay's reading of a complained-about message
 * (relay/reputation.c: its own Received and Authentication-Results fields,
 * From, Message-ID) on arbitrary bytes, and the DSN builder (relay/bounce.c)
 * with the same bytes as the original message and as a recipient's reply.
 * Any payload made must be a JSON object with 1..8 well-formed subjects; any
 * DSN must have CRLF lines of at most 998 octets.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_payload(const char *text)
{
	json_t *p = json_loads(text, 0, NULL), *subjects, *s;
	size_t i;

	subjects = json_object_get(p, "subjects");
	if (!json_is_array(subjects) || json_array_size(subjects) < 1 ||
	    json_array_size(subjects) > 8)
		__builtin_trap();
	json_array_foreach(subjects, i, s)
	{
		const char *v = json_string_value(s);

		if (v == NULL || strchr(v, ':') == NULL)
			__builtin_trap();
		for (; *v; v++)
			if (*v <= ' ' || *v > 0x7e || *v == ',' || *v == '"')
				__builtin_trap();
	}
	json_decref(p);
}

static void check_dsn(const char *m, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\r' && (i + 1 >= len || m[i + 1] != '\n'))
			__builtin_trap();
		if (m[i] == '\n') {
			if (i == 0 || m[i - 1] != '\r' || i - 1 - start > 998)
				__builtin_trap();
			start = i + 1;
		}
	}
	if (start != len)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct relay_rep *rep;
	struct relay_settings s;
	struct queue_rcpt rcpt[2];
	struct queue_msg m;
	const size_t failed[] = {0, 1};
	char sender[] = "alice@example.org", addr[] = "bob@example.net", *reply, *text, *dsn;
	struct err e;
	size_t len;

	memset(&s, 0, sizeof(s));
	s.hostname = "mx.relay.example";
	s.own_networks = "127.0.0.1, ::1, 10.0.0.0/8"; /* the own-hop walk */
	s.own_hosts = "mail.relay.example";
	s.local_domains = "relay.example";
	s.reporter_domain = "relay.example";
	if (rep == NULL && (rep = relay_rep_new(&s, &e)) == NULL)
		__builtin_trap();
	text = relay_rep_report_payload(rep, (const char *)data, size, "spam", 1893456000, &e);
	if (text != NULL)
		check_payload(text);
	free(text);

	reply = malloc(size + 1);
	if (reply == NULL)
		return 0;
	memcpy(reply, data, size);
	reply[size] = '\0';
	memset(&m, 0, sizeof(m));
	memset(rcpt, 0, sizeof(rcpt));
	strcpy(m.id, "0123456789abcdef0123456789abcdef");
	m.sender = sender;
	m.nrcpt = 2;
	m.rcpts = rcpt;
	rcpt[0].addr = addr;
	rcpt[0].reply = reply;
	rcpt[1].addr = addr;
	rcpt[1].reply = "expired in queue; last reply: 451 4.4.1 timeout";
	dsn = relay_bounce_build(&s, &m, (const char *)data, size, failed, 2, &len, &e);
	if (dsn == NULL)
		__builtin_trap();
	check_dsn(dsn, len);
	free(dsn);
	free(reply);
	return 0;
}
