#!/usr/bin/env bash
# Set up, then fuse the bundled example models and print their reports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TT_LOGGER_LEVEL="${TT_LOGGER_LEVEL:-error}" LOGURU_LEVEL="${LOGURU_LEVEL:-WARNING}"
exec .venv/bin/python -m examples.demo "$@"
