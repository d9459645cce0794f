#!/usr/bin/env bash
# Create .venv in the checkout and install Stallbox into it (with extras in $1).
# Works on a fresh Debian with only python3: installs python3-venv if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "stallbox needs Python 3.11 or newer (found $(python3 --version))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv 2>/dev/null; then
        rm -rf .venv
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        python3 -m venv .venv
    fi
fi
# Install again only when pyproject.toml or the extras changed since the last
# install (an editable install picks up code changes by itself), so a second
# `scripts/demo.sh` starts at once and without the network.
stamp=".venv/.stallbox-installed-${extras:-base}"
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
    echo "$wanted" > "$stamp"
fi
