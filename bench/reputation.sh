#!/usr/bin/env bash
# bench/reputation.sh - anchor-reputation throughput, beside a peer measured in the same run.
#
#  1. Reports ingested per second: signed reports from anchored reporter domains (each
#     verified against the domain's pin found through DNS, then committed) over 8 HTTPS
#     keep-alive connections.
#  2. Queries per second over HTTPS keep-alive: wrk drives GET /v1/query?ip=... over
#     scored subjects, then nginx serving the very same answer bodies as static files
#     (same TLS certificate), each with one worker pinned to CPU 0, wrk pinned to CPU 1,
#     BENCH_ROUNDS interleaved rounds.  Prints per round and as medians each side's rate,
#     p99 and server CPU time per request, and the same-round ratios.
#
# The world (PostgreSQL, key server, anchored domains in NSD) is built by bench/rep_load.py
# with the integration tests' helpers.  Knobs: BENCH_REPORTERS, BENCH_REPORTS,
# BENCH_SUBJECTS, BENCH_DURATION, BENCH_CONNS, BENCH_ROUNDS.
#
# Measured on the shared, heavily loaded 2-core machine (release build of 71fada3,
# -d5s, same-run medians): three runs gave rate ratios 1.29, 1.10 and 1.70 (single
# rounds 0.66..3.25), server CPU per query 25.8/30.4/26.2 us against nginx's
# 30.0/36.3/47.1 us, p99 29/69/34 ms against 53/23/51 ms.  CPU per request is the
# figure the machine's load moves least.  Profile (BENCH_PERF=1): the poll() thread
# spends its time in the kernel's TCP send/receive (sendmsg, recv, ~18% in irq
# enable/unlock under syscalls), setsockopt (libmicrohttpd corking each answer,
# ~2.5% + kernel); no GnuTLS symbol above 0.5%; the answer cache's ttlcache_get ~2%,
# its mutex 0.7% (no contention with one thread); no JSON rendering on a cache hit.
#
# Usage: bench/reputation.sh BUILD_DIR   (make bench passes build/release)
# Only loopback addresses are used; every loop is bounded in count and time.
set -euo pipefail

BIN=${1:?usage: bench/reputation.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
for b in anchor-reputation anchor-keyserver anchorctl anchor-dns; do
	[[ -x $BIN/$b ]] || {
		echo "bench/reputation.sh: $BIN/$b is missing (make first)" >&2
		exit 1
	}
done
exec /usr/bin/python3 "$SRC/bench/rep_load.py" "$BIN"
