#!/usr/bin/env bash
# Install Stallbox into .venv and run the demo (simulated printer, demo catalog).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
exec .venv/bin/stallbox demo "$@"
