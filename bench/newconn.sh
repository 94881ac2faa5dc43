#!/usr/bin/env bash
# bench/newconn.sh - what a NEW HTTPS connection costs the server: one lookup per
# connection (TLS handshake, GET, "Connection: close"), for anchor-keyserver
# (GET /v1/addresses/<addr>) and anchor-reputation (GET /v1/query?ip=...), each
# beside nginx serving the very same answer as a static file with the same P-256
# certificate, TLS 1.2 and 1.3 offered on both sides.
#
# Three kinds of connection:
#   wrk      wrk -H "Connection: close": full handshakes, as the issue measured them
#   full     bench/tls_connect.c (OpenSSL): every connection a full handshake (a
#            client seen for the first time)
#   resume   tls_connect again, every connection offering the ticket of the one
#            before (TLS 1.3 PSK); wrk cannot resume sessions
#   keepalive  for reference: wrk over kept-alive connections, the cost of a request
#            once the connection is there (CPU per request)
#
# Every server runs with one worker pinned to CPU 0 (taskset, all its threads), the
# load generator on CPU 1.  The figure that matters is the server's CPU time per
# connection (utime+stime from /proc, all threads / all nginx processes), printed
# beside nginx's from the same round; rounds interleave the two servers (order
# swapped each round) and the median over the rounds is reported.  The machine is
# shared, so compare the ratio within a run, not figures across runs.
#
# Measured on the shared 2-core development machine (release builds, 3 rounds of 4 s,
# 8 connections), server CPU per request as a ratio to nginx's in the same run, key
# server / reputation service:
#                        wrk close   full        resume      keepalive
#   before (0deadfb)     2.30/2.35   0.69/0.73   0.94/1.00*  0.82/0.82
#   tickets, priorities  1.91/1.78   0.88/0.92   0.70/0.75   -
#   + poll() over TLS    0.68/0.54   0.60/0.67   0.52/0.73   0.82/0.67
#   (* before, nothing resumed: "resume" was a full handshake; absolute figures moved
#   by up to 2x between runs with the machine's load, the ratios far less)
# What made wrk's figure 2-2.5x nginx's was libmicrohttpd's epoll loop, which spins on
# a connection whose TLS handshake waits for the client (~180 recv() and ~80
# epoll_wait() per connection against 9 and 2 with poll()): the slower the client,
# the more it burnt, so over a real network it would cost more still.
#
# Knobs: BENCH_ROUNDS (3), BENCH_DURATION (seconds per measurement, 5), BENCH_CONNS
# (concurrent connections, 8).
# Usage: bench/newconn.sh BUILD_DIR   (make bench passes build/release and builds
# BUILD_DIR/bench/tls_connect)
# Only loopback addresses are used; every loop is bounded in count and time.
set -euo pipefail

BIN=${1:?usage: bench/newconn.sh BUILD_DIR}
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
THREADS=${BENCH_THREADS:-1}
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-5}
CONNS=${BENCH_CONNS:-8}
LOADGEN=$BIN/bench/tls_connect
REP_PID=
for b in anchor-keyserver anchor-reputation anchorctl bench/tls_connect; do
	[[ -x $BIN/$b ]] || {
		echo "bench/newconn.sh: $BIN/$b is missing (make all bench-build first)" >&2
		exit 1
	}
done

bench_init newconn
trap 'kill "$REP_PID" 2>/dev/null; bench_cleanup' EXIT

start_reputation() {
	local port
	port=$(bench_free_port)
	"$SRC/deploy/pgcluster.sh" psql "$WORK/pg" -qc "CREATE DATABASE rep" >/dev/null
	cat >"$WORK/rep.conf" <<CONF
listen_port = $port
tls_cert_file = $WORK/tls.pem
tls_key_file = $WORK/tls.key
db_conninfo = ${CONNINFO/dbname=anchor/dbname=rep}
sql_dir = $SRC/sql
http_threads = $THREADS
rate_limit = 0
max_connections_per_ip = 4096
log_level = warning
CONF
	"$BIN/anchor-reputation" -c "$WORK/rep.conf" 2>"$WORK/rep.log" &
	REP_PID=$!
	REP_PORT=$port
	for _ in $(seq 50); do
		curl -sf --cacert "$WORK/tls.pem" "https://127.0.0.1:$port/healthz" >/dev/null && return 0
		sleep 0.2
	done
	cat "$WORK/rep.log" >&2
	echo "anchor-reputation did not come up" >&2
	return 1
}

pin_cpu0() { # PID...: every thread of each process on CPU 0
	for p in "$@"; do taskset -a -p 0x1 "$p" >/dev/null; done
}

cpu_ticks() { # PID...: utime+stime summed, in clock ticks
	local sum=0 f
	for p in "$@"; do
		read -r -a f <"/proc/$p/stat"
		sum=$((sum + f[13] + f[14]))
	done
	echo "$sum"
}

# wrk (with "Connection: close", or keep-alive), its figures in tls_connect's words
wrk_run() { # URL [wrk options]
	local url=$1
	shift
	taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" |
		awk '/requests in/ {n = $1} /Requests\/sec/ {r = $2}
		     $1 == "99%" {p = $2; if (p ~ /us$/) p /= 1000; else if (p ~ /ms$/) p += 0; else p *= 1000}
		     /Non-2xx|Socket errors/ {f++}
		     END {printf "connections %d rate %s median_ms 0 p99_ms %.2f resumed 0 failed %d\n", n, r, p, f}'
}

# measure LABEL MODE PORT PATH PID...: one line "LABEL MODE cpu_ticks rate p99_ms resumed
# requests failed" to $WORK/results
measure() {
	local label=$1 mode=$2 port=$3 path=$4 c0 c1 out
	shift 4
	c0=$(cpu_ticks "$@")
	if [[ $mode == wrk ]]; then
		out=$(wrk_run "https://127.0.0.1:$port$path" -H "Connection: close")
	elif [[ $mode == keepalive ]]; then
		out=$(wrk_run "https://127.0.0.1:$port$path")
	else
		out=$(taskset -c 1 "$LOADGEN" 127.0.0.1 "$port" "$path" "$WORK/tls.pem" "$mode" \
			"$CONNS" "$DURATION")
	fi
	c1=$(cpu_ticks "$@")
	# connections N rate R median_ms M p99_ms P resumed K failed F
	read -r _ n _ rate _ _ _ p99 _ resumed _ failed <<<"$out"
	echo "$label $mode $((c1 - c0)) $rate $p99 $resumed $n $failed" >>"$WORK/results"
}

echo "== setting up (PostgreSQL, anchor-keyserver, anchor-reputation, nginx; one worker each)"
bench_start_pg
bench_make_tls
bench_start_keyserver "$BIN"
export ANCHOR_SERVER=$SERVER ANCHOR_CACERT=$WORK/tls.pem
python3 "$SRC/bench/ks_load.py" setup --server "$SERVER" --cacert "$WORK/tls.pem" \
	--operator-token "$OPTOKEN" --anchorctl "$BIN/anchorctl" --work "$WORK" --users 1
start_reputation
KS_PATH=$(head -1 "$WORK/paths.txt")
REP_PATH="/v1/query?ip=192.0.2.1"
mkdir -p "$WORK/www$(dirname "$KS_PATH")" "$WORK/www/v1"
curl -sf --cacert "$WORK/tls.pem" "$SERVER$KS_PATH" >"$WORK/www$KS_PATH"
curl -sf --cacert "$WORK/tls.pem" "https://127.0.0.1:$REP_PORT$REP_PATH" >"$WORK/www/v1/query"
bench_start_nginx
KS_PORT=${SERVER##*:}
NG_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID"))
pin_cpu0 "$KS_PID" "$REP_PID" "${NG_PIDS[@]}"

echo "== $ROUNDS rounds x {wrk, full, resume, keepalive} x {keyserver, reputation} x {ours, nginx}:" \
	"$CONNS connections at a time, ${DURATION}s each"
: >"$WORK/results"
for round in $(seq "$ROUNDS"); do
	for mode in wrk full resume keepalive; do
		if ((round % 2)); then
			measure keyserver "$mode" "$KS_PORT" "$KS_PATH" "$KS_PID"
			measure nginx-ks "$mode" "$NG_PORT" "$KS_PATH" "${NG_PIDS[@]}"
			measure reputation "$mode" "$REP_PORT" "$REP_PATH" "$REP_PID"
			measure nginx-rep "$mode" "$NG_PORT" "$REP_PATH" "${NG_PIDS[@]}"
		else
			measure nginx-ks "$mode" "$NG_PORT" "$KS_PATH" "${NG_PIDS[@]}"
			measure keyserver "$mode" "$KS_PORT" "$KS_PATH" "$KS_PID"
			measure nginx-rep "$mode" "$NG_PORT" "$REP_PATH" "${NG_PIDS[@]}"
			measure reputation "$mode" "$REP_PORT" "$REP_PATH" "$REP_PID"
		fi
	done
	echo "   round $round:" $(awk -v hz="$(getconf CLK_TCK)" \
		'{printf "%s/%s=%.0f\n", $1, $2, $7 ? $3 * 1e6 / hz / $7 : 0}' "$WORK/results" | tail -16)
done

python3 - "$WORK/results" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
rows = {}
hz = int(sys.argv[2])
for line in open(sys.argv[1]):
    label, mode, ticks, rate, p99, resumed, n, failed = line.split()
    cpu = int(ticks) * 1e6 / hz / max(1, int(n))  # microseconds per request
    rows.setdefault((label, mode), []).append(
        (cpu, float(rate), float(p99), int(resumed), int(n), int(failed)))
med = lambda xs: statistics.median(xs)
print(f"{'server':14}{'mode':>10}{'CPU us/req':>13}{'req/s':>9}{'p99 ms':>9}"
      f"{'resumed':>9}{'failed':>8}   (medians of {len(rows[('keyserver', 'full')])} rounds;"
      " one request per connection but in keepalive)")
for ours, peer in (("keyserver", "nginx-ks"), ("reputation", "nginx-rep")):
    for mode in ("wrk", "full", "resume", "keepalive"):
        for label in (ours, peer):
            r = rows[(label, mode)]
            res = sum(x[3] for x in r) / max(1, sum(x[4] for x in r))
            print(f"{label:14}{mode:>10}{med([x[0] for x in r]):13.1f}"
                  f"{med([x[1] for x in r]):9.0f}{med([x[2] for x in r]):9.2f}"
                  f"{res:9.0%}{sum(x[5] for x in r):8d}")
        a, b = rows[(ours, mode)], rows[(peer, mode)]
        ratios = [x[0] / y[0] for x, y in zip(a, b) if y[0] > 0]
        print(f"  {ours}/nginx CPU per request, {mode}: median of per-round ratios "
              f"{med(ratios):.2f} (goal: <= 1.00); rounds "
              + " ".join(f"{x:.2f}" for x in ratios))
PY
