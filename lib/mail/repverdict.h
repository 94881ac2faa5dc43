/*
 * repverdict.h - the answer of anchor-reputation's GET /v1/query (PROTOCOL.md
 * §11.2) reduced to what its clients act on: the verdict, the CSA result and
 * the reason that decided it.  Shared by anchor-policyd and anchor-relay.
 */
#ifndef ANCHOR_REPVERDICT_H
#define ANCHOR_REPVERDICT_H

#include <stddef.h>

#include "core/err.h"

struct repverdict {
	char verdict[16]; /* trusted | known | unknown | block */
	char csa[16];     /* the "csa" member's result ("pass", "fail", ...); "" when absent */
	char reason[256]; /* the deciding reason's text (a listing for a block), printable ASCII; ""
	                   */
};

/* Parse the JSON answer.  Anything that is not an object with one of the four
 * verdicts is ERR_UNPROC "bad_answer"; a malformed csa member is ignored. */
int repverdict_parse(const char *body, size_t len, struct repverdict *v, struct err *e);

/* in reduced to one line of printable ASCII (others become ' '), at most size-1 octets. */
void repverdict_clean(const char *in, char *out, size_t size);

#endif
