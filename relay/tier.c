/*
 * tier.c - which tier a message lands in for one recipient (PROTOCOL.md §12):
 *
 *   trusted  the verified sender is on the recipient's trust list
 *   known    a verified sender in good standing, a sender the recipient
 *            subscribed to, or a valid proof-of-work stamp
 *   unknown  everything else, including senders the recipient blocked:
 *            delivered aside (header or folder), never dropped
 *
 * "Verified sender": the From address when a user signature (i= the address)
 * or a signature of the From domain passes (the domain vouches for its own
 * From addresses, as DMARC alignment does), the From domain when a signature
 * of it passes.  relay_lists_check is asked with exactly those
 * (relay_tier_lists below), so a list hit is always on a verified identity.
 *
 * "Good standing": the reputation service's verdict on the verified domain is
 * known or trusted.  When no verdict is at hand (no service configured, or it
 * could not answer and reputation_on_error is open), a sender verified with
 * its domain's anchored key or its own user key (user keys come only from
 * anchored key servers) counts as in good standing: the anchor proves the
 * domain runs a key server under a pinned root and the signature is its, which
 * is more than DKIM alone; a merely DKIM-verified (legacy) domain does not,
 * since any domain can publish a DKIM key.
 */
#include <stdio.h>
#include <string.h>

#include "relay.h"

const char *relay_tier_name(enum relay_tier t)
{
	switch (t) {
	case RELAY_TIER_TRUSTED:
		return "trusted";
	case RELAY_TIER_KNOWN:
		return "known";
	default:
		return "unknown";
	}
}

/* The verified address and domain of a message ("" when not verified). */
static void verified_sender(const struct relay_auth *a, const char **addr, const char **domain)
{
	*addr = "";
	*domain = "";
	if (a == NULL)
		return;
	if ((a->user_verified || a->domain_verified) && a->from_addr[0] != '\0')
		*addr = a->from_addr;
	if (a->domain_verified && a->from_domain[0] != '\0')
		*domain = a->from_domain;
}

enum relay_list_hit relay_tier_lists(struct relay_lists *l, const char *rcpt,
                                     const struct relay_auth *a)
{
	const char *addr, *domain;

	verified_sender(a, &addr, &domain);
	if (*addr == '\0' && *domain == '\0')
		return RELAY_LIST_NONE;
	return relay_lists_check(l, rcpt, addr, domain);
}

/* The verified identity to name in the reason. */
static const char *who(const struct relay_auth *a)
{
	const char *addr, *domain;

	verified_sender(a, &addr, &domain);
	return *addr != '\0' ? addr : *domain != '\0' ? domain : "sender";
}

static int good_standing(const struct relay_tier_input *in, const char **how)
{
	const struct relay_auth *a = in->auth;

	/*
	 * The reputation service says "known" or "trusted" only on good evidence and
	 * "unknown" also when it has none: a new anchored domain starts there.  Poor
	 * standing is a "block"; an anchored sender (its key chained to its pins,
	 * unrevoked, in its log) with no verdict against it is in good standing, a
	 * legacy DKIM domain needs the service's good word.
	 */
	if (in->have_rep && in->sender_rep != RELAY_REP_UNKNOWN) {
		*how = in->sender_rep == RELAY_REP_TRUSTED ? "reputation trusted"
		       : in->sender_rep == RELAY_REP_KNOWN ? "reputation known"
		                                           : "reputation block";
		return in->sender_rep != RELAY_REP_BLOCK;
	}
	/* A user key comes only from an anchored domain's key server. */
	if (a->domain_anchored || a->user_verified) {
		*how = in->have_rep ? "anchored, reputation unknown"
		                    : "anchored, no reputation verdict";
		return 1;
	}
	*how = in->have_rep ? "not anchored, reputation unknown"
	                    : "not anchored, no reputation verdict";
	return 0;
}

enum relay_tier relay_tier_decide(const struct relay_tier_input *in, char *why, size_t whylen)
{
	const struct relay_auth *a = in != NULL ? in->auth : NULL;
	int verified = a != NULL && (a->domain_verified || a->user_verified);
	const char *how = "";

	if (a == NULL) {
		snprintf(why, whylen, "no verification result");
		return RELAY_TIER_UNKNOWN;
	}
	if (in->list == RELAY_LIST_BLOCK) {
		snprintf(why, whylen, "%s is on the recipient's block list", who(a));
		return RELAY_TIER_UNKNOWN;
	}
	if (in->list == RELAY_LIST_TRUST) {
		snprintf(why, whylen, "verified %s on trust list", who(a));
		return RELAY_TIER_TRUSTED;
	}
	if (in->list == RELAY_LIST_SUBSCRIBED) {
		snprintf(why, whylen, "verified %s on subscribe list", who(a));
		return RELAY_TIER_KNOWN;
	}
	if (verified && good_standing(in, &how)) {
		snprintf(why, whylen, "verified %s in good standing (%s)", who(a), how);
		return RELAY_TIER_KNOWN;
	}
	if (in->pow_ok) {
		snprintf(why, whylen, "valid proof-of-work stamp");
		return RELAY_TIER_KNOWN;
	}
	if (verified)
		snprintf(why, whylen, "verified %s not in good standing (%s)", who(a), how);
	else
		snprintf(why, whylen, "unverified sender");
	return RELAY_TIER_UNKNOWN;
}

char *relay_tier_rcpt(const struct relay_settings *s, const char *rcpt, enum relay_tier t)
{
	const char *at = strrchr(rcpt, '@');
	char *out;

	if (t != RELAY_TIER_UNKNOWN || *s->unknown_folder == '\0' || at == NULL)
		return strdup(rcpt);
	if (asprintf(&out, "%.*s%s%s%s", (int)(at - rcpt), rcpt, s->recipient_delimiter,
	             s->unknown_folder, at) < 0)
		return NULL;
	return out;
}
