#!/usr/bin/env bash
# bench/relay.sh - messages per second through anchor-relay beside Postfix with OpenDKIM as
# a milter doing the same work on the same machine, in one run (see bench/relay_load.py).
#
# Both are driven by Postfix's smtp-source with the same message count, size and sessions,
# and deliver into smtp-sink; fsync stays on for both (Postfix's queue, the relay's spool).
#   sign:   Postfix + OpenDKIM (rsa-sha256) vs the relay's submission side (signer, queue)
#   verify: Postfix + OpenDKIM verifying vs the relay's inbound side (verify, tier, queue)
# Each row prints messages accepted/s and delivered/s; then the ratio relay/Postfix.
# Without BUILD_DIR/anchor-relay, only the Postfix + OpenDKIM rows run.
#
# With --chunking: relay to relay (A -> B -> smtp-sink), A's client sending with BDAT beside
# the same run with DATA (smtp_chunking = no); see bench/relay_load.py.
#
# Usage: bench/relay.sh BUILD_DIR [--chunking]   (make bench passes build/release)
# Knobs: BENCH_RELAY_COUNT, BENCH_RELAY_SIZE, BENCH_RELAY_SESSIONS, BENCH_RELAY_WARMUP.
# Needs root (Postfix instances, smtp-sink -u postfix); only loopback addresses are used.
set -euo pipefail

BIN=${1:?usage: bench/relay.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
for t in postfix smtp-source smtp-sink opendkim nsd; do
	command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || {
		echo "bench/relay.sh: $t is missing (deploy/install-deps.sh)" >&2
		exit 1
	}
done
if [[ ! -x $BIN/anchor-relay ]]; then
	echo "bench/relay.sh: $BIN/anchor-relay is missing: measuring Postfix + OpenDKIM only" >&2
fi
exec /usr/bin/python3 "$SRC/bench/relay_load.py" "$BIN" "${@:2}"
