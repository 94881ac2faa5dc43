/*
 * action.c - what anchor-policyd tells Postfix: a verdict, or a failure to get
 * one, mapped through the configured actions into one "action=" line.
 *
 * Reply texts carry enhanced status codes: 5.7.1 for a rejection, 4.7.1 for a
 * deferral (4.3.0 when the reputation service failed).
 */
#include <stdio.h>
#include <string.h>

#include "policyd.h"
#include "mail/repverdict.h"

static void render(enum policy_act act, const char *header, int failure, const char *label,
                   const char *text, char *out, size_t size)
{
	const char *st5 = "5.7.1", *st4 = failure ? "4.3.0" : "4.7.1";

	switch (act) {
	case POLICY_OK:
		snprintf(out, size, "action=OK\n\n");
		break;
	case POLICY_REJECT:
		snprintf(out, size, "action=REJECT %s %s\n\n", failure ? "5.3.0" : st5, text);
		break;
	case POLICY_DEFER:
		snprintf(out, size, "action=DEFER %s %s\n\n", st4, text);
		break;
	case POLICY_DEFER_IF_PERMIT:
		snprintf(out, size, "action=DEFER_IF_PERMIT %s %s\n\n", st4, text);
		break;
	case POLICY_PREPEND:
		snprintf(out, size, "action=PREPEND %s: %s; %s\n\n", header, label, text);
		break;
	default:
		snprintf(out, size, "action=DUNNO\n\n");
		break;
	}
}

void policy_action_line(const struct policy_actions *a, const char *header_name,
                        const struct policy_verdict *v, const char *why, char *out, size_t size)
{
	char text[300], reason[260];
	enum policy_act act;

	if (v == NULL) {
		repverdict_clean(why, reason, sizeof(reason));
		snprintf(text, sizeof(text), "reputation service unavailable: %.200s", reason);
		render(a->on_error, header_name, 1, "error", text, out, size);
		return;
	}
	repverdict_clean(v->reason, reason, sizeof(reason));
	if (strcmp(v->verdict, "block") == 0) {
		act = a->block;
		snprintf(text, sizeof(text), "client blocked by reputation%s%.200s",
		         reason[0] ? ": " : "", reason);
	} else {
		act = strcmp(v->verdict, "trusted") == 0 ? a->trusted
		      : strcmp(v->verdict, "known") == 0 ? a->known
		                                         : a->unknown;
		snprintf(text, sizeof(text), "%.200s", reason[0] ? reason : "no reason given");
	}
	render(act, header_name, 0, v->verdict, text, out, size);
}

int policy_verdict_from_json(const char *body, size_t len, struct policy_verdict *v, struct err *e)
{
	struct repverdict rv;

	memset(v, 0, sizeof(*v));
	if (repverdict_parse(body, len, &rv, e) < 0)
		return -1;
	snprintf(v->verdict, sizeof(v->verdict), "%s", rv.verdict);
	snprintf(v->reason, sizeof(v->reason), "%s", rv.reason);
	return 0;
}
