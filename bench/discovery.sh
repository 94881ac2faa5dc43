#!/usr/bin/env bash
# discovery.sh [BIN_DIR] - cold vs warm anchor-dns discovery beside kdig (see discovery.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/discovery.py" "${1:-${ANCHOR_BIN:-$here/../build/release}}"
