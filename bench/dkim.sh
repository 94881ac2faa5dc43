#!/usr/bin/env bash
# bench/dkim.sh - DKIM signatures verified per second with lib/dkim, beside `openssl speed`
# for the same algorithms, in one run.
#
# bench/dkim_verify.c verifies one signature over a 4 KiB message, ed25519-sha256 and
# rsa-sha256 (2048 bits), relaxed/relaxed: message and tag parsing, canonicalisation, body
# and header hashes, the key record's parsing and the signature check.  The peer is
# `openssl speed -seconds 3 ed25519 rsa2048`: the bare signature check on a digest, the
# ceiling for any DKIM verifier built on OpenSSL.  Prints both rates and lib/dkim's share
# of the ceiling, then how fast the key record alone parses.
#
# Usage: bench/dkim.sh BUILD_DIR   (make bench passes build/release)
# BENCH_DKIM_SECONDS (3) and BENCH_DKIM_SIZE (4096) override.
set -euo pipefail

BIN=${1:?usage: bench/dkim.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${BENCH_DKIM_SECONDS:-3}
SIZE=${BENCH_DKIM_SIZE:-4096}

WORK=$(mktemp -d /tmp/anchor-bench-dkim.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

make -C "$SRC" --no-print-directory BUILD="$BIN" bench-build >/dev/null
"$BIN/bench/dkim_verify" "$SECONDS_EACH" "$SIZE" >"$WORK/ours.txt"
openssl speed -seconds "$SECONDS_EACH" ed25519 rsa2048 >"$WORK/openssl.txt" 2>/dev/null

# value KEY: the value of a "key value" line of dkim_verify's output.
value() {
	awk -v k="$1" '$1 == k {print $2; exit}' "$WORK/ours.txt"
}
# The verify/s column (the last) of openssl speed's line for an algorithm.
ossl_rsa=$(awk '/^rsa 2048 bits/ {print $NF; exit}' "$WORK/openssl.txt")
ossl_ed=$(awk '/\(Ed25519\)/ {print $NF; exit}' "$WORK/openssl.txt")
if [[ -z $ossl_rsa || -z $ossl_ed ]]; then
	echo "bench/dkim.sh: could not read openssl speed's output:" >&2
	cat "$WORK/openssl.txt" >&2
	exit 1
fi

echo "== DKIM verification, $(value message_bytes)-byte message, relaxed/relaxed, 1 thread"
printf '%-16s %16s %18s %10s %14s\n' algorithm "lib/dkim ver/s" "openssl speed ver/s" "lib/ossl" \
	"lib/dkim sign/s"
for a in ed25519 rsa2048; do
	ours=$(value "${a}_verify_per_s")
	if [[ $a == ed25519 ]]; then peer=$ossl_ed; name=ed25519-sha256; else peer=$ossl_rsa; name=rsa-sha256; fi
	printf '%-16s %16s %18s %10s %14s\n' "$name" "$ours" "$peer" \
		"$(awk -v a="$ours" -v b="$peer" 'BEGIN {printf "%.2f", a / b}')" \
		"$(value "${a}_sign_per_s")"
done
echo "(openssl speed: the bare signature check on a digest; lib/dkim: the whole message,"
echo " the key record handed over each time and parsed once (lib/dkim caches parsed keys;" \
	"a parse alone: ed25519 $(value ed25519_key_parse_per_s)/s, rsa2048 $(value rsa2048_key_parse_per_s)/s))"
