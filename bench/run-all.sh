#!/usr/bin/env bash
# bench/run-all.sh BUILD_DIR - every benchmark, one after the other.
#
# The list below sets the order; a bench/*.sh script missing from it still runs, last
# (common.sh is sourced by the others, not run).  A failing benchmark does not stop the
# others; the exit status says whether any failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BENCHES=(keyserver newconn log merkle discovery routes reputation reputation_dns dkim smime relay relay_tls relay_encrypt)

declare -A listed=([run-all]=1 [common]=1)
order=()
for b in "${BENCHES[@]}"; do
	listed[$b]=1
	[[ -x $here/$b.sh ]] && order+=("$b")
done
for f in "$here"/*.sh; do
	b=$(basename "$f" .sh)
	[[ -n ${listed[$b]:-} ]] || order+=("$b")
done

failed=()
for b in "${order[@]}"; do
	echo "### $b.sh"
	"$here/$b.sh" "${1:?usage: bench/run-all.sh BUILD_DIR}" || failed+=("$b")
done
if ((${#failed[@]})); then
	echo "### failed: ${failed[*]}" >&2
	exit 1
fi
