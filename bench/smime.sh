#!/usr/bin/env bash
# bench/smime.sh - S/MIME encryption of one message per second: `anchorctl mail encrypt`'s
# work in-process (lib/mail/smime) beside `openssl cms -encrypt` doing the same, in one run.
#
# bench/smime_encrypt.c makes ten P-256 recipient certificates and a 4 KiB message and
# encrypts it (AuthEnvelopedData, AES-256-GCM, ECDH with the SHA-256 KDF) to 1 and to 10
# recipients, counting per CPU second.  The peer is `openssl cms -encrypt -aes-256-gcm
# -keyopt ecdh_kdf_md:sha256` on the same files, one process per message as a user would
# run it: its CPU time (process start included, which is what a command-line S/MIME tool
# costs) is summed over BENCH_SMIME_RUNS (40) runs.  Both pinned to the same core
# (BENCH_CPU, 0), alternately, BENCH_ROUNDS (3) times; medians and ratios are printed.
# The lookups `mail encrypt` makes first (key server, log proofs) are not in either:
# bench/discovery.sh measures those.
#
# Usage: bench/smime.sh BUILD_DIR   (make bench passes build/release)
# BENCH_SMIME_SECONDS (3), BENCH_SMIME_SIZE (4096), BENCH_SMIME_RUNS, BENCH_ROUNDS,
# BENCH_CPU override.
set -euo pipefail

BIN=${1:?usage: bench/smime.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${BENCH_SMIME_SECONDS:-3}
SIZE=${BENCH_SMIME_SIZE:-4096}
RUNS=${BENCH_SMIME_RUNS:-40}
ROUNDS=${BENCH_ROUNDS:-3}
CPU=${BENCH_CPU:-0}

WORK=$(mktemp -d /tmp/anchor-bench-smime.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

make -C "$SRC" --no-print-directory BUILD="$BIN" bench-build >/dev/null

# openssl_rate N: messages per CPU second of `openssl cms -encrypt` to r0..r(N-1).
openssl_rate() {
	taskset -c "$CPU" python3 - "$WORK" "$1" "$RUNS" <<'PY'
import resource, subprocess, sys
work, n, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
argv = ["openssl", "cms", "-encrypt", "-aes-256-gcm", "-in", f"{work}/msg.txt",
        "-out", f"{work}/out.p7m"]
for i in range(n):
    argv += ["-recip", f"{work}/r{i}.pem", "-keyopt", "ecdh_kdf_md:sha256"]
u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
for _ in range(runs):
    subprocess.run(argv, check=True)
u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)
print(f"{runs / cpu:.0f}")
PY
}

for r in $(seq "$ROUNDS"); do
	taskset -c "$CPU" "$BIN/bench/smime_encrypt" "$WORK" "$SECONDS_EACH" "$SIZE" >"$WORK/ours.$r"
	{
		echo "r1_per_s $(openssl_rate 1)"
		echo "r10_per_s $(openssl_rate 10)"
	} >"$WORK/openssl.$r"
done

median() { # KEY PREFIX
	for r in $(seq "$ROUNDS"); do awk -v k="$1" '$1 == k {print $2; exit}' "$WORK/$2.$r"; done |
		sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}

echo "== S/MIME encryption, $(median message_bytes ours)-byte message, AES-256-GCM," \
	"P-256 recipients, 1 thread on CPU $CPU, median of $ROUNDS alternating rounds, per CPU second"
printf '%-12s %16s %10s %22s %10s %12s\n' recipients "lib/mail msg/s" "µs each" \
	"openssl cms msg/s" "µs each" "lib/openssl"
for n in 1 10; do
	ours=$(median "r${n}_per_s" ours)
	peer=$(median "r${n}_per_s" openssl)
	printf '%-12s %16s %10s %22s %10s %12s\n' "$n" "$ours" \
		"$(awk -v a="$ours" 'BEGIN {printf "%.1f", 1e6 / a}')" "$peer" \
		"$(awk -v a="$peer" 'BEGIN {printf "%.1f", 1e6 / a}')" \
		"$(awk -v a="$ours" -v b="$peer" 'BEGIN {printf "%.2f", a / b}')"
done
echo "(openssl cms: one process per message, its start-up included; lib/mail: in-process," \
	"as anchorctl and the relay call it)"
