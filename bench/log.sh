#!/usr/bin/env bash
# bench/log.sh - the transparency log's write and read rates, beside peers measured
# in the same run on the same PostgreSQL cluster.
#
#  1. Appends per second with proofs kept current: route set calls by the domain
#     admin from 4 keep-alive client processes; each one appends a log entry and
#     the perfect-subtree nodes it completes and commits, and is answered once a
#     signed tree head covering it is committed too (one head for every change
#     committed meanwhile: a group commit).  Peer: pgbench running a plain
#     INSERT + COMMIT of a row of the same size (the same columns, the average
#     leaf length) into a table of the same shape, 4 clients.  The servers (key
#     server, signer, PostgreSQL) run on core 0, the load on core 1; each round
#     prints both rates and the servers' CPU time per append / per transaction,
#     the two run interleaved for BENCH_ROUNDS rounds and the medians are the
#     result.
#  2. Feed reads per second: wrk GET /v1/domains/<d>/feed?since=0&limit=100 over
#     HTTPS keep-alive, beside nginx serving the very same body as a static file
#     (same TLS certificate, same number of threads/processes).
#
# Proof sizes and verification times at 1M and 10M entries are bench/merkle.sh's.
#
# Changes are committed in batches (keyserver/group.c: one transaction, one commit and
# one head for every change queued meanwhile; one statement per append).  Measured on
# the shared 2-core machine under a load average of 18-24, release builds, base and
# batched runs alternating, BENCH_APPENDS=400 BENCH_DURATION=3 BENCH_ROUNDS=2, median
# ratio to pgbench per run:  before (4b95387): 0.11, 0.11;  batched: 0.16, 0.19.
# pg_stat_statements over 300-400 appends: round trips to PostgreSQL per append 28 -> 23;
# the time lost waiting for the domain's row lock went from 17 ms per lock (tree_heads
# inserts waited on its FOR UPDATE) to none.  Server CPU per append stayed about 5 ms,
# two thirds of it PostgreSQL (1.8 ms key server and signer, 3.8 ms PostgreSQL), most of
# it per round trip rather than per statement (the statements themselves execute in
# about a fifth of it): 23 round trips, 6 of them for the answer (the route signed by
# the signer, the inclusion proof), against pgbench's one.  A back-to-back pair of
# unpinned runs of 300 appends: before 37/s, 2.3 + 5.6 ms CPU; batched 72/s, 1.8 + 3.8.
# Round trips folded (migration 013: a batch opens with one call, a head round with one,
# the route row and its entry in one statement, the answer's head and leaf in one query,
# the signer's domain read with its seal), load average 12-18, BENCH_APPENDS=400
# BENCH_DURATION=3, base (3622886) and folded alternating, two runs each: server CPU
# per append (median of rounds) base 5.6, 4.3 ms, folded 4.2, 4.1 ms; ratio to pgbench
# base 0.15, 0.14, folded 0.18, 0.12 (pgbench itself moved 461-908/s between runs).
# pg_stat_statements over 300 appends: 22.6 -> 15.6 round trips per append.  What
# remains (perf): PostgreSQL two thirds; in its backends the executor a fifth, reading
# and answering the protocol a fifth, the commit's WAL flush a tenth, and a seventh of
# PostgreSQL's samples are the VM's interrupt re-enabling on system calls: per round
# trip.  Per append: the domain read 2.7 (the handler, the signer's route and publish
# calls), proof and root node reads 2.5, BEGIN/COMMIT 3.1 (one pair per batch and per
# head round: batches average 1.3 changes with 4 writers), the admin token, the route
# re-read by the signer to sign it, the head with the leaf.  Next: the signer's route
# answer and head round in one call; the log's right edge kept between batches (no node
# reads to append); batches and head rounds in one transaction as the signer's issuances
# already are.
# Round trips cut again (pg_stat_statements over 200 appends): 16.1 -> 13.8 per append.
# A route set's writer is answered with one signer call (ROUTE_HEAD: the head round in
# the signer, then the route answer) instead of PUBLISH and ROUTE; each process keeps
# the log nodes it committed (log_edge.c), so appends, heads' roots and consistency
# proofs, and most inclusion proofs read no nodes.  BENCH_APPENDS=400 BENCH_DURATION=4
# BENCH_ROUNDS=3, load average 8-10, base (ac618cc) then cut, back to back: 119/s,
# 4.6 ms server CPU each, 0.13x pgbench -> 197/s, 3.4 ms, 0.19x; again at a load
# average of 2-4, BENCH_APPENDS=1000 BENCH_DURATION=5: 273/s, 3.3 ms, 0.10x -> 303/s,
# 2.9 ms, 0.06x (pgbench itself 2,107/s in the first run, 4,997/s in the second: the
# ratio follows pgbench's swings; CPU per append is the steadier figure).
# What remains: two transactions per batch (the HTTPS process's batch, the signer's head round: 2.8
# BEGIN/COMMIT per append), the domain read twice (HTTPS process and signer), the admin
# token, the route re-read and signed by the signer, the answer's proof nodes.  Next:
# the head signed in the batch's transaction (the HTTPS process would have to ask the
# signer inside it, or hand the batch to the signer), and the route answer built by the
# signer from the row it just wrote.
# Done (route sets in the signer's batches): a route set goes to the signer (ROUTE_SET),
# which stores it in its next batch of changes and signs the batch's head inside the
# batch's transaction: one BEGIN/COMMIT per batch, the head with no savepoint of its own,
# the answer signed from the row the batch wrote (its update time comes back from the
# insert) with the proof to the head signed with its batch (the leaf it made, the nodes it
# kept: nothing read back).  BENCH_PGSTAT=1 BENCH_APPENDS=400 BENCH_DURATION=3
# BENCH_ROUNDS=3, load average 4-7, base (35b57e8) then new, back to back: 183/s, 3,975 us
# server CPU each, 14.4 round trips, 0.13x pgbench -> 249/s, 2,700 us, 9.0 round trips,
# 0.21x.  What remains per append (pg_stat_statements): the domain read twice (HTTPS
# process, signer: 2.1), the admin token, the direct endpoint for the answer, the route
# insert with its entry; per batch (1.45 changes on average with 4 writers) BEGIN, open,
# heads lock, head insert, COMMIT, and a savepoint per change of a batch of several.
# Next: the heads lock taken by the batch's opening call (one function, a migration), the
# direct endpoint read with the route's insert, the HTTPS process's domain read cached.
#
# Usage: bench/log.sh BUILD_DIR   (make bench passes build/release)
# Environment: BENCH_APPENDS (2000 per round), BENCH_DURATION (10 s), BENCH_ROUNDS (3),
# BENCH_CONNS (32), BENCH_THREADS (2), KS_HTTP_THREADS (8), BENCH_PGSTAT (1: round trips
# to PostgreSQL per append, counted by pg_stat_statements).  Loopback only; every loop is bounded.
set -euo pipefail

BIN=${1:?usage: bench/log.sh BUILD_DIR}
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
APPENDS=${BENCH_APPENDS:-2000}
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-32}
ROUNDS=${BENCH_ROUNDS:-3}
USERS=20
CPU=(python3 "$SRC/bench/cpu.py")
LOAD=(taskset -c 1) # the load generators' core; the servers get core 0

# The key server's request threads wait on PostgreSQL: give it as many as clients and
# more, so that the 4 writers can share a head (the peer has 4 backends).
KS_HTTP_THREADS=${KS_HTTP_THREADS:-8}
bench_init logbench
echo "== setting up (PostgreSQL, anchor-keyserver, a domain with $USERS users)"
bench_start_pg
bench_make_tls
bench_start_keyserver "$BIN"
export ANCHOR_SERVER=$SERVER ANCHOR_CACERT=$WORK/tls.pem
python3 "$SRC/bench/log_load.py" setup --server "$SERVER" --cacert "$WORK/tls.pem" \
	--operator-token "$OPTOKEN" --anchorctl "$BIN/anchorctl" --work "$WORK" --users "$USERS"
PG_PID=$(head -1 "$WORK/pg/data/postmaster.pid")
"${CPU[@]}" pin 0 "$PG_PID" "$KS_PID"

PSQL=("$SRC/deploy/pgcluster.sh" psql "$WORK/pg" -X -q -v ON_ERROR_STOP=1)
LEAF_LEN=$("${PSQL[@]}" -At -c "SELECT round(avg(length(leaf)))::int FROM log_entries")
"${PSQL[@]}" -c "CREATE TABLE peer_log (LIKE log_entries INCLUDING DEFAULTS INCLUDING INDEXES);
	CREATE SEQUENCE peer_seq"
cat >"$WORK/peer.sql" <<SQL
INSERT INTO peer_log (domain_id, seq, type, leaf, leaf_hash, salt, name)
VALUES (1, nextval('peer_seq'), 'route_set', repeat('x', $LEAF_LEN),
        sha256(random()::text::bytea), md5(random()::text), 'user1@bench.example');
SQL

# One round of ours: rate and server CPU (key server + signer + PostgreSQL) per append.
# The last figure: PostgreSQL's part of that CPU time, in per cent.
# The last: round trips to PostgreSQL per append (BENCH_PGSTAT=1; else 0).
ours_round() {
	local k0 k1 p0 p1 n0 n1 rate
	n0=$(bench_pg_calls)
	k0=$("${CPU[@]}" cpu "$KS_PID")
	p0=$("${CPU[@]}" cpu "$PG_PID")
	rate=$("${LOAD[@]}" python3 "$SRC/bench/log_load.py" appends --server "$SERVER" \
		--cacert "$WORK/tls.pem" --work "$WORK" --count "$APPENDS" --users "$USERS")
	k1=$("${CPU[@]}" cpu "$KS_PID")
	p1=$("${CPU[@]}" cpu "$PG_PID")
	n1=$(bench_pg_calls)
	echo "$rate $(python3 -c "k, p = $k1 - $k0, $p1 - $p0
print(f'{(k + p) * 1e6 / $APPENDS:.0f} {100 * p / max(k + p, 1e-9):.0f} {($n1 - $n0) / $APPENDS:.1f}')")"
}
# One round of the peer: pgbench's rate and PostgreSQL's CPU per transaction.
peer_round() {
	local c0 c1 n
	c0=$("${CPU[@]}" cpu "$PG_PID")
	"${LOAD[@]}" pgbench -n -c 4 -j 2 -T "$DURATION" -f "$WORK/peer.sql" "$CONNINFO" \
		>"$WORK/pgbench.txt" 2>&1 || {
		cat "$WORK/pgbench.txt"
		exit 1
	}
	c1=$("${CPU[@]}" cpu "$PG_PID")
	n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.txt")
	echo "$(python3 "$SRC/bench/log_load.py" pgbench-rate "$WORK/pgbench.txt") \
$(python3 -c "print(f'{($c1 - $c0) * 1e6 / $n:.0f}')")"
}

echo "== appends: $APPENDS route changes by the admin from 4 client processes (core 1), each"
echo "   answered once its entry and a signed head covering it are committed; beside"
echo "   pgbench INSERT + COMMIT of a row of the same size, 4 clients, ${DURATION}s;"
echo "   servers on core 0; $ROUNDS interleaved rounds"
: >"$WORK/rounds.txt"
for r in $(seq "$ROUNDS"); do
	read -r ours ours_cpu ours_pg ours_rt < <(ours_round)
	read -r peer peer_cpu < <(peer_round)
	printf 'round %d: anchor-keyserver %6.0f/s %6d us CPU each (%s%% PostgreSQL, %s round trips) | pgbench %6.0f/s %6d us CPU each\n' \
		"$r" "$ours" "$ours_cpu" "$ours_pg" "$ours_rt" "$peer" "$peer_cpu"
	echo "$ours $ours_cpu $peer $peer_cpu" >>"$WORK/rounds.txt"
done

echo "== feed reads: wrk -t$THREADS -c$CONNS -d${DURATION}s, GET .../feed?since=0&limit=100"
FEED=/v1/domains/bench.example/feed
mkdir -p "$WORK/www$(dirname $FEED)"
curl -sf --cacert "$WORK/tls.pem" "$SERVER$FEED?since=0&limit=100" >"$WORK/www$FEED"
bench_start_nginx
"${CPU[@]}" pin 0 "$NGINX_PID"
run_wrk() { # url outfile
	"${LOAD[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$1" >"$2"
}
DURATION=2 run_wrk "$SERVER$FEED?since=0&limit=100" /dev/null
DURATION=2 run_wrk "https://127.0.0.1:$NG_PORT$FEED?since=0&limit=100" /dev/null
run_wrk "$SERVER$FEED?since=0&limit=100" "$WORK/wrk-ks.txt"
run_wrk "https://127.0.0.1:$NG_PORT$FEED?since=0&limit=100" "$WORK/wrk-nginx.txt"

echo "== results"
python3 "$SRC/bench/log_load.py" report --rounds "$WORK/rounds.txt" \
	--feed-ours "$WORK/wrk-ks.txt" --feed-peer "$WORK/wrk-nginx.txt"
