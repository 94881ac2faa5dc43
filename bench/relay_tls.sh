#!/usr/bin/env bash
# bench/relay_tls.sh - messages per second and server CPU per message through anchor-relay
# beside Postfix, both with STARTTLS inbound and TLS required outbound, the relay signing
# with Ed25519 (see bench/relay_tls_load.py).  The load generator and the TLS sink are C
# (bench/smtp_load.c, bench/smtp_sink.c, built by `make bench`).  Servers pinned to CPU 0,
# load and sink to CPU 1, interleaved rounds, medians.
#
# Usage: bench/relay_tls.sh BUILD_DIR   (make bench passes build/release)
# Knobs: BENCH_RELAY_COUNT, BENCH_RELAY_SIZE, BENCH_RELAY_CONNS, BENCH_RELAY_PER_CONN,
# BENCH_RELAY_RESUME, BENCH_RELAY_ROUNDS, BENCH_RELAY_WARMUP.  Needs root (Postfix); only loopback addresses are used.
set -euo pipefail

BIN=${1:?usage: bench/relay_tls.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
for t in postfix nsd; do
	command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || {
		echo "bench/relay_tls.sh: $t is missing (deploy/install-deps.sh)" >&2
		exit 1
	}
done
for f in anchor-relay bench/smtp_load bench/smtp_sink; do
	[[ -x $BIN/$f ]] || {
		echo "bench/relay_tls.sh: $BIN/$f is missing (make bench-build)" >&2
		exit 1
	}
done
exec /usr/bin/python3 "$SRC/bench/relay_tls_load.py" "$BIN"
