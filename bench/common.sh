# bench/common.sh - what the HTTPS benchmarks share; sourced, not run.
#
#   bench_init NAME              WORK (a private temp dir, removed at exit), SRC
#   bench_free_port              a free loopback TCP port
#   bench_start_pg               PostgreSQL in WORK/pg; sets CONNINFO (BENCH_PGSTAT=1:
#                                with pg_stat_statements, for bench_pg_calls)
#   bench_pg_calls               statements run so far (BENCH_PGSTAT=1), else 0: the
#                                benches print round trips per operation from it
#   bench_make_tls               WORK/tls.pem + tls.key (P-256, localhost/127.0.0.1)
#   bench_start_keyserver BIN    anchor-keyserver with rate limiting off (KS_HTTP_THREADS
#                                request threads, THREADS by default); sets KS_PID,
#                                SERVER, OPTOKEN (the operator token)
#   bench_start_nginx            nginx serving WORK/www over TLS with the same certificate
#                                and THREADS workers, keep-alive, TLS 1.2 and 1.3 as the
#                                daemons offer (nginx 1.22 defaults to 1.0-1.2); sets NG_PORT
#
# Every daemon runs on loopback only and is stopped, and WORK removed, at exit.

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
THREADS=${BENCH_THREADS:-2}
KS_PID= NGINX_PID=

bench_cleanup() {
	# BENCH_PGSTAT_OUT=FILE: which statements the round trips were, by count.
	[[ ${BENCH_PGSTAT:-0} == 1 && -n ${BENCH_PGSTAT_OUT:-} ]] &&
		"$SRC/deploy/pgcluster.sh" psql "$WORK/pg" -A -c "SELECT calls,
			round(total_exec_time::numeric / calls, 3) AS ms_each, left(query, 160)
			FROM pg_stat_statements ORDER BY calls DESC LIMIT 40" >"$BENCH_PGSTAT_OUT" 2>&1
	[[ -n $KS_PID ]] && kill "$KS_PID" 2>/dev/null && wait "$KS_PID" 2>/dev/null
	[[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null
	"$SRC/deploy/pgcluster.sh" stop "$WORK/pg" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}

bench_init() {
	WORK=$(mktemp -d "/tmp/anchor-$1.XXXXXX")
	chmod 755 "$WORK" # the PostgreSQL server runs as postgres and must reach WORK/pg
	trap bench_cleanup EXIT
}

bench_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_start_pg() {
	"$SRC/deploy/pgcluster.sh" init "$WORK/pg" >/dev/null
	CONNINFO=$("$SRC/deploy/pgcluster.sh" conninfo "$WORK/pg")
	[[ ${BENCH_PGSTAT:-0} == 1 ]] || return 0
	# Count the statements PostgreSQL runs (BEGIN, COMMIT and SAVEPOINT included): a
	# client's statements are its round trips.
	"$SRC/deploy/pgcluster.sh" psql "$WORK/pg" -q -c \
		"ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
	"$SRC/deploy/pgcluster.sh" stop "$WORK/pg" >/dev/null
	"$SRC/deploy/pgcluster.sh" start "$WORK/pg" >/dev/null
	"$SRC/deploy/pgcluster.sh" psql "$WORK/pg" -q -c "CREATE EXTENSION pg_stat_statements"
}

# The statements PostgreSQL has run so far (BENCH_PGSTAT=1; else 0).
bench_pg_calls() {
	if [[ ${BENCH_PGSTAT:-0} == 1 ]]; then
		"$SRC/deploy/pgcluster.sh" psql "$WORK/pg" -At -c \
			"SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
	else
		echo 0
	fi
}

bench_make_tls() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$WORK/tls.key" -out "$WORK/tls.pem" -subj /CN=localhost \
		-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
}

bench_start_keyserver() { # BIN
	local port
	OPTOKEN=$(openssl rand -hex 32)
	port=$(bench_free_port)
	cat >"$WORK/ks.conf" <<CONF
listen_port = $port
tls_cert_file = $WORK/tls.pem
tls_key_file = $WORK/tls.key
db_conninfo = $CONNINFO
sql_dir = $SRC/sql
issuer_kek_file = $WORK/issuer.kek
operator_token_hash = $(printf %s "$OPTOKEN" | sha256sum | cut -d' ' -f1)
http_threads = ${KS_HTTP_THREADS:-$THREADS}
rate_limit = 0
max_connections_per_ip = 4096
log_level = warning
CONF
	"$1/anchor-keyserver" -c "$WORK/ks.conf" 2>"$WORK/ks.log" &
	KS_PID=$!
	SERVER=https://127.0.0.1:$port
	for _ in $(seq 50); do
		curl -sf --cacert "$WORK/tls.pem" "$SERVER/healthz" >/dev/null && return 0
		sleep 0.2
	done
	cat "$WORK/ks.log" >&2
	echo "anchor-keyserver did not come up" >&2
	return 1
}

bench_start_nginx() {
	NG_PORT=$(bench_free_port)
	mkdir -p "$WORK/nginx" "$WORK/www"
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
	ssl_protocols TLSv1.2 TLSv1.3;
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
}
