#!/usr/bin/env bash
# bench/poison.sh - how many fresh anchored domains a ring needs to poison anchor-reputation:
# list an IP, list a domain that never signed the mail, whitelist an IP, vouch an IP to
# `known`, unlist what five honest domains listed, discredit an honest reporter; for a ring
# of BENCH_RING (K, default 8) domains on one network and on BENCH_NETS (N, default 3)
# networks (their mail servers' /24s in DNS), with the defences off ("before"), with the
# defaults against a fresh ring, and against a patient ring (newcomer ramp and burst
# window waited out).  Printed as a table; docs/operator-reputation.md §4b is the threat
# model it measures.  The world (PostgreSQL, key server, anchored domains in NSD) and the
# daemon are the real ones, built by bench/poison.py with the integration tests' helpers.
#
# Usage: bench/poison.sh BUILD_DIR   (make bench passes build/release)
# Only loopback addresses are used; every loop is bounded by the ring's size.
set -euo pipefail

BIN=${1:?usage: bench/poison.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
for b in anchor-reputation anchor-keyserver anchorctl anchor-dns; do
	[[ -x $BIN/$b ]] || {
		echo "bench/poison.sh: $BIN/$b is missing (make first)" >&2
		exit 1
	}
done
exec /usr/bin/python3 "$SRC/bench/poison.py" "$BIN"
