#!/usr/bin/env bash
# reputation_dns.sh [BIN_DIR] - anchor-reputation's DNS zone beside rbldnsd with dnsperf,
# and anchor-policyd's request rate (see reputation_dns.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for tool in dnsperf rbldnsd; do
	command -v "$tool" >/dev/null || {
		echo "reputation_dns: $tool is missing (deploy/install-deps.sh)" >&2
		exit 1
	}
done
exec /usr/bin/python3 "$here/reputation_dns.py" "${1:-${ANCHOR_BIN:-$here/../build/release}}"
