/*
 * peer_ext.c - the one SMTP extension hook of the inbound sessions (peer_ext.h).  Each
 * extension keeps its own commands (defer_smtp.c, partial_in.c); only the dispatch by
 * verb lives here, so the session layer needs one hook for any number of extensions.
 */
#include "peer_ext.h"

#include "defer.h"
#include "partial.h"
#include "relayd.h"

int relayd_peer_on_ext(void *ctx, struct smtp_session *s, const char *line, size_t len, int phase,
                       struct smtp_reply *r)
{
	if (smtp_verb_in(line, len, DEFER_VERBS)) {
		relayd_defer_on_command(ctx, s, line, len, r); /* else the pre-filled 502 stands */
		return SMTP_DECIDED;
	}
	return relayd_partial_on_ext(ctx, s, line, len, phase, r);
}
