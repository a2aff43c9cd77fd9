#!/usr/bin/env bash
# Set everything up, then run the test suite (slow tests excluded; add `-m slow` to run them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
