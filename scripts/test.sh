#!/usr/bin/env bash
# Install the test dependencies (Debian's chromium for page tests, the project
# with its test extras in .venv) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# chromium for the page tests; systemd for systemd-analyze (unit tests).
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
if [ -n "$missing" ]; then
    as_root apt-get update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
scripts/setup-venv.sh test
exec .venv/bin/python -m pytest "$@"
