#!/usr/bin/env bash
# Build .venv at the repo root with a Python that has ttnn wheels (3.12 or 3.10), install ttfuse
# (editable) with its pinned dependencies. Quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
STAMP="$VENV/.ttfuse-installed"

works() { "$1" -c 'import sys; assert sys.version_info[:2] in ((3,12),(3,10))' >/dev/null 2>&1; }

find_python() {
  local c
  for c in python3.12 python3.10; do
    if command -v "$c" >/dev/null 2>&1 && works "$c"; then command -v "$c"; return; fi
  done
  # pyenv installs whose shims are not active for this directory
  for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 \
           /usr/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    if [ -x "$c" ] && works "$c"; then echo "$c"; return; fi
  done
  return 1
}

# graphviz's `dot` draws `ttfuse graph` output; best effort (root + apt), never fatal
if ! command -v dot >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "setup: installing graphviz (for ttfuse graph)"
  (apt-get install -y -q graphviz >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q graphviz >/dev/null 2>&1; }) \
    || echo "setup: could not install graphviz; 'ttfuse graph' will write .dot files instead of drawings"
fi

want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && works "$VENV/bin/python" && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ] || ! works "$VENV/bin/python"; then
  PY=$(find_python) || {
    echo "setup: no Python 3.12 or 3.10 found (ttnn ships wheels for those only)." >&2
    echo "setup: install one, e.g. 'pyenv install 3.12' or 'apt-get install python3.12-venv', then re-run." >&2
    exit 1
  }
  echo "setup: creating .venv with $PY"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
echo "setup: installing ttfuse and its dependencies into .venv (first time: several minutes, torch is large)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e "$ROOT"
echo "$want" > "$STAMP"
echo "setup: done ($("$VENV/bin/python" --version))"
