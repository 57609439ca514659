#!/usr/bin/env bash
# Set up, then fuse the bundled example models and print their reports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m examples.demo "$@"
