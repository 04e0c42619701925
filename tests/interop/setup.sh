#!/usr/bin/env bash
# Install the interop peers: a Python 3.11 venv at .cache/py-venv with
# `websockets`, and node `ws` in tests/interop/node_modules. Idempotent: each
# step is skipped when its result is already importable.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/interop"
VENV="$ROOT/.cache/py-venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1

find_python3() {
    local c
    for c in "${PYTHON3:-}" python3.11 python3; do
        [[ -n "$c" ]] || continue
        c="$(command -v "$c" 2>/dev/null)" || continue
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    return 1
}

if "$VENV/bin/python" -c 'import websockets' >/dev/null 2>&1; then
    echo "interop setup: python websockets $("$VENV/bin/python" -c 'import websockets; print(websockets.__version__)') ready"
else
    PY3="$(find_python3)" || { echo "interop setup: no python3 >= 3.9 found" >&2; exit 1; }
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PY3" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade websockets
    echo "interop setup: python websockets $("$VENV/bin/python" -c 'import websockets; print(websockets.__version__)') installed"
fi

if (cd "$HERE" && node -e 'require("ws")') >/dev/null 2>&1; then
    echo "interop setup: node ws $(cd "$HERE" && node -p 'require("ws/package.json").version') ready"
else
    (cd "$HERE" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
    echo "interop setup: node ws $(cd "$HERE" && node -p 'require("ws/package.json").version') installed"
fi
