#!/usr/bin/env bash
# routes.sh [BIN_DIR] - route resolutions per second, warm and cold (one hop and a
# three-hop alias chain), beside kdig resolving the MX of equivalent legacy domains
# from the same NSD (see routes.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/routes.py" "${1:-${ANCHOR_BIN:-$here/../build/release}}"
