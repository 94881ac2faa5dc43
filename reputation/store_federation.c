/*
 * store_federation.c - rep_federation_peers (each peer's cursor into its feed and the
 * outcome of the last poll) and rep_federation_imports (what each peer signed about a
 * subject, unweighted: the provenance of the evidence imported from it).  See store.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "store.h"

int rep_store_peer_open(struct db *db, const struct rep_peer *peer, long long *cursor,
                        struct err *e)
{
	char weight[32];
	const char *params[3] = {peer->domain, peer->url, weight};
	PGresult *res;

	snprintf(weight, sizeof(weight), "%.17g", peer->weight);
	res = db_exec(db,
	              "INSERT INTO rep_federation_peers (domain, url, weight) VALUES ($1, $2, $3) "
	              "ON CONFLICT (domain) DO UPDATE SET url = EXCLUDED.url, "
	              "weight = EXCLUDED.weight RETURNING cursor",
	              3, params, e);
	if (res == NULL)
		return -1;
	*cursor = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int rep_store_peer_advance(struct db *db, const char *domain, long long next, long long n,
                           struct err *e)
{
	char next_s[24], count[24];
	const char *params[3] = {domain, next_s, count};

	snprintf(next_s, sizeof(next_s), "%lld", next);
	snprintf(count, sizeof(count), "%lld", n);
	return db_run(db,
	              "UPDATE rep_federation_peers SET cursor = $2::bigint, imported = imported + "
	              "$3::bigint, last_poll = now(), last_ok = now(), last_error = NULL "
	              "WHERE domain = $1",
	              3, params, e);
}

void rep_store_peer_error(struct db *db, const char *domain, const char *msg)
{
	const char *params[2] = {domain, msg};
	struct err e = {0};

	db_run(db,
	       "UPDATE rep_federation_peers SET last_poll = now(), last_error = $2 "
	       "WHERE domain = $1",
	       2, params, &e);
}

int rep_store_import_note(struct db *db, const struct rep_import *im, struct err *e)
{
	char seq[24], bad[32], good[32], t[24], reporters[24];
	const char *params[8] = {im->peer, im->subject, seq, bad, good, t, im->verdict, reporters};

	snprintf(seq, sizeof(seq), "%lld", im->seq);
	snprintf(bad, sizeof(bad), "%.17g", im->bad);
	snprintf(good, sizeof(good), "%.17g", im->good);
	snprintf(t, sizeof(t), "%lld", im->t);
	snprintf(reporters, sizeof(reporters), "%lld", im->reporters);
	return db_run(
	    db,
	    "INSERT INTO rep_federation_imports (peer, subject, peer_seq, bad, good, t, "
	    "verdict, reporters) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
	    "ON CONFLICT (peer, subject) DO UPDATE SET peer_seq = EXCLUDED.peer_seq, "
	    "bad = EXCLUDED.bad, good = EXCLUDED.good, t = EXCLUDED.t, "
	    "verdict = EXCLUDED.verdict, reporters = EXCLUDED.reporters, imported_at = now()",
	    8, params, e);
}
