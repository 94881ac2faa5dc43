/*
 * defer_client.c - ANCHOR-DEFER on the sending side (defer_client.h, PROTOCOL.md §12.10).
 * The awaiting state lives in the queue record itself (a deferred recipient whose reply
 * starts "ANCHOR-DEFER "), so it survives restarts with the message and needs no store
 * of its own.  A withdrawn one ("ANCHOR-DEFER-WITHDRAW ") and one still awaiting when the
 * message outlives queue_lifetime are withdrawn at the peer (DEFER-WITHDRAW): the sender
 * gives up, and between anchored relays that is never a bounce.
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

/* A recipient awaiting a decision, as its queue reply keeps it. */
struct await {
	char token[DEFER_TOKEN_MAX];
	unsigned min, max; /* the latest window */
	long long asked;   /* when it was offered or last asked about */
	int withdraw;      /* the sending user withdrew it: DEFER-WITHDRAW, not DEFER-STATUS */
	char spec[300], pin[64], name[256];
	struct relay_hop hop;
};

/* The next blank-separated word of *p into out (size octets with the NUL); -1 when none. */
static int next_word(const char **p, char *out, size_t size)
{
	const char *s = *p + strspn(*p, " ");
	size_t n = strcspn(s, " ");

	if (n == 0 || n >= size)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s + n;
	return 0;
}

/* A decimal number of at most 12 digits. */
static int number(const char **p, long long *out)
{
	char w[16], *end;

	if (next_word(p, w, sizeof(w)) < 0 || w[0] < '0' || w[0] > '9')
		return -1;
	*out = strtoll(w, &end, 10);
	return *end == '\0' ? 0 : -1;
}

/* The awaiting reply back into *w; -1 when it is not one. */
static int awaiting(const char *reply, struct await *w)
{
	int withdraw =
	    strncmp(reply, RELAY_DEFER_WITHDRAW_MARK, strlen(RELAY_DEFER_WITHDRAW_MARK)) == 0;
	const char *p = reply + strlen(withdraw ? RELAY_DEFER_WITHDRAW_MARK : RELAY_DEFER_MARK);
	long long mn, mx;
	struct err e = {0};

	memset(w, 0, sizeof(*w));
	if ((!withdraw && strncmp(reply, RELAY_DEFER_MARK, strlen(RELAY_DEFER_MARK)) != 0) ||
	    next_word(&p, w->token, sizeof(w->token)) < 0 || number(&p, &mn) < 0 ||
	    number(&p, &mx) < 0 || next_word(&p, w->spec, sizeof(w->spec)) < 0 ||
	    next_word(&p, w->pin, sizeof(w->pin)) < 0 ||
	    next_word(&p, w->name, sizeof(w->name)) < 0 || number(&p, &w->asked) < 0 || mn < 1 ||
	    mx < mn || mx > DEFER_WINDOW_MAX || !defer_token_split(w->token, NULL) ||
	    relay_hop_parse(w->spec, &w->hop, &e) < 0)
		return -1;
	w->min = (unsigned)mn;
	w->max = (unsigned)mx;
	w->withdraw = withdraw;
	w->hop.tls_required = 1; /* the token goes only where the message went: over TLS */
	if (strcmp(w->pin, "-") != 0)
		memcpy(w->hop.pin, w->pin, sizeof(w->hop.pin));
	if (strcmp(w->name, "-") != 0)
		memcpy(w->hop.tls_name, w->name, sizeof(w->hop.tls_name));
	return 0;
}

static void await_reply(const struct await *w, char *out, size_t size)
{
	if (snprintf(out, size, "%s%s %u %u %s %s %s %lld",
	             w->withdraw ? RELAY_DEFER_WITHDRAW_MARK : RELAY_DEFER_MARK, w->token, w->min,
	             w->max, w->spec, w->pin, w->name, w->asked) >= (int)size)
		out[0] = '\0';
}

/* The decision in rep for one recipient: its new status and reply (w updated). */
static enum queue_status decision(const struct relay_smtp_reply *rep, struct await *w, char *why,
                                  size_t size)
{
	struct defer_status st;
	struct err e = {0};
	const char *text = strncmp(rep->text, "2.0.0 ", 6) == 0 ? rep->text + 6 : rep->text;

	if (rep->code / 100 == 4 || rep->code == 0) {
		await_reply(w, why, size); /* keep asking, the state is unchanged */
		return QUEUE_DEFERRED;
	}
	if (rep->code / 100 != 2 || defer_status_parse(text, strlen(text), &st, &e) < 0) {
		snprintf(why, size, "ANCHOR-DEFER status refused: %d %.300s", rep->code, rep->text);
		return QUEUE_FAILED;
	}
	switch (st.state) {
	case DEFER_PENDING:
		w->min = st.min; /* the receiver's latest window */
		w->max = st.max;
		await_reply(w, why, size);
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

/* Send "<verb> <token>" to the peer; the reply in *rep (code 0 when none came). */
static void ask(const struct relay_settings *s, const struct queue_msg *m, size_t k,
                const struct await *w, const char *verb, struct relay_smtp_reply *rep)
{
	char line[DEFER_TOKEN_MAX + 20];
	struct err e = {0};

	memset(rep, 0, sizeof(*rep));
	snprintf(line, sizeof(line), "%s %s", verb, w->token);
	if (relay_deliver_command(s, &w->hop, line, rep, &e) < 0)
		log_info(m->id, "to=<%s> ANCHOR-DEFER %s: %s", m->rcpts[k].addr, verb, e.msg);
}

/*
 * DEFER-WITHDRAW for one recipient; *why its final reply.  WITHDRAWN (or a replay's "already
 * withdrawn") fails it; a decision that came first is asked for and stands; a peer that
 * cannot be reached is asked again after the backoff, unless the sender gives up (past
 * give_up): then it fails all the same.  Never a bounce.
 */
static enum queue_status withdraw_at_peer(const struct relay_settings *s, const struct queue_msg *m,
                                          size_t k, struct await *w, int give_up, char *why,
                                          size_t size)
{
	struct relay_smtp_reply rep;
	enum queue_status to;

	ask(s, m, k, w, "DEFER-WITHDRAW", &rep);
	if (rep.code == 554 && strstr(rep.text, "already withdrawn") != NULL) {
		snprintf(why, size, "ANCHOR-DEFER WITHDRAWN");
		return QUEUE_FAILED;
	}
	if (rep.code == 550) { /* decided before the withdrawal came: that decision stands */
		w->withdraw = 0;
		ask(s, m, k, w, "DEFER-STATUS", &rep);
	}
	to = decision(&rep, w, why, size);
	if (to == QUEUE_DEFERRED && give_up) {
		snprintf(why, size, "ANCHOR-DEFER given up: the peer could not be told (%d %.300s)",
		         rep.code, rep.text);
		return QUEUE_FAILED;
	}
	return to;
}

/* The user's withdrawal, or the sender giving up at the end of the queue's lifetime. */
static void withdraw_one(const struct relay_settings *s, struct queue *q, const struct queue_msg *m,
                         size_t k, struct await *w)
{
	char why[QUEUE_REPLY_MAX];
	long long now = (long long)time(NULL);
	int give_up = now >= (long long)m->arrival + s->queue_lifetime;
	enum queue_status to;
	struct err e = {0};

	w->withdraw = 1;
	w->asked = now;
	to = withdraw_at_peer(s, m, k, w, give_up, why, sizeof(why));
	log_info(m->id, "to=<%s> status=%s %s", m->rcpts[k].addr, queue_status_name(to), why);
	if (queue_mark_at(q, m->id, k, to, why, now, 0, &e) < 0)
		log_err(m->id, "cannot record the withdrawal for <%s>: %s", m->rcpts[k].addr,
		        e.msg);
}

void relay_defer_give_up(const struct relay_settings *s, struct queue_msg *m)
{
	static const char expired[] = "expired in queue; last reply: ";

	for (size_t k = 0; k < m->nrcpt; k++) {
		struct await w;
		char why[QUEUE_REPLY_MAX], *r;

		if (m->rcpts[k].status != QUEUE_FAILED ||
		    strncmp(m->rcpts[k].reply, expired, strlen(expired)) != 0 ||
		    awaiting(m->rcpts[k].reply + strlen(expired), &w) < 0)
			continue;
		w.withdraw = 1;
		if (withdraw_at_peer(s, m, k, &w, 1, why, sizeof(why)) == QUEUE_DEFERRED)
			continue; /* cannot be: give_up turns it into a failure */
		log_info(m->id, "to=<%s> given up: %s", m->rcpts[k].addr, why);
		if ((r = strdup(why)) != NULL) {
			free(m->rcpts[k].reply);
			m->rcpts[k].reply = r;
		}
	}
}

int relay_defer_no_bounce(const char *reply)
{
	static const char expired[] = "expired in queue; last reply: ";

	if (strncmp(reply, expired, strlen(expired)) == 0)
		reply += strlen(expired);
	return strncmp(reply, "ANCHOR-DEFER", 12) == 0;
}

/* 1 when the user withdrew recipient k while its status was being asked for (the control
 * API marked it meanwhile): the answer must not overwrite the withdrawal. */
static int withdrawn_meanwhile(struct queue *q, const char *id, size_t k)
{
	struct err e = {0};
	struct queue_msg *now = queue_msg_get(q, id, &e);
	int yes = now != NULL && k < now->nrcpt &&
	          strncmp(now->rcpts[k].reply, RELAY_DEFER_WITHDRAW_MARK,
	                  strlen(RELAY_DEFER_WITHDRAW_MARK)) == 0;

	queue_msg_free(now);
	return yes;
}

/* Ask about one awaiting recipient (not before its window opens) and record the answer;
 * the next question at the start of the window the answer gives.  Never a bounce. */
static void poll_one(const struct relay_settings *s, struct queue *q, const struct queue_msg *m,
                     size_t k, struct await *w)
{
	struct relay_smtp_reply rep;
	char why[QUEUE_REPLY_MAX];
	enum queue_status to;
	struct err e = {0};
	long long now = (long long)time(NULL), next;

	if (w->withdraw || now >= (long long)m->arrival + s->queue_lifetime) {
		withdraw_one(s, q, m, k, w);
		return;
	}
	if (now < w->asked + w->min) { /* due by the backoff, too early for the peer */
		await_reply(w, why, sizeof(why));
		queue_mark_at(q, m->id, k, QUEUE_DEFERRED, why, now, w->asked + w->min, &e);
		return;
	}
	ask(s, m, k, w, "DEFER-STATUS", &rep);
	w->asked = now;
	to = decision(&rep, w, why, sizeof(why));
	next = now + w->min;
	if (to == QUEUE_DEFERRED && withdrawn_meanwhile(q, m->id, k)) {
		w->withdraw = 1; /* still pending: the user's withdrawal stands, due at once */
		await_reply(w, why, sizeof(why));
		next = now;
	}
	log_info(m->id, "to=<%s> status=%s %s", m->rcpts[k].addr, queue_status_name(to), why);
	/* a deferral keeps the token; past the queue's lifetime the queue fails it */
	if (queue_mark_at(q, m->id, k, to, why, now, to == QUEUE_DEFERRED ? next : 0, &e) < 0)
		log_err(m->id, "cannot record the decision for <%s>: %s", m->rcpts[k].addr, e.msg);
}

void relay_defer_poll(const struct relay_settings *s, struct queue *q, const struct queue_msg *m,
                      size_t *idx, char **addrs, size_t *n)
{
	size_t i = 0;

	while (i < *n) {
		struct await w;

		if (idx[i] >= m->nrcpt || awaiting(m->rcpts[idx[i]].reply, &w) < 0) {
			i++;
			continue;
		}
		poll_one(s, q, m, idx[i], &w);
		free(addrs[i]);
		idx[i] = idx[*n - 1];
		addrs[i] = addrs[*n - 1];
		addrs[--*n] = NULL;
	}
}
