#!/usr/bin/env bash
# run-integration.sh [pytest arguments | test files] - the integration tests under
# tests/integration, against the binaries in $ANCHOR_BIN (default
# build/check).  Debian's python3 is used (its pytest, jwcrypto, dkim come
# from apt), not whatever python3 comes first in PATH.
#
# The tests run in two passes: every test not marked `serial` on
# $INTEGRATION_JOBS pytest-xdist workers (default: one more than the cores; each
# file goes whole to one worker, so a module's daemons start once), then the tests marked
# `serial` one at a time with nothing else running beside them.
# INTEGRATION_JOBS=1 runs everything in one ordinary pytest process.  A
# `-m` expression given here selects by marker itself: then one pass runs,
# on the workers.
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
export ANCHOR_SRC=$src
export ANCHOR_BIN=${ANCHOR_BIN:-$src/build/check}
PYTHON=${PYTHON:-/usr/bin/python3}
# One worker more than the cores: the tests wait on daemons starting, timers and
# sockets as much as they compute (two workers on two cores kept them about two
# thirds busy), and every test is written to pass beside any other.
JOBS=${INTEGRATION_JOBS:-$(($(nproc 2>/dev/null || echo 2) + 1))}

if ! "$PYTHON" -c 'import pytest' 2>/dev/null; then
	echo "integration: $PYTHON has no pytest (run deploy/install-deps.sh)" >&2
	exit 1
fi
if ! [[ $JOBS =~ ^[1-9][0-9]*$ ]]; then
	echo "integration: INTEGRATION_JOBS must be a positive number, not '$JOBS'" >&2
	exit 1
fi
if ((JOBS > 1)) && ! "$PYTHON" -c 'import xdist' 2>/dev/null; then
	echo "integration: $PYTHON has no pytest-xdist (run deploy/install-deps.sh," \
		"or INTEGRATION_JOBS=1)" >&2
	exit 1
fi
for b in anchor-keyserver anchorctl; do
	[[ -x $ANCHOR_BIN/$b ]] || echo "integration: warning: $ANCHOR_BIN/$b is missing" >&2
done

cd "$src" || exit 1
echo "integration: ANCHOR_BIN=$ANCHOR_BIN, $JOBS worker(s)"
# Arguments that name test files or node ids replace the default of every test.
targets=(tests/integration)
own_marks=1
for a in "$@"; do
	[[ $a == tests/* ]] && targets=()
	[[ $a == -m || $a == -m* ]] && own_marks=0
done

pytest_run() {
	"$PYTHON" -m pytest -q -rfE --tb=short --durations=12 -p no:cacheprovider "$@"
}

# Exit status 5 means "collected nothing": normal for one of the two passes
# (a file without serial tests), a failure when both collect nothing.
if ((JOBS == 1)); then
	pytest_run "${targets[@]}" "$@"
	rc=$?
elif ((!own_marks)); then
	pytest_run -n "$JOBS" --dist loadfile "${targets[@]}" "$@"
	rc=$?
else
	echo "integration: the tests not marked serial, on $JOBS workers"
	pytest_run -n "$JOBS" --dist loadfile -m "not serial" "${targets[@]}" "$@"
	rc=$?
	if ((rc == 0 || rc == 1 || rc == 5)); then
		echo "integration: the tests marked serial, one at a time"
		pytest_run -m serial "${targets[@]}" "$@"
		rc2=$?
		if ((rc == 5)); then
			rc=$rc2
		elif ((rc == 0 && rc2 != 5)); then
			rc=$rc2
		fi
	fi
fi
case $rc in
0) echo "integration: all tests passed" ;;
5)
	echo "integration: pytest collected no tests; that is a failure here" >&2
	rc=1
	;;
*) echo "integration: pytest exit status $rc" >&2 ;;
esac
exit "$rc"
