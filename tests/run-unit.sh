#!/usr/bin/env bash
# run-unit.sh BIN... - run cmocka unit test binaries under the sanitizers.
#
# Prints one line per binary and, on failure, its output; ends with the
# summary line "N passed, N failed" counting individual cmocka tests (a
# binary that dies before cmocka reports, e.g. on a sanitizer error, counts
# as one failed test).  Exits 1 if anything failed.
set -uo pipefail

# LeakSanitizer works on this platform (checked on Debian 12 in a
# container); a caller may still override with its own ASAN_OPTIONS.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export CMOCKA_MESSAGE_OUTPUT=STDOUT
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}

total_pass=0
total_fail=0
bad_bins=()

if (($# == 0)); then
	echo "unit: no unit test binaries"
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Sum the counts cmocka prints as "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)".
count() {
	sed -n "s/^\[  $1  \] \([0-9][0-9]*\) test.*/\1/p" "$out" | awk '{s += $1} END {print s + 0}'
}

for bin in "$@"; do
	name=$(basename "$bin")
	if [[ ! -x $bin ]]; then
		echo "FAIL $name: not an executable file"
		total_fail=$((total_fail + 1))
		bad_bins+=("$name")
		continue
	fi
	timeout --kill-after=10 "$UNIT_TIMEOUT" "$bin" >"$out" 2>&1
	rc=$?
	pass=$(count PASSED)
	fail=$(count FAILED)
	if ((rc != 0 && fail == 0)); then
		fail=1 # died before cmocka could report (crash, sanitizer, timeout)
	fi
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	if ((rc == 0 && fail == 0)); then
		echo "ok   $name: $pass passed"
	else
		reason="exit status $rc"
		((rc == 124)) && reason="timed out after ${UNIT_TIMEOUT}s"
		echo "FAIL $name: $pass passed, $fail failed ($reason)"
		sed 's/^/    /' "$out"
		bad_bins+=("$name")
	fi
done

if ((${#bad_bins[@]})); then
	echo "failing binaries: ${bad_bins[*]}"
fi
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
