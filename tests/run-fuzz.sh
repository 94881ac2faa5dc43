#!/usr/bin/env bash
# run-fuzz.sh SECONDS BIN... - run each libFuzzer target for SECONDS.
#
# A target build/fuzz/fuzz_<name> starts from the seed corpus
# tests/fuzz/corpus/<name>/, copied to a temporary working corpus so that
# the repository is never modified.  Crash, leak and timeout inputs are kept
# in <bindir>/artifacts/<name>/ with the fuzzer's log.  One line per target;
# exits 1 if any target failed.
set -uo pipefail

usage() {
	echo "usage: run-fuzz.sh SECONDS [fuzz_binary...]" >&2
	exit 2
}

(($# >= 1)) || usage
[[ $1 =~ ^[0-9]+$ ]] || usage
secs=$1
shift

if (($# == 0)); then
	echo "fuzz: no fuzz targets"
	exit 0
fi

src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/anchor-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# A failing input small enough to print goes into the output in base64, so that a
# failure on a machine whose files are gone (CI) can still be replayed:
#   base64 -d > crash && build/fuzz/fuzz_<name> crash
show_inputs() {
	local f
	for f in "$1"/crash-* "$1"/leak-* "$1"/timeout-* "$1"/oom-*; do
		[[ -f $f ]] || continue
		if (($(stat -c %s "$f") <= 8192)); then
			echo "    -- $(basename "$f"), base64:"
			base64 -w 76 "$f" | sed 's/^/    /'
		fi
	done
}

# One target: its report goes to $work/<name>.result, "ok" or "FAIL" first.
run_one() {
	local bin=$1 base name seeds corpus artifacts nseeds log rc runs nfinal reason
	base=$(basename "$bin")
	name=${base#fuzz_}
	seeds=$src/tests/fuzz/corpus/$name
	corpus=$work/$name
	artifacts=$(cd "$(dirname "$bin")" && pwd)/artifacts/$name
	rm -rf "$artifacts"
	mkdir -p "$corpus" "$artifacts"
	nseeds=0
	if [[ -d $seeds ]]; then
		cp -R "$seeds/." "$corpus/"
		nseeds=$(find "$corpus" -type f | wc -l)
	fi
	if [[ ! -x $bin ]]; then
		echo "FAIL $base: not an executable file"
		return
	fi
	log=$artifacts/fuzz.log
	# The outer timeout only guards against a fuzzer that ignores its own limits.
	timeout --kill-after=10 $((secs + 60)) "$bin" -max_total_time="$secs" -rss_limit_mb=2048 \
		-timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	nfinal=$(find "$corpus" -type f | wc -l)
	if ((rc == 0)); then
		echo "ok   $base: ${runs:-?} runs in ${secs}s, corpus $nseeds -> $nfinal inputs"
		return
	fi
	reason="exit status $rc"
	((rc == 124)) && reason="hung past ${secs}s"
	echo "FAIL $base: $reason; log and crashing input in $artifacts/"
	# The log may hold bytes of the input (binary to grep): -a reads it as text.
	grep -aE 'ERROR|runtime error|SUMMARY|Test unit written|deadly|==[0-9]+==' "$log" |
		head -n 20 | tr -c '[:print:]\n' '?' | sed 's/^/    /'
	echo "    -- the log's last lines:"
	grep -av '^#[0-9]' "$log" | tail -n 40 | cut -c1-300 | tr -c '[:print:]\n' '?' | sed 's/^/    /'
	show_inputs "$artifacts"
	if ((nseeds == 0)); then
		echo "    (no seed corpus in tests/fuzz/corpus/$name/)"
	fi
}

# Targets run FUZZ_JOBS at a time (default: one per core): each is one process,
# and nothing else runs during this phase of make check.
jobs_max=${FUZZ_JOBS:-$(nproc)}
for bin in "$@"; do
	while (($(jobs -rp | wc -l) >= jobs_max)); do
		wait -n
	done
	run_one "$bin" >"$work/$(basename "$bin").result" 2>&1 &
done
wait

failed=()
for bin in "$@"; do
	result=$work/$(basename "$bin").result
	cat "$result"
	head -n 1 "$result" | grep -q '^ok ' || failed+=("$(basename "$bin")")
done

if ((${#failed[@]})); then
	echo "fuzz: ${#failed[@]} of $# targets failed: ${failed[*]}"
	exit 1
fi
echo "fuzz: all $# targets ran ${secs}s without a crash"
