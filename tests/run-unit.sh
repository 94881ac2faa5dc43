#!/usr/bin/env bash
# run-unit.sh BIN... - run cmocka unit test binaries under the sanitizers.
#
# Prints one line per binary and, on failure, its output; ends with the
# summary line "N passed, N failed" counting individual cmocka tests (a
# binary that dies before cmocka reports, e.g. on a sanitizer error, counts
# as one failed test).  Exits 1 if anything failed.
#
# Binaries run UNIT_JOBS at a time (default: one per core); each keeps its
# files under its own mkdtemp directory and binds only port 0, so two never
# meet.  Their reports are printed in the order given, whatever finished first.
set -uo pipefail

# LeakSanitizer works on this platform (checked on Debian 12 in a
# container); a caller may still override with its own ASAN_OPTIONS.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export CMOCKA_MESSAGE_OUTPUT=STDOUT
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
jobs_max=${UNIT_JOBS:-$(nproc)}

if (($# == 0)); then
	echo "unit: no unit test binaries"
fi

work=$(mktemp -d /tmp/anchor-unit.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Sum the counts cmocka prints as "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)".
count() {
	sed -n "s/^\[  $2  \] \([0-9][0-9]*\) test.*/\1/p" "$1" | awk '{s += $1} END {print s + 0}'
}

# One binary: its report goes to $work/<name>.result, whose first line is
# "<passed> <failed>" and the rest what is printed for it.
run_one() {
	local bin=$1 name out rc pass fail reason
	name=$(basename "$bin")
	out=$work/$name.out
	if [[ ! -x $bin ]]; then
		printf '0 1\nFAIL %s: not an executable file\n' "$name"
		return
	fi
	timeout --kill-after=10 "$UNIT_TIMEOUT" "$bin" >"$out" 2>&1
	rc=$?
	pass=$(count "$out" PASSED)
	fail=$(count "$out" FAILED)
	if ((rc != 0 && fail == 0)); then
		fail=1 # died before cmocka could report (crash, sanitizer, timeout)
	fi
	echo "$pass $fail"
	if ((rc == 0 && fail == 0)); then
		echo "ok   $name: $pass passed"
		return
	fi
	reason="exit status $rc"
	((rc == 124)) && reason="timed out after ${UNIT_TIMEOUT}s"
	echo "FAIL $name: $pass passed, $fail failed ($reason)"
	sed 's/^/    /' "$out"
}

i=0
for bin in "$@"; do
	while (($(jobs -rp | wc -l) >= jobs_max)); do
		wait -n
	done
	run_one "$bin" >"$work/$i.result" 2>&1 &
	i=$((i + 1))
done
wait

total_pass=0
total_fail=0
bad_bins=()
i=0
for bin in "$@"; do
	result=$work/$i.result
	i=$((i + 1))
	read -r pass fail <"$result"
	tail -n +2 "$result"
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	((fail == 0)) || bad_bins+=("$(basename "$bin")")
done

if ((${#bad_bins[@]})); then
	echo "failing binaries: ${bad_bins[*]}"
fi
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
