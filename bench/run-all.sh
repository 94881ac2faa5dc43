#!/usr/bin/env bash
# bench/run-all.sh BUILD_DIR - every benchmark, one after the other.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for b in "$here"/*.sh; do
	[[ $(basename "$b") == run-all.sh ]] && continue
	echo "### $(basename "$b")"
	"$b" "$1"
done
