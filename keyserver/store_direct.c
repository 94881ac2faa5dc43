/*
 * store_direct.c - the direct_endpoints table (sql/014_direct.sql): users' own daemons.
 *
 * The validity of a registration is decided here, in the one query every reader uses
 * (the handlers and the signer building a route answer): the row counts only while it
 * has not expired and the key that made it is still the address's current one (not
 * revoked, not superseded, not past its end), so a revocation or a new key ends it at
 * once, with no cleanup job to wait for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int ks_store_direct_put(struct db *db, long long domain_id, const struct ks_direct *dr,
                        long long log_seq, struct err *e)
{
	char idbuf[24], portbuf[16], expbuf[24], seqbuf[24];
	const char *params[8] = {idbuf,   dr->address, dr->key_id, dr->host,
	                         portbuf, dr->pin,     expbuf,     seqbuf};

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	snprintf(portbuf, sizeof(portbuf), "%d", dr->port);
	snprintf(expbuf, sizeof(expbuf), "%lld", dr->expires);
	snprintf(seqbuf, sizeof(seqbuf), "%lld", log_seq);
	return db_run(db,
	              "INSERT INTO direct_endpoints (domain_id, address, key_id, host, port, pin,"
	              " expires_at, log_seq) VALUES ($1, $2, $3::uuid, $4, $5, $6,"
	              " to_timestamp($7::bigint), $8)"
	              " ON CONFLICT (domain_id, address) DO UPDATE SET key_id = EXCLUDED.key_id,"
	              " host = EXCLUDED.host, port = EXCLUDED.port, pin = EXCLUDED.pin,"
	              " expires_at = EXCLUDED.expires_at, log_seq = EXCLUDED.log_seq,"
	              " created_at = now()",
	              8, params, e);
}

int ks_store_direct_valid(struct db *db, long long domain_id, const char *address,
                          struct ks_direct *dr, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, address};
	PGresult *res;
	int found;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res =
	    db_exec(db,
	            "SELECT x.host, x.port, x.pin, floor(extract(epoch FROM x.expires_at))::bigint,"
	            " x.key_id::text, x.log_seq FROM direct_endpoints x"
	            " JOIN certificates c ON c.key_id = x.key_id"
	            " WHERE x.domain_id = $1 AND x.address = $2 AND x.expires_at > now()"
	            " AND c.domain_id = x.domain_id AND c.name = x.address"
	            " AND c.purpose = 'smime' AND c.status = 'current' AND c.not_after > now()",
	            2, params, e);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	if (found) {
		memset(dr, 0, sizeof(*dr));
		snprintf(dr->address, sizeof(dr->address), "%s", address);
		snprintf(dr->host, sizeof(dr->host), "%s", PQgetvalue(res, 0, 0));
		dr->port = (int)strtol(PQgetvalue(res, 0, 1), NULL, 10);
		snprintf(dr->pin, sizeof(dr->pin), "%s", PQgetvalue(res, 0, 2));
		dr->expires = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		snprintf(dr->key_id, sizeof(dr->key_id), "%s", PQgetvalue(res, 0, 4));
		dr->log_seq =
		    PQgetisnull(res, 0, 5) ? -1 : strtoll(PQgetvalue(res, 0, 5), NULL, 10);
	}
	PQclear(res);
	return found;
}

int ks_store_direct_delete(struct db *db, long long domain_id, const char *address, struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, address};
	PGresult *res;
	int gone;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db, "DELETE FROM direct_endpoints WHERE domain_id = $1 AND address = $2", 2,
	              params, e);
	if (res == NULL)
		return -1;
	gone = strtol(PQcmdTuples(res), NULL, 10) > 0;
	PQclear(res);
	return gone;
}
