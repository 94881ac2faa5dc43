/*
 * author.c - what a message's verified signatures say about its authors
 * (the mailboxes of its From field): which author domains they verify
 * (relaxed alignment), which of those domains publish an anchor and in which
 * mode, the summary for the logs, and the rule that refuses or defers a
 * message after DATA (relay_auth_refusal).  The signatures themselves are
 * verify.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/discover.h"
#include "dns/dns.h"
#include "pki/cert.h"
#include "pki/name.h"
#include "relay.h"

/* The authors (relay_message_authors); from_addr/from_domain when there is one. */
void relay_auth_authors(const struct dkim_msg *m, struct relay_auth *a)
{
	struct err e = {0};

	if (relay_message_authors_opt(m->buf, m->len, a->smtputf8, &a->authors, &e) < 0) {
		snprintf(a->from_error, sizeof(a->from_error), "%s", e.msg);
		return;
	}
	if (a->authors.n == 1) {
		snprintf(a->from_addr, sizeof(a->from_addr), "%s", a->authors.a[0].addr);
		snprintf(a->from_domain, sizeof(a->from_domain), "%s", a->authors.a[0].domain);
	}
}

/* d= equals the author domain or is a parent of it (relaxed alignment), both compared
 * in canonical form (dns_name_canon: case and a trailing dot do not matter); a
 * top-level d= aligns with nothing. */
static int aligned(const char *d, const char *author_domain)
{
	char canon[DNS_NAME_MAX];
	struct err ignore = {0};

	if (dns_name_canon(d, canon, sizeof(canon), &ignore) < 0 || strchr(canon, '.') == NULL)
		return 0;
	return name_in_domain(author_domain, canon);
}

/* Whether each author domain publishes an anchor, and in which mode. */
static void authors_anchor(const struct relay_verify_net *net, struct relay_auth *a)
{
	int testing_only = 1;

	for (size_t k = 0; k < a->authors.n; k++) {
		struct relay_author *au = &a->authors.a[k];
		struct discover_result *d = NULL;
		struct err e = {0};
		size_t same = 0;

		while (same < k && strcmp(a->authors.a[same].domain, au->domain) != 0)
			same++;
		if (same < k) { /* the same domain twice: asked once */
			au->anchored = a->authors.a[same].anchored;
			au->testing = a->authors.a[same].testing;
			au->undiscovered = a->authors.a[same].undiscovered;
		} else if (net->discover(net->ctx, au->domain, &d, &e) < 0 || d == NULL ||
		           d->status == DISCOVER_ERROR) {
			au->undiscovered = 1;
		} else if (d->status == DISCOVER_ANCHORED) {
			au->anchored = 1;
			au->testing = d->mode == DNS_MODE_TESTING;
		}
		discover_result_free(d);
		if (au->anchored) {
			a->sender_anchored = 1;
			testing_only &= au->testing;
		}
	}
	a->sender_mode_testing = a->sender_anchored && testing_only;
}

/* What the signatures say about each author domain. */
static void authors_verified(struct relay_auth *a)
{
	int all = a->authors.n > 0, anchored = 1;

	for (size_t j = 0; j < a->authors.n; j++) {
		struct relay_author *au = &a->authors.a[j];
		int by_anchor = 0;

		for (size_t k = 0; k < a->nsigs; k++) {
			const struct relay_sig *s = &a->sigs[k];

			if (!aligned(s->r.d, au->domain))
				continue;
			if (s->r.status == DKIM_TEMPERROR)
				au->temperror = 1;
			/* l= that left part of the body unsigned vouches for nothing appended
			 * after it (RFC 6376 §8.2): the signature passes, but it verifies no
			 * sender */
			if (s->r.status != DKIM_PASS || s->r.testing || s->r.body_truncated)
				continue;
			au->verified = 1;
			by_anchor |= s->source == RELAY_KEY_ANCHOR || s->source == RELAY_KEY_USER;
			if (s->source == RELAY_KEY_USER && a->authors.n == 1 &&
			    strcmp(s->user, au->addr) == 0)
				a->user_verified = 1;
		}
		all &= au->verified;
		anchored &= by_anchor;
	}
	a->domain_verified = all;
	a->domain_anchored = all && anchored;
}

static void summarise(struct relay_auth *a)
{
	const struct relay_sig *first = a->nsigs > 0 ? &a->sigs[0] : NULL;
	const char *who = a->from_addr[0] ? a->from_addr : "(several authors)";

	if (a->from_error[0])
		snprintf(a->why, sizeof(a->why), "no author: %.160s", a->from_error);
	else if (a->user_verified)
		snprintf(a->why, sizeof(a->why), "%.64s: user verified%s", who,
		         a->domain_anchored ? ", anchored" : "");
	else if (a->domain_verified)
		snprintf(a->why, sizeof(a->why), "%.64s: domain verified%s", who,
		         a->domain_anchored ? ", anchored" : " (DNS key)");
	else if (first == NULL)
		snprintf(a->why, sizeof(a->why), "%.64s: no signature", who);
	else
		snprintf(a->why, sizeof(a->why), "%.64s: not verified: dkim=%s d=%.48s (%.48s)",
		         who, dkim_status_name(first->r.status), first->r.d,
		         first->r.status == DKIM_PASS ? "not aligned with From" : first->r.reason);
}

void relay_auth_conclude(struct relay_auth *a, const struct relay_verify_net *net)
{
	authors_verified(a);
	authors_anchor(net, a);
	summarise(a);
}

void relay_auth_clear(struct relay_auth *a)
{
	if (a == NULL)
		return;
	free(a->sigs);
	memset(a, 0, sizeof(*a));
}

/* An author domain in enforce mode disowns unsigned mail in its name (like DMARC
 * p=reject, applied to every author as RFC 7489 §6.6.1 says); in testing mode the
 * same message is delivered and marked.  When its own signature could not be checked
 * for a temporary reason the message is deferred (4xx): refusing it for good would
 * bounce legitimate mail over a key-server outage, accepting it would let anyone
 * outlast the enforcement by making the check fail.  A message whose authors cannot
 * be told is refused whatever its domains: enforcement would have nothing to hold. */
int relay_auth_refusal(const struct relay_auth *a, struct relay_refusal *out)
{
	const struct relay_author *defer = NULL;

	memset(out, 0, sizeof(*out));
	if (a->from_error[0] || a->authors.n == 0) {
		out->code = 550;
		snprintf(out->status, sizeof(out->status), "5.7.1");
		snprintf(out->text, sizeof(out->text), "Cannot tell the author: %.170s",
		         a->from_error[0] ? a->from_error : "no From field");
		return 1;
	}
	for (size_t k = 0; k < a->authors.n; k++) {
		const struct relay_author *au = &a->authors.a[k];

		if (au->verified || au->testing || (!au->anchored && !au->undiscovered))
			continue;
		if (au->temperror || au->undiscovered) {
			defer = defer ? defer : au;
			continue;
		}
		out->code = 550;
		snprintf(out->status, sizeof(out->status), "5.7.1");
		snprintf(out->text, sizeof(out->text),
		         "%.110s publishes an anchor in enforce mode and this message has no valid "
		         "signature of it",
		         au->domain);
		return 1;
	}
	if (a->authors.n > 1) {
		out->code = 550;
		snprintf(out->status, sizeof(out->status), "5.7.1");
		snprintf(out->text, sizeof(out->text),
		         "Cannot tell the author: the From field names %zu mailboxes; one is "
		         "accepted",
		         a->authors.n);
		return 1;
	}
	if (defer != NULL) {
		out->code = 451;
		snprintf(out->status, sizeof(out->status), "4.7.5");
		if (defer->undiscovered)
			snprintf(
			    out->text, sizeof(out->text),
			    "Cannot tell now whether %.120s publishes an anchor, try again later",
			    defer->domain);
		else
			snprintf(out->text, sizeof(out->text),
			         "Cannot verify the signature of %.120s now, try again later",
			         defer->domain);
		return 1;
	}
	return 0;
}
