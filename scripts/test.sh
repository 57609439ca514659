#!/usr/bin/env bash
# Set up, then run the test suite. Hardware tests skip without a Tenstorrent device.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
# tt-metal's and ttnn's own chatter (cluster set-up/teardown, config dump) is not test output
export TT_LOGGER_LEVEL="${TT_LOGGER_LEVEL:-error}" LOGURU_LEVEL="${LOGURU_LEVEL:-WARNING}"
log=$(mktemp)
.venv/bin/python -m pytest -q "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# pytest's 5 means "no tests collected": a selection that matched nothing is not a failure here
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests for this selection"
  rc=0
fi
# repeat pytest's summary as the last line (native libraries may log after it at exit)
summary=$(grep -E "^=*.* (passed|failed|error|errors|skipped|no tests ran)( |,|$).* in [0-9.]+s" "$log" | tail -1)
# (after a newline: native exit messages may end without one, and the summary must stand alone on its line)
[ -n "$summary" ] && printf '\n%s\n' "$summary"
rm -f "$log"
exit $rc
