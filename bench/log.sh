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
SRC=$(cd "$(dirname "$0")/.." && pwd)
APPENDS=${BENCH_APPENDS:-2000}
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-32}
THREADS=${BENCH_THREADS:-2}
USERS=20

WORK=$(mktemp -d /tmp/anchor-logbench.XXXXXX)
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

echo "== setting up (PostgreSQL, anchor-keyserver, a domain with $USERS users)"
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
SERVER=https://127.0.0.1:$KS_PORT
for _ in $(seq 50); do
	curl -sf --cacert "$WORK/tls.pem" "$SERVER/healthz" >/dev/null && break
	sleep 0.2
done
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
