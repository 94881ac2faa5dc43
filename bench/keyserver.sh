#!/usr/bin/env bash
# bench/keyserver.sh - key-server throughput, beside a peer measured in the same run.
#
#  1. Certificate lookups over HTTPS keep-alive: wrk drives anchor-keyserver
#     (GET /v1/addresses/<addr> for N enrolled users) and then nginx serving
#     the very same response bodies as static files, same TLS certificate,
#     same number of worker threads/processes.  BENCH_ROUNDS interleaved rounds,
#     each printing both rates, p99 latencies and server CPU time per request,
#     then the medians and the same-round ratios.  BENCH_ENROLLS=0: lookups only.
#  2. Enrollments per second (token + CSR -> certificate, durably committed with
#     a signed tree head covering it), from 4 client processes, beside `openssl
#     x509 -req` signing the same kind of requests with no storage; each round
#     prints both rates and the CPU time per operation (key server, signer and
#     PostgreSQL for ours; the openssl processes for the peer), BENCH_ROUNDS
#     interleaved rounds, medians.
#
# The servers (key server, signer, PostgreSQL, nginx) run on core 0 and the load
# generators on core 1 (taskset; bench/cpu.py pins and counts CPU time).
#
# Enrollments go through the signer process (PROTOCOL.md §13) since it holds the
# issuer keys.  Measured on the shared 2-core development machine, release builds,
# two runs each alternating, (enrollments/s, openssl x509 -req/s in the same run):
#   before the signer (60738f2): (35, 7)  (62, 21)
#   with the signer:             (55, 12) (84, 26)
# The machine's load moved both figures more than the change did.
# Issuances in batches (one transaction with their signed head, keyserver/group.c),
# same machine under a load average of ~20, BENCH_ENROLLS=200 BENCH_ROUNDS=2, base and
# batched alternating: before (4b95387) 44/s, 6.3 ms server CPU each; batched 49/s,
# 5.6 ms.  The CSRs and tokens are made before the timed part (enroll-prep), so the
# rate is the server's.  pg_stat_statements and bench/cpu.py per enrollment: 23 round
# trips to PostgreSQL, 2.6 ms CPU in the key server and signer, 3.2 ms in PostgreSQL
# of which the statements execute in 1.2 ms: the rest is per round trip.  The same
# count before batching: 30 round trips, 3.4 + 5.8 ms CPU; in that back-to-back pair of
# unpinned runs (200 enrollments, 4 clients) 20/s before and 49/s batched.  The issuer
# key is unsealed once per domain (signer_memo.c), not per request.
# Round trips folded (migration 013: the batch opens with one call, the head round with
# one, the certificate row and its entry in one statement, the answer's head and leaf in
# one query, the domain's seal read with its row, no savepoint for a change alone),
# load average 12-18, BENCH_ENROLLS=200 BENCH_ROUNDS=3, base (3622886) and folded
# alternating, two runs each: base 65/s 5.5 ms and 66/s 7.1 ms server CPU each, folded
# 73/s 5.3 ms and 80/s 5.6 ms.  pg_stat_statements over 200 enrollments: 22.6 -> 15.8
# round trips each; batches average 1.6 issuances.  What remains per enrollment: the
# token's lock and its use, the supersede, the insert, the answer's certificate, head and
# proof nodes, the domain read twice (handler, signer), and per batch BEGIN, open, head
# round, leaves, head insert, two savepoints, COMMIT.  1,000/s would need under 1 ms of
# CPU per enrollment for key server, signer and PostgreSQL together on one core; about
# 90 us of PostgreSQL CPU goes with each round trip on this VM, so the statements alone
# (15.8) cost more than that: what stands in the way is the round trips and small
# batches at this concurrency (4 writers); next, the token's use folded
# into the insert, the log's right edge kept between batches, and the issuance's answer
# built by the signer from its own rows instead of read back.
# Round trips cut again (pg_stat_statements over 200 enrollments, same scratch cluster):
# 15.6 -> 11.6 per enrollment.  Per enrollment 9.8 -> 6 (the token claimed, marked used
# and the old certificate superseded in one statement; the answer's certificate, head and
# leaf in one query; no node reads to append), per batch 8 -> 6 (the head's root and
# consistency proof from the nodes the process committed before, log_edge.c; the batch's
# own entries not read back before the head is signed).  BENCH_ENROLLS=300
# BENCH_DURATION=4 BENCH_ROUNDS=3, load average 8-14, base (ac618cc) then cut, back to
# back: 97/s, 5.0 ms server CPU each (10.8x openssl x509 -req) -> 108/s, 4.5 ms
# (12.5x); again at a load average of 2-4, BENCH_ENROLLS=1000: cut 181/s, 3.8 ms
# (10.1x), base right after 216/s, 3.9 ms (8.2x): the rate follows the machine more than
# the change, CPU per enrollment fell 3-10%.  What stands in the way of 1,000/s is CPU,
# not waiting: 3.8 ms per enrollment on one core is 260/s at most; of PostgreSQL's part the claim (0.4 ms) and
# the certificate insert with its log entry, nodes and webhook check (0.5 ms) are
# statements' own work, the rest the ~12 round trips at ~90 us each.
# The signer's batches sign their head with no savepoint of their own (a refusal of the log
# writes nothing; any other failure fails the batch whole), and route sets now share these
# batches (bench/log.sh).  BENCH_PGSTAT=1 BENCH_ENROLLS=300 BENCH_DURATION=2 BENCH_ROUNDS=3
# BENCH_USERS=50, load average 4-7, base (35b57e8) then new, back to back: 137/s, 4,233 us
# server CPU each, 10.5 round trips -> 163/s, 3,767 us, 9.9 round trips.  What remains per
# enrollment (pg_stat_statements): the domain read twice (handler, signer), the token's
# claim, the certificate insert with its entry, the answer's certificate with head and
# leaf, and the answer's proof nodes (1.05: the HTTPS process never holds the newest
# nodes, the signer made them); per batch (1.5 issuances) BEGIN, open, heads lock, head
# insert, COMMIT.  Next: the signer hands the answer's proof and head back with the key id
# (it holds both once the batch commits, as route sets do), the heads lock taken by the
# batch's opening call.
#
# Lookups after poll() replaced epoll under TLS (71fada3), same machine, -d5s, 3 rounds:
# 0.96x nginx (CPU/request 35.1 vs 35.7 us) and, in a busier moment, 0.67x (40.7 vs
# 41.3 us); the same build forced to epoll right before: 1.57x (48.2 vs 52.3 us).
# The issue's earlier figure with epoll was 24.6 vs 30.8 us (0.80 of nginx's CPU).
#
# Usage: bench/keyserver.sh BUILD_DIR   (make bench passes build/release)
# Only loopback addresses are used; every loop is bounded in count and time.
set -euo pipefail

BIN=${1:?usage: bench/keyserver.sh BUILD_DIR}
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
USERS=${BENCH_USERS:-200}
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-32}
ENROLLS=${BENCH_ENROLLS:-1000}
ROUNDS=${BENCH_ROUNDS:-3}
CPU=(python3 "$SRC/bench/cpu.py")
LOAD=(taskset -c 1) # the load generators' core; the servers get core 0
# Request threads wait on the signer and PostgreSQL: more of them than clients, so that
# concurrent enrollments share a signed head (group commit, PROTOCOL.md §10.2).
KS_HTTP_THREADS=${KS_HTTP_THREADS:-8}

bench_init bench
echo "== setting up (PostgreSQL, anchor-keyserver, $USERS enrolled users)"
bench_start_pg
bench_make_tls
bench_start_keyserver "$BIN"
PG_PID=$(head -1 "$WORK/pg/data/postmaster.pid")
"${CPU[@]}" pin 0 "$PG_PID" "$KS_PID"
export ANCHOR_SERVER=$SERVER ANCHOR_CACERT=$WORK/tls.pem

python3 "$SRC/bench/ks_load.py" setup --server "$SERVER" --cacert "$WORK/tls.pem" \
	--operator-token "$OPTOKEN" --anchorctl "$BIN/anchorctl" --work "$WORK" --users "$USERS"

# The same bodies as static files for nginx.
mkdir -p "$WORK/www"
while read -r path; do
	mkdir -p "$WORK/www$(dirname "$path")"
	curl -sf --cacert "$WORK/tls.pem" "$SERVER$path" >"$WORK/www$path"
done <"$WORK/paths.txt"

bench_start_nginx
"${CPU[@]}" pin 0 "$NGINX_PID"

cat >"$WORK/paths.lua" <<'LUA'
local paths = {}
for line in io.lines(os.getenv("PATHS_FILE")) do paths[#paths + 1] = line end
local n = 0
request = function()
	n = n + 1
	return wrk.format("GET", paths[(n % #paths) + 1])
end
LUA

run_wrk() { # url outfile
	PATHS_FILE=$WORK/paths.txt "${LOAD[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
		-s "$WORK/paths.lua" "$1" >"$2"
}
echo "== lookups: wrk -t$THREADS -c$CONNS -d${DURATION}s, $USERS addresses, HTTPS keep-alive"
# Warm both (caches, TLS sessions) for a moment before measuring.
DURATION=2 run_wrk "$SERVER" /dev/null
DURATION=2 run_wrk "https://127.0.0.1:$NG_PORT" /dev/null
c_ng=$("${CPU[@]}" cpu "$NGINX_PID")
# ROUNDS interleaved rounds; each side's server CPU per request (key server alone: a
# lookup does not reach PostgreSQL once cached; nginx master and workers).
: >"$WORK/lookup-rounds.txt"
for r in $(seq "$ROUNDS"); do
	c0=$("${CPU[@]}" cpu "$KS_PID")
	run_wrk "$SERVER" "$WORK/wrk-ks.txt"
	c1=$("${CPU[@]}" cpu "$KS_PID")
	run_wrk "https://127.0.0.1:$NG_PORT" "$WORK/wrk-nginx.txt"
	c2=$("${CPU[@]}" cpu "$NGINX_PID")
	python3 "$SRC/bench/ks_load.py" lookup-round "$WORK/wrk-ks.txt" "$WORK/wrk-nginx.txt" \
		--duration "$DURATION" --round "$r" --cpu "$c0" "$c1" "$c_ng" "$c2" \
		>>"$WORK/lookup-rounds.txt"
	echo "round $r (round, then req/s, p99 ms, us CPU/req, non-2xx: ours, nginx): $(tail -1 "$WORK/lookup-rounds.txt")"
	c_ng=$c2
done
python3 "$SRC/bench/ks_load.py" lookup-report "$WORK/lookup-rounds.txt"
[[ $ENROLLS -gt 0 ]] || exit 0

echo "== enrollments: $ENROLLS per round from 4 client processes (core 1), each answer"
echo "   durably committed with a signed head covering it; servers on core 0;"
echo "   beside openssl x509 -req; $ROUNDS interleaved rounds"
: >"$WORK/enroll-rounds.txt"
for r in $(seq "$ROUNDS"); do
	python3 "$SRC/bench/ks_load.py" enroll-prep --server "$SERVER" --cacert "$WORK/tls.pem" \
		--work "$WORK" --count "$ENROLLS" --round "$r" --out "$WORK/enroll.json"
	n0=$(bench_pg_calls)
	c0=$("${CPU[@]}" cpu "$KS_PID" "$PG_PID")
	ours=$("${LOAD[@]}" python3 "$SRC/bench/ks_load.py" enroll-run --server "$SERVER" \
		--cacert "$WORK/tls.pem" --input "$WORK/enroll.json")
	c1=$("${CPU[@]}" cpu "$KS_PID" "$PG_PID")
	n1=$(bench_pg_calls)
	ours_cpu=$(python3 -c "print(f'{($c1 - $c0) * 1e6 / $ENROLLS:.0f}')")
	ours_rt=$(python3 -c "print(f'{($n1 - $n0) / $ENROLLS:.1f}')")
	read -r peer peer_cpu < <("${LOAD[@]}" python3 "$SRC/bench/ks_load.py" enroll-peer \
		--work "$WORK")
	printf 'round %d: anchor-keyserver %6.0f/s %6d us server CPU each (%s round trips) | openssl x509 -req %5.0f/s %6d us CPU each\n' \
		"$r" "$ours" "$ours_cpu" "$ours_rt" "$peer" "$peer_cpu"
	echo "$ours $ours_cpu $peer $peer_cpu" >>"$WORK/enroll-rounds.txt"
done
python3 "$SRC/bench/ks_load.py" enroll-report --rounds "$WORK/enroll-rounds.txt"
