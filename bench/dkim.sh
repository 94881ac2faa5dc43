#!/usr/bin/env bash
# bench/dkim.sh - DKIM signatures verified per second with lib/dkim, beside `openssl speed`
# for the same algorithms, in one run.
#
# bench/dkim_verify.c verifies one signature over a 4 KiB message, ed25519-sha256 and
# rsa-sha256 (2048 bits), relaxed/relaxed: message and tag parsing, canonicalisation, body
# and header hashes, the key record's parsing and the signature check.  The peer is
# `openssl speed -seconds 3 ed25519 rsa2048`: the bare signature check on a digest, the
# ceiling for any DKIM verifier built on OpenSSL.  Both count per second of user CPU
# time (openssl speed's divisor unless -elapsed), both run pinned to the same core
# (BENCH_CPU, 0), alternately, BENCH_ROUNDS (3) times; the medians are printed with lib/dkim's share of the ceiling and
# the CPU time per verification, then how fast the key record alone parses.
#
# Usage: bench/dkim.sh BUILD_DIR   (make bench passes build/release)
# BENCH_DKIM_SECONDS (3), BENCH_DKIM_SIZE (4096), BENCH_ROUNDS, BENCH_CPU override.
set -euo pipefail

BIN=${1:?usage: bench/dkim.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${BENCH_DKIM_SECONDS:-3}
SIZE=${BENCH_DKIM_SIZE:-4096}
ROUNDS=${BENCH_ROUNDS:-3}
CPU=${BENCH_CPU:-0}

WORK=$(mktemp -d /tmp/anchor-bench-dkim.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

make -C "$SRC" --no-print-directory BUILD="$BIN" bench-build >/dev/null
for r in $(seq "$ROUNDS"); do
	taskset -c "$CPU" "$BIN/bench/dkim_verify" "$SECONDS_EACH" "$SIZE" >"$WORK/ours.$r"
	taskset -c "$CPU" openssl speed -seconds "$SECONDS_EACH" ed25519 rsa2048 \
		>"$WORK/openssl.$r" 2>/dev/null
done

# median KEY FILES...: the median over rounds of a "key value" line of dkim_verify.
median_ours() {
	local k=$1
	for r in $(seq "$ROUNDS"); do awk -v k="$k" '$1 == k {print $2; exit}' "$WORK/ours.$r"; done |
		sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
# The verify/s column (the last) of openssl speed's line for an algorithm, median.
median_ossl() {
	for r in $(seq "$ROUNDS"); do awk "$1"' {print $NF; exit}' "$WORK/openssl.$r"; done |
		sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
ossl_rsa=$(median_ossl '/^rsa 2048 bits/')
ossl_ed=$(median_ossl '/\(Ed25519\)/')
if [[ -z $ossl_rsa || -z $ossl_ed ]]; then
	echo "bench/dkim.sh: could not read openssl speed's output:" >&2
	cat "$WORK/openssl.1" >&2
	exit 1
fi

echo "== DKIM verification, $(median_ours message_bytes)-byte message, relaxed/relaxed, 1 thread" \
	"on CPU $CPU, median of $ROUNDS alternating rounds, per CPU second"
printf '%-16s %14s %10s %18s %10s %10s %14s\n' algorithm "lib/dkim ver/s" "µs each" \
	"openssl speed ver/s" "µs each" "lib/ossl" "lib/dkim sign/s"
for a in ed25519 rsa2048; do
	ours=$(median_ours "${a}_verify_per_s")
	if [[ $a == ed25519 ]]; then peer=$ossl_ed; name=ed25519-sha256; else peer=$ossl_rsa; name=rsa-sha256; fi
	printf '%-16s %14s %10s %18s %10s %10s %14s\n' "$name" "$ours" \
		"$(awk -v a="$ours" 'BEGIN {printf "%.1f", 1e6 / a}')" "$peer" \
		"$(awk -v a="$peer" 'BEGIN {printf "%.1f", 1e6 / a}')" \
		"$(awk -v a="$ours" -v b="$peer" 'BEGIN {printf "%.2f", a / b}')" \
		"$(median_ours "${a}_sign_per_s")"
done
echo "(openssl speed: the bare signature check on a digest; lib/dkim: the whole message,"
echo " the key record handed over each time and parsed once (lib/dkim caches parsed keys;" \
	"a parse alone: ed25519 $(median_ours ed25519_key_parse_per_s)/s, rsa2048" \
	"$(median_ours rsa2048_key_parse_per_s)/s))"
