#!/usr/bin/env bash
# pgcluster.sh - a throwaway PostgreSQL cluster for development and tests.
#
#   pgcluster.sh init     DIR   create the cluster if needed, start it, create database "anchor"
#   pgcluster.sh start    DIR   start it (creating it first if DIR holds none)
#   pgcluster.sh stop     DIR   stop it (fast shutdown), waiting until it is down
#   pgcluster.sh status   DIR   exit 0 when it runs, 3 when it does not
#   pgcluster.sh conninfo DIR   print the libpq conninfo of database "anchor"
#   pgcluster.sh psql     DIR [psql arguments...]
#
# Layout: DIR/data (PGDATA), DIR/sock (the Unix socket, the only way in:
# listen_addresses is empty), DIR/postgresql.log.
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` system user (created by Debian's postgresql package) or, failing
# that, as a system user `anchor` made here.  That user must be able to reach
# DIR: when a parent directory is closed to it (/root is 0700) or the socket
# path would be longer than a Unix socket allows, the cluster lives in
# /tmp/anchormail-pg-<hash of DIR> and DIR becomes a symbolic link to it.
# Run as an ordinary user, the server runs as that user.
#
# Authentication is `trust` for local (socket) connections: the cluster
# serves nothing on TCP, the socket directory lives inside the cluster's own
# directory, and the data is throwaway.  The connecting programs (the key
# server, the tests, psql) run as root or as the developer and connect as the
# database superuser `postgres`.  Durability settings stay at their safe
# defaults (fsync, synchronous_commit, full_page_writes on) so that tests see
# the same commit behaviour as production.
set -euo pipefail

PROG=pgcluster.sh
DBNAME=anchor
DBUSER=postgres
SOCK_MAX=107 # sizeof(sun_path) - 1
SOCK_SUFFIX=/sock/.s.PGSQL.5432

die() {
	echo "$PROG: $*" >&2
	exit 1
}

find_pg_bin() {
	local d
	d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
		sort -V | tail -n 1)
	[[ -n $d && -x $d/initdb ]] || die "no PostgreSQL server found under /usr/lib/postgresql (run deploy/install-deps.sh)"
	echo "$d"
}

# The OS user the server runs as.
pick_os_user() {
	if ((EUID != 0)); then
		id -un
	elif id postgres >/dev/null 2>&1; then
		echo postgres
	else
		if ! id anchor >/dev/null 2>&1; then
			useradd --system --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin anchor ||
				die "cannot create the system user 'anchor'"
		fi
		echo anchor
	fi
}

# Run a command as the cluster's OS user, from a directory it can enter.
as_owner() {
	if ((EUID != 0)); then
		(cd / && LC_ALL=C "$@")
	else
		(cd / && LC_ALL=C runuser -u "$OS_USER" -- "$@")
	fi
}

# Can the cluster's user reach directory $1?
owner_can_reach() {
	as_owner test -x "$1" 2>/dev/null
}

# Decide where the cluster really lives: DIR itself or a /tmp directory that
# DIR links to.  Sets REAL.
resolve_dir() {
	local dir=$1 create=$2 parent hash sock_len
	if [[ -L $dir ]]; then
		REAL=$(readlink -f "$dir")
		[[ -d $REAL ]] || ((!create)) || mkdir -p "$REAL"
		return 0
	fi
	if ((!create)); then
		REAL=$dir
		return 0
	fi
	parent=$(dirname "$dir")
	mkdir -p "$parent"
	sock_len=$((${#dir} + ${#SOCK_SUFFIX}))
	if owner_can_reach "$parent" && ((sock_len <= SOCK_MAX)); then
		REAL=$dir
		mkdir -p "$REAL"
		return 0
	fi
	hash=$(printf '%s' "$dir" | sha256sum | cut -c1-12)
	REAL=/tmp/anchormail-pg-$hash
	if [[ -d $dir ]]; then
		rmdir "$dir" 2>/dev/null ||
			die "$dir is not reachable by user $OS_USER (or its socket path is too long) and is not empty; remove it or choose a directory under /tmp"
	fi
	mkdir -p "$REAL"
	ln -sfn "$REAL" "$dir"
	echo "$PROG: $OS_USER cannot use $dir (a parent directory is closed to it or the path is too long); the cluster lives in $REAL, $dir links to it" >&2
}

# setup_paths DIR CREATE: CREATE=1 may create DIR (or its /tmp stand-in).
setup_paths() {
	local dir
	dir=$(realpath -m -- "$1")
	PG_BIN=$(find_pg_bin)
	OS_USER=$(pick_os_user)
	resolve_dir "$dir" "$2"
	DATA=$REAL/data
	SOCK=$REAL/sock
	LOG=$REAL/postgresql.log
	CONNINFO="host=$SOCK dbname=$DBNAME user=$DBUSER"
}

is_initialised() {
	[[ -f $DATA/PG_VERSION ]]
}

is_running() {
	as_owner "$PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

cluster_init() {
	if is_initialised; then
		return 0
	fi
	chown "$OS_USER" "$REAL"
	chmod 0700 "$REAL"
	as_owner mkdir -p "$SOCK"
	as_owner chmod 0755 "$SOCK"
	echo "$PROG: initdb in $DATA (server runs as $OS_USER)"
	as_owner "$PG_BIN/initdb" --pgdata="$DATA" --username="$DBUSER" --encoding=UTF8 \
		--no-locale --auth-local=trust --auth-host=reject >"$REAL/initdb.log" 2>&1 ||
		{ cat "$REAL/initdb.log" >&2; die "initdb failed"; }
	as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# --- anchormail throwaway cluster (deploy/pgcluster.sh) ---
listen_addresses = ''
unix_socket_directories = '$SOCK'
unix_socket_permissions = 0777
max_connections = 200
shared_buffers = 32MB
fsync = on
synchronous_commit = on
full_page_writes = on
log_min_messages = warning
log_line_prefix = '%m [%p] %d '
EOF
	as_owner tee "$DATA/pg_hba.conf" >/dev/null <<EOF
# anchormail throwaway cluster: Unix socket only, no TCP listener at all.
# TYPE  DATABASE  USER  METHOD
local   all       all   trust
EOF
}

cluster_start() {
	if is_running; then
		return 0
	fi
	as_owner "$PG_BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 >/dev/null ||
		{ tail -n 20 "$LOG" >&2 || true; die "PostgreSQL did not start (log: $LOG)"; }
	local i
	for ((i = 0; i < 60; i++)); do
		"$PG_BIN/pg_isready" -q -h "$SOCK" -d postgres -U "$DBUSER" && return 0
		sleep 0.5
	done
	die "PostgreSQL does not answer on $SOCK (log: $LOG)"
}

ensure_database() {
	local exists
	exists=$("$PG_BIN/psql" -XAtq -h "$SOCK" -U "$DBUSER" -d postgres \
		-c "SELECT 1 FROM pg_database WHERE datname = '$DBNAME'")
	if [[ $exists != 1 ]]; then
		"$PG_BIN/createdb" -h "$SOCK" -U "$DBUSER" "$DBNAME"
	fi
}

cmd_init() {
	cluster_init
	cluster_start
	ensure_database
	echo "$PROG: running in $REAL"
	echo "conninfo: $CONNINFO"
}

cmd_stop() {
	if ! is_initialised; then
		echo "$PROG: no cluster in $REAL"
		return 0
	fi
	if ! is_running; then
		echo "$PROG: not running ($REAL)"
		return 0
	fi
	as_owner "$PG_BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null ||
		die "PostgreSQL did not stop (log: $LOG)"
	echo "$PROG: stopped ($REAL)"
}

cmd_status() {
	if is_initialised && is_running; then
		echo "$PROG: running in $REAL"
		echo "conninfo: $CONNINFO"
		return 0
	fi
	echo "$PROG: not running ($REAL)"
	return 3
}

usage() {
	echo "usage: $PROG {init|start|stop|status|conninfo|psql} DIR [psql arguments]" >&2
	exit 2
}

main() {
	[[ $# -ge 2 ]] || usage
	local cmd=$1 create=0
	shift
	[[ -n $1 ]] || usage
	[[ $cmd == init || $cmd == start ]] && create=1
	setup_paths "$1" "$create"
	shift
	case $cmd in
	init | start) cmd_init ;;
	stop) cmd_stop ;;
	status) cmd_status ;;
	conninfo) echo "$CONNINFO" ;;
	psql) exec "$PG_BIN/psql" -X -h "$SOCK" -U "$DBUSER" -d "$DBNAME" "$@" ;;
	*) usage ;;
	esac
}

main "$@"
