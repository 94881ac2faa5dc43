#!/usr/bin/env bash
# bench/merkle.sh - the transparency log's Merkle tree (lib/merkle), beside a
# peer measured in the same run.
#
# For a generated log of 1 million and 10 million entries, held in memory
# (bench/merkle_bench.c):
#   - appends per second, the tree head recomputed after every append;
#   - inclusion and consistency proofs: size in bytes, time to make one and
#     time to verify one with lib/merkle;
#   - the peer: the independent Python implementation of RFC 9162 used by the
#     integration tests (tests/integration/rfc9162_ref.py) verifying the very
#     same proofs, its time per verification and the ratio to the C verifier.
#
# Usage: bench/merkle.sh BUILD_DIR   (make bench passes build/release)
# BENCH_MERKLE_SIZES="1000000 10000000" and BENCH_MERKLE_SAMPLES=20000 override.
# 10 million entries hold about 640 MB of node hashes.
set -euo pipefail

BIN=${1:?usage: bench/merkle.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${BENCH_MERKLE_SIZES:-"1000000 10000000"}
SAMPLES=${BENCH_MERKLE_SAMPLES:-20000}
PYTHON=${PYTHON:-/usr/bin/python3}

WORK=$(mktemp -d /tmp/anchor-bench-merkle.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

make -C "$SRC" --no-print-directory BUILD="$BIN" bench-build >/dev/null
TOOL=$BIN/bench/merkle_bench

# value KEY FILE: the value of a "key value" line.
value() {
	awk -v k="$1" '$1 == k {print $2; exit}' "$2"
}

echo "== Merkle log in memory: lib/merkle vs the Python RFC 9162 reference, same proofs"
printf '%-10s %-11s %-12s %-15s %-9s %-13s %-15s %s\n' entries appends/s proof \
	"bytes avg/max" "make us" "verify us C" "verify us ref" "ref/C"
for n in $SIZES; do
	out=$WORK/c-$n.txt
	"$TOOL" "$n" "$WORK/proofs-$n.json" "$SAMPLES" >"$out"
	"$PYTHON" "$SRC/tests/integration/rfc9162_ref.py" verify "$WORK/proofs-$n.json" \
		>"$WORK/py-$n.txt"
	rate=$(value append_per_s "$out")
	for kind in inclusion consistency; do
		c=$(value "${kind}_verify_us" "$out")
		py=$(value "${kind}_us" "$WORK/py-$n.txt")
		printf '%-10s %-11s %-12s %-15s %-9s %-13s %-15s %s\n' "$n" "$rate" "$kind" \
			"$(value "${kind}_bytes_avg" "$out")/$(value "${kind}_bytes_max" "$out")" \
			"$(value "${kind}_gen_us" "$out")" "$c" "$py" \
			"$(awk -v a="$py" -v b="$c" 'BEGIN {printf "%.1fx", a / b}')"
	done
	rm -f "$WORK/proofs-$n.json"
done
echo "(make/verify: mean over $SAMPLES random proofs against the full tree; the reference"
echo " verifies the first 2000 of them, best of 3 passes; appends include the new head)"
