#!/usr/bin/env bash
# bench/relay_encrypt.sh - anchor-relay's outbound messages/s and CPU per message with
# gateway encryption (PROTOCOL.md §12.9) beside the same relay without it, in one run
# (see bench/relay_encrypt.py): pinned, rounds interleaved, medians.
#
# Usage: bench/relay_encrypt.sh BUILD_DIR
# Knobs: BENCH_RELAY_COUNT, BENCH_RELAY_SIZE, BENCH_RELAY_SESSIONS, BENCH_RELAY_ROUNDS,
# BENCH_RELAY_WARMUP.  Needs root (PostgreSQL, smtp-sink -u postfix); loopback only.
set -euo pipefail

BIN=${1:?usage: bench/relay_encrypt.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
for t in smtp-source smtp-sink nsd openssl; do
	command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || {
		echo "bench/relay_encrypt.sh: $t is missing (deploy/install-deps.sh)" >&2
		exit 1
	}
done
for p in anchor-relay anchor-keyserver anchorctl anchor-dns; do
	[[ -x $BIN/$p ]] || {
		echo "bench/relay_encrypt.sh: $BIN/$p is missing (make BUILD=$BIN)" >&2
		exit 1
	}
done
exec /usr/bin/python3 "$SRC/bench/relay_encrypt.py" "$BIN"
