#!/usr/bin/env bash
# bench/log.sh - the transparency log's write and read rates, beside peers measured
# in the same run on the same PostgreSQL cluster.
#
#  1. Appends per second with proofs kept current: route set calls by the domain
#     admin from 4 keep-alive clients; each one appends a log entry, stores the
#     perfect-subtree nodes it completes, signs a tree head for the new size and
#     commits it all before answering.  Peer: pgbench running a plain INSERT +
#     COMMIT of a row of the same size (the same columns, the average leaf length
#     measured after our run) into a table of the same shape, 4 clients.
#  2. Feed reads per second: wrk GET /v1/domains/<d>/feed?since=0&limit=100 over
#     HTTPS keep-alive, beside nginx serving the very same body as a static file
#     (same TLS certificate, same number of threads/processes).
#
# Proof sizes and verification times at 1M and 10M entries are bench/merkle.sh's.
#
# Usage: bench/log.sh BUILD_DIR   (make bench passes build/release)
# Environment: BENCH_APPENDS (2000), BENCH_DURATION (10 s), BENCH_CONNS (32),
# BENCH_THREADS (2).  Loopback only; every loop is bounded.
set -euo pipefail

BIN=${1:?usage: bench/log.sh BUILD_DIR}
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
APPENDS=${BENCH_APPENDS:-2000}
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-32}
USERS=20

bench_init logbench
echo "== setting up (PostgreSQL, anchor-keyserver, a domain with $USERS users)"
bench_start_pg
bench_make_tls
bench_start_keyserver "$BIN"
export ANCHOR_SERVER=$SERVER ANCHOR_CACERT=$WORK/tls.pem
python3 "$SRC/bench/log_load.py" setup --server "$SERVER" --cacert "$WORK/tls.pem" \
	--operator-token "$OPTOKEN" --anchorctl "$BIN/anchorctl" --work "$WORK" --users "$USERS"

echo "== appends: $APPENDS route changes by the admin, 4 clients, each committed with its head"
python3 "$SRC/bench/log_load.py" appends --server "$SERVER" --cacert "$WORK/tls.pem" \
	--work "$WORK" --count "$APPENDS" --users "$USERS"

echo "== peer: pgbench, INSERT + COMMIT of a row of the same size, 4 clients, ${DURATION}s"
PSQL=("$SRC/deploy/pgcluster.sh" psql "$WORK/pg" -X -q -v ON_ERROR_STOP=1)
LEAF_LEN=$("${PSQL[@]}" -At -c "SELECT round(avg(length(leaf)))::int FROM log_entries")
"${PSQL[@]}" -c "CREATE TABLE peer_log (LIKE log_entries INCLUDING DEFAULTS INCLUDING INDEXES);
	CREATE SEQUENCE peer_seq"
cat >"$WORK/peer.sql" <<SQL
INSERT INTO peer_log (domain_id, seq, type, leaf, leaf_hash, salt, name)
VALUES (1, nextval('peer_seq'), 'route_set', repeat('x', $LEAF_LEN),
        sha256(random()::text::bytea), md5(random()::text), 'user1@bench.example');
SQL
PGCONN=$CONNINFO
pgbench -n -c 4 -j 2 -T "$DURATION" -f "$WORK/peer.sql" "$PGCONN" >"$WORK/pgbench.txt" 2>&1 ||
	{
		cat "$WORK/pgbench.txt"
		exit 1
	}

echo "== feed reads: wrk -t$THREADS -c$CONNS -d${DURATION}s, GET .../feed?since=0&limit=100"
FEED=/v1/domains/bench.example/feed
mkdir -p "$WORK/www$(dirname $FEED)"
curl -sf --cacert "$WORK/tls.pem" "$SERVER$FEED?since=0&limit=100" >"$WORK/www$FEED"
bench_start_nginx
run_wrk() { # url outfile
	wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$1" >"$2"
}
DURATION=2 run_wrk "$SERVER$FEED?since=0&limit=100" /dev/null
DURATION=2 run_wrk "https://127.0.0.1:$NG_PORT$FEED?since=0&limit=100" /dev/null
run_wrk "$SERVER$FEED?since=0&limit=100" "$WORK/wrk-ks.txt"
run_wrk "https://127.0.0.1:$NG_PORT$FEED?since=0&limit=100" "$WORK/wrk-nginx.txt"

echo "== results"
python3 "$SRC/bench/log_load.py" report --work "$WORK" --pgbench "$WORK/pgbench.txt" \
	--feed-ours "$WORK/wrk-ks.txt" --feed-peer "$WORK/wrk-nginx.txt"
