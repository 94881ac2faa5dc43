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
# Usage: bench/keyserver.sh BUILD_DIR   (make bench passes build/release)
# Only loopback addresses are used; every loop is bounded in count and time.
set -euo pipefail

BIN=${1:?usage: bench/keyserver.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
USERS=${BENCH_USERS:-200}
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-32}
THREADS=${BENCH_THREADS:-2}
ENROLLS=${BENCH_ENROLLS:-300}

WORK=$(mktemp -d /tmp/anchor-bench.XXXXXX)
chmod 755 "$WORK"
KS_PID= NGINX_PID=
cleanup() {
	[[ -n $KS_PID ]] && kill "$KS_PID" 2>/dev/null && wait "$KS_PID" 2>/dev/null
	[[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null
	"$SRC/deploy/pgcluster.sh" stop "$WORK/pg" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "== setting up (PostgreSQL, anchor-keyserver, $USERS enrolled users)"
"$SRC/deploy/pgcluster.sh" init "$WORK/pg" >/dev/null
CONNINFO=$("$SRC/deploy/pgcluster.sh" conninfo "$WORK/pg")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout "$WORK/tls.key" -out "$WORK/tls.pem" -subj /CN=localhost \
	-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
OPTOKEN=$(openssl rand -hex 32)
KS_PORT=$(free_port)
cat >"$WORK/ks.conf" <<CONF
listen_port = $KS_PORT
tls_cert_file = $WORK/tls.pem
tls_key_file = $WORK/tls.key
db_conninfo = $CONNINFO
sql_dir = $SRC/sql
issuer_kek_file = $WORK/issuer.kek
operator_token_hash = $(printf %s "$OPTOKEN" | sha256sum | cut -d' ' -f1)
http_threads = $THREADS
rate_limit = 0
log_level = warning
CONF
"$BIN/anchor-keyserver" -c "$WORK/ks.conf" 2>"$WORK/ks.log" &
KS_PID=$!
export ANCHOR_SERVER=https://127.0.0.1:$KS_PORT ANCHOR_CACERT=$WORK/tls.pem
for _ in $(seq 50); do
	curl -sf --cacert "$WORK/tls.pem" "$ANCHOR_SERVER/healthz" >/dev/null && break
	sleep 0.2
done

python3 "$SRC/bench/ks_load.py" setup --server "$ANCHOR_SERVER" --cacert "$WORK/tls.pem" \
	--operator-token "$OPTOKEN" --anchorctl "$BIN/anchorctl" --work "$WORK" --users "$USERS"

# The same bodies as static files for nginx.
mkdir -p "$WORK/www"
while read -r path; do
	mkdir -p "$WORK/www$(dirname "$path")"
	curl -sf --cacert "$WORK/tls.pem" "$ANCHOR_SERVER$path" >"$WORK/www$path"
done <"$WORK/paths.txt"

NG_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes $THREADS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 1000000;
	ssl_session_cache shared:SSL:1m;
	default_type application/json;
	server {
		listen 127.0.0.1:$NG_PORT ssl;
		ssl_certificate $WORK/tls.pem;
		ssl_certificate_key $WORK/tls.key;
		root $WORK/www;
	}
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
sleep 0.5

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
DURATION=2 run_wrk "https://127.0.0.1:$KS_PORT" /dev/null
DURATION=2 run_wrk "https://127.0.0.1:$NG_PORT" /dev/null
run_wrk "https://127.0.0.1:$KS_PORT" "$WORK/wrk-ks.txt"
run_wrk "https://127.0.0.1:$NG_PORT" "$WORK/wrk-nginx.txt"

python3 "$SRC/bench/ks_load.py" report-wrk "$WORK/wrk-ks.txt" "$WORK/wrk-nginx.txt"

echo "== enrollments: $ENROLLS users, 4 concurrent clients, each answer durably committed"
python3 "$SRC/bench/ks_load.py" enroll --server "$ANCHOR_SERVER" --cacert "$WORK/tls.pem" \
	--work "$WORK" --count "$ENROLLS"
