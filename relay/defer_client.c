/*
 * defer_client.c - ANCHOR-DEFER on the sending side (defer_client.h, PROTOCOL.md §12.9).
 * The awaiting state lives in the queue record itself (a deferred recipient whose reply
 * starts "ANCHOR-DEFER "), so it survives restarts with the message and needs no store
 * of its own.
 */
#include "defer_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "defer_offer.h"
#include "mail/defer_proto.h"

/* The awaiting reply back into token and hop; -1 when it is not one. */
static int awaiting(const char *reply, char token[DEFER_TOKEN_MAX], struct relay_hop *hop)
{
	char spec[300], pin[64], name[256];
	unsigned mn, mx;
	struct err e = {0};

	if (strncmp(reply, RELAY_DEFER_MARK, strlen(RELAY_DEFER_MARK)) != 0 ||
	    sscanf(reply + strlen(RELAY_DEFER_MARK), "%97s %u %u %299s %63s %255s", token, &mn, &mx,
	           spec, pin, name) != 6 ||
	    !defer_token_split(token, NULL) || relay_hop_parse(spec, hop, &e) < 0)
		return -1;
	hop->tls_required = 1; /* the token goes only where the message went: over TLS */
	if (strcmp(pin, "-") != 0)
		memcpy(hop->pin, pin, sizeof(hop->pin));
	if (strcmp(name, "-") != 0)
		memcpy(hop->tls_name, name, sizeof(hop->tls_name));
	return 0;
}

/* The decision in rep for one recipient: its new status and reply. */
static enum queue_status decision(const struct relay_smtp_reply *rep, const char *old, char *why,
                                  size_t size)
{
	struct defer_status st;
	struct err e = {0};
	const char *text = strncmp(rep->text, "2.0.0 ", 6) == 0 ? rep->text + 6 : rep->text;

	if (rep->code / 100 == 4 || rep->code == 0) {
		snprintf(why, size, "%s", old); /* keep asking, the state is unchanged */
		return QUEUE_DEFERRED;
	}
	if (rep->code / 100 != 2 || defer_status_parse(text, strlen(text), &st, &e) < 0) {
		snprintf(why, size, "ANCHOR-DEFER status refused: %d %.300s", rep->code, rep->text);
		return QUEUE_FAILED;
	}
	switch (st.state) {
	case DEFER_PENDING:
		snprintf(why, size, "%s", old);
		return QUEUE_DEFERRED;
	case DEFER_ACCEPTED:
		snprintf(why, size, "ANCHOR-DEFER accepted by the recipient's relay");
		return QUEUE_DELIVERED;
	case DEFER_REFUSED:
		snprintf(why, size, "ANCHOR-DEFER refused: %s", st.reason);
		return QUEUE_FAILED;
	default:
		snprintf(why, size, "ANCHOR-DEFER %s", defer_state_name(st.state));
		return QUEUE_FAILED;
	}
}

/* Ask about one awaiting recipient and record the answer; never a bounce. */
static void poll_one(const struct relay_settings *s, struct queue *q, const struct queue_msg *m,
                     size_t k, const char *token, const struct relay_hop *hop)
{
	struct relay_smtp_reply rep = {0};
	char line[DEFER_TOKEN_MAX + 20], why[QUEUE_REPLY_MAX];
	enum queue_status to;
	struct err e = {0};

	snprintf(line, sizeof(line), "DEFER-STATUS %s", token);
	if (relay_deliver_command(s, hop, line, &rep, &e) < 0)
		log_info(m->id, "to=<%s> ANCHOR-DEFER status: %s", m->rcpts[k].addr, e.msg);
	to = decision(&rep, m->rcpts[k].reply, why, sizeof(why));
	log_info(m->id, "to=<%s> status=%s %s", m->rcpts[k].addr, queue_status_name(to), why);
	/* a deferral keeps the token; an expired message is failed by the queue (no bounce
	 * either: its reply says ANCHOR-DEFER) */
	if (queue_mark(q, m->id, k, to, why, (int64_t)time(NULL), &e) < 0)
		log_err(m->id, "cannot record the decision for <%s>: %s", m->rcpts[k].addr, e.msg);
}

void relay_defer_poll(const struct relay_settings *s, struct queue *q, const struct queue_msg *m,
                      size_t *idx, char **addrs, size_t *n)
{
	size_t i = 0;

	while (i < *n) {
		char token[DEFER_TOKEN_MAX];
		struct relay_hop hop;

		memset(&hop, 0, sizeof(hop));
		if (idx[i] >= m->nrcpt || awaiting(m->rcpts[idx[i]].reply, token, &hop) < 0) {
			i++;
			continue;
		}
		poll_one(s, q, m, idx[i], token, &hop);
		free(addrs[i]);
		idx[i] = idx[*n - 1];
		addrs[i] = addrs[*n - 1];
		addrs[--*n] = NULL;
	}
}
