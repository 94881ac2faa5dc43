#!/usr/bin/env bash
# bench/partial.sh - bytes moved between two anchored relays for one refused (never fetched)
# unknown-tier message: receiver-chosen transfer (ANCHOR-PARTIAL, text view) beside a full
# transfer, in one run (see bench/partial.py).  Only loopback addresses are used.
#
# Usage: bench/partial.sh BUILD_DIR   (make bench passes build/release)
# Knob: BENCH_PARTIAL_ATTACHMENT (octets of the attachment, 1 MiB by default).
set -euo pipefail

BIN=${1:?usage: bench/partial.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
[[ -x $BIN/anchor-relay ]] || {
	echo "bench/partial.sh: $BIN/anchor-relay is missing (make)" >&2
	exit 1
}
exec /usr/bin/python3 "$SRC/bench/partial.py" "$BIN"
