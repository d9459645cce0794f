#!/usr/bin/env bash
# Install the test dependencies (Debian's chromium for page tests, the project
# with its test extras in .venv) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# chromium for the page tests; systemd for systemd-analyze (unit tests);
# systemd-container and debootstrap to boot the unit under a real systemd
# (tests/test_systemd_nspawn.py, which skips on a host that cannot run nspawn).
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v systemd-nspawn >/dev/null 2>&1 || missing="$missing systemd-container"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
if [ -n "$missing" ]; then
    as_root apt-get update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
scripts/setup-venv.sh test
exec .venv/bin/python -m pytest "$@"
