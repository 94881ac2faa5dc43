#!/usr/bin/env bash
# run-integration.sh [pytest arguments | test files] - the integration tests under
# tests/integration, against the binaries in $ANCHOR_BIN (default
# build/check).  Debian's python3 is used (its pytest, jwcrypto, dkim come
# from apt), not whatever python3 comes first in PATH.
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
export ANCHOR_SRC=$src
export ANCHOR_BIN=${ANCHOR_BIN:-$src/build/check}
PYTHON=${PYTHON:-/usr/bin/python3}

if ! "$PYTHON" -c 'import pytest' 2>/dev/null; then
	echo "integration: $PYTHON has no pytest (run deploy/install-deps.sh)" >&2
	exit 1
fi
for b in anchor-keyserver anchorctl; do
	[[ -x $ANCHOR_BIN/$b ]] || echo "integration: warning: $ANCHOR_BIN/$b is missing" >&2
done

cd "$src" || exit 1
echo "integration: ANCHOR_BIN=$ANCHOR_BIN"
# Arguments that name test files or node ids replace the default of every test.
targets=(tests/integration)
for a in "$@"; do
	[[ $a == tests/* ]] && targets=()
done
"$PYTHON" -m pytest -q -rfE --tb=short --durations=12 -p no:cacheprovider "${targets[@]}" "$@"
rc=$?
case $rc in
0) echo "integration: all tests passed" ;;
5)
	echo "integration: pytest collected no tests; that is a failure here" >&2
	rc=1
	;;
*) echo "integration: pytest exit status $rc" >&2 ;;
esac
exit "$rc"
