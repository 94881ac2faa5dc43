#!/usr/bin/env bash
# bench/keyserver.sh - key-server throughput, beside a peer measured in the same run.
#
#  1. Certificate lookups over HTTPS keep-alive: wrk drives anchor-keyserver
#     (GET /v1/addresses/<addr> for N enrolled users) and then nginx serving
#     the very same response bodies as static files, same TLS certificate,
#     same number of worker threads/processes.  Prints both rates, the ratio
#     and the p99 latencies.
#  2. Enrollments per second (token + CSR -> certificate, durably committed),
#     beside `openssl x509 -req` signing the same requests with no storage.
#
# Enrollments go through the signer process (PROTOCOL.md §13) since it holds the
# issuer keys.  Measured on the shared 2-core development machine, release builds,
# two runs each alternating, (enrollments/s, openssl x509 -req/s in the same run):
#   before the signer (60738f2): (35, 7)  (62, 21)
#   with the signer:             (55, 12) (84, 26)
# The machine's load moved both figures more than the change did.
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
ENROLLS=${BENCH_ENROLLS:-300}

bench_init bench
echo "== setting up (PostgreSQL, anchor-keyserver, $USERS enrolled users)"
bench_start_pg
bench_make_tls
bench_start_keyserver "$BIN"
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
	PATHS_FILE=$WORK/paths.txt wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
		-s "$WORK/paths.lua" "$1" >"$2"
}
echo "== lookups: wrk -t$THREADS -c$CONNS -d${DURATION}s, $USERS addresses, HTTPS keep-alive"
# Warm both (caches, TLS sessions) for a moment before measuring.
DURATION=2 run_wrk "$SERVER" /dev/null
DURATION=2 run_wrk "https://127.0.0.1:$NG_PORT" /dev/null
run_wrk "$SERVER" "$WORK/wrk-ks.txt"
run_wrk "https://127.0.0.1:$NG_PORT" "$WORK/wrk-nginx.txt"

python3 "$SRC/bench/ks_load.py" report-wrk "$WORK/wrk-ks.txt" "$WORK/wrk-nginx.txt"

echo "== enrollments: $ENROLLS users, 4 concurrent clients, each answer durably committed"
python3 "$SRC/bench/ks_load.py" enroll --server "$SERVER" --cacert "$WORK/tls.pem" \
	--work "$WORK" --count "$ENROLLS"
