/*
 * truth.c - ground truth and vetting (docs/operator-reputation.md §4).
 *
 * Standing used to come from agreement with the other reporters: whoever was most
 * numerous defined the truth, and a ring of cheap domains could raise its own standing
 * and push an honest reporter to the floor by contradicting it.  Now the truth is what
 * the operator trusts: hits on its own spamtraps (reported by its vetted reporters, its
 * relays) and the evidence of the reporters it vetted (vetted_reporters, each with a
 * fixed weight, never judged).  A subject a trap caught within a half-life is listed
 * whatever anyone vouches; every other reporter is judged against the truth alone.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"

double rep_vetted_weight(const struct rep_params *p, const char *domain)
{
	for (int i = 0; i < p->nvetted; i++)
		if (strcmp(p->vetted[i].domain, domain) == 0)
			return p->vetted[i].weight;
	return -1;
}

int rep_trap_match(const struct rep_params *p, const char *address)
{
	const char *at = strrchr(address, '@');

	if (at == NULL || at == address)
		return 0;
	for (int i = 0; i < p->ntraps; i++)
		if (strcmp(p->traps[i], strchr(p->traps[i], '@') != NULL ? address : at + 1) == 0)
			return 1;
	return 0;
}

/* Subjects whose evidence the service verifies itself (a DKIM signature it checked):
 * domain, signer and address.  An IP, a HELO name or a key has no such evidence. */
static int verifiable(const char *subject)
{
	return strncmp(subject, "domain:", 7) == 0 || strncmp(subject, "signer:", 7) == 0 ||
	       strncmp(subject, "address:", 8) == 0;
}

void rep_contribs_vet(const struct rep_params *p, struct rep_contrib *c, int n, long long now)
{
	for (int i = 0; i < n; i++) {
		double w = c[i].peer ? -1 : rep_vetted_weight(p, c[i].reporter);
		double age = (double)(now - c[i].reporter_since);

		c[i].vetted = w >= 0;
		if (c[i].vetted)
			c[i].standing = w;
		else if (!c[i].peer && p->newcomer_ramp > 0 && age < p->newcomer_ramp)
			/* a ring of fresh domains weighs nothing yet: weight is earned with time */
			c[i].standing *= age > 0 ? age / p->newcomer_ramp : 0;
		/* Vouching for an IP, a HELO name or a key rests on the reporter's word alone
		 * (verified_identity is its claim): only a vetted reporter's or a peer's counts,
		 * so that a ring cannot whitelist its own senders. */
		if (p->signed_evidence && !c[i].vetted && !c[i].peer && !verifiable(c[i].subject))
			c[i].good = 0;
	}
}

long long rep_truth_recent(struct rep *rep, struct db *db, const char *subject, long long now,
                           long long *last, struct err *e)
{
	long long hits;

	if (rep_store_truth_get(db, subject, &hits, last, e) < 0)
		return -1;
	return hits > 0 && now - *last <= (long long)rep->p.half_life ? hits : 0;
}

int rep_truth_apply(struct rep *rep, struct db *db, const char *subject, long long now,
                    struct rep_score *o, struct err *e)
{
	long long last = 0, hits = rep_truth_recent(rep, db, subject, now, &last, e);
	json_t *r;

	if (hits <= 0)
		return (int)hits;
	o->verdict = REP_BLOCK;
	r = json_pack("{s:s, s:s, s:[]}", "code", "spamtrap", "text", "", "evidence");
	if (r != NULL) {
		char text[256];

		snprintf(text, sizeof(text),
		         "listed: the operator's spamtraps caught %s (%lld hit(s), the last %lld "
		         "s ago); ground truth, whatever reporters vouch",
		         subject, hits, now - last);
		json_object_set_new(r, "text", json_string(text));
		json_array_insert_new(o->reasons, 0, r);
	}
	return 1;
}
