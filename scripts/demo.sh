#!/usr/bin/env bash
# Set everything up, then run the Lookalike demo. Extra arguments go to `lookalike demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/lookalike demo "$@"
