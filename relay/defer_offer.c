/*
 * defer_offer.c - the sending side's reading of an ANCHOR-DEFER offer in a message's final
 * reply (defer_client.h, PROTOCOL.md §12.10); deliver.c calls it per recipient.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "defer_offer.h"
#include "mail/defer_proto.h"

void relay_defer_offer_result(const struct relay_hop *hop, const struct relay_smtp_reply *rep,
                              const char *rcpt, struct relay_rcpt_result *res)
{
	const char *p = rep->text, *nl;
	struct defer_offer o;
	struct err e = {0};

	if (rep->code / 100 != 2 || hop->unix_socket)
		return;
	for (; p != NULL && *p != '\0'; p = nl != NULL ? nl + 1 : NULL) {
		size_t len;
		const char *sp = strchr(p, ' ');

		nl = strchr(p, '\n');
		len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (sp == NULL || sp >= p + len || strncmp(p, "2.1.5 ", 6) != 0)
			continue;
		if (defer_offer_parse(p + 6, len - 6, &o, &e) < 0 || strcasecmp(o.rcpt, rcpt) != 0)
			continue;
		if (snprintf(res->reply, sizeof(res->reply),
		             RELAY_DEFER_MARK "%s %u %u %s:%s%s%s:%u %s %s %lld", o.token, o.min,
		             o.max, hop->proto == RELAY_PROTO_LMTP ? "lmtp" : "smtp",
		             strchr(hop->host, ':') ? "[" : "", hop->host,
		             strchr(hop->host, ':') ? "]" : "", (unsigned)hop->port,
		             hop->pin[0] ? hop->pin : "-", hop->tls_name[0] ? hop->tls_name : "-",
		             (long long)time(NULL)) < (int)sizeof(res->reply))
			res->status = QUEUE_DEFERRED;
		else /* cannot be kept: the message's 2xx stands */
			log_warn(NULL, "ANCHOR-DEFER offer for <%s>: the hop is too long to keep",
			         rcpt);
		return;
	}
}
