#!/usr/bin/env bash
# Builds the Python binding and runs its tests and a quick benchmark.
#
#   scripts/test-python.sh
#
# Uses (and creates on first run) a venv at .cache/py-bind-venv with maturin,
# pytest, hypothesis, websockets and wsproto; installs evsock into it with
# `maturin develop --release`; runs pytest on bindings-python/tests; then the
# benchmark in quick mode, which prints ratios and never fails on them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.cache/py-bind-venv"
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n==> %s\n' "$*"; }

find_python3() {
    local c
    for c in "${PYTHON3:-}" python3.11 python3; do
        [[ -n "$c" ]] || continue
        c="$(command -v "$c" 2>/dev/null)" || continue
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    return 1
}

step "python venv ($VENV)"
if [[ ! -x "$PY" ]] || ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    PY3="$(find_python3)" || { echo "test-python: need Python >= 3.11 on PATH" >&2; exit 1; }
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PY3" -m venv "$VENV"
fi
if ! "$PY" -c 'import pytest, hypothesis, websockets, wsproto' >/dev/null 2>&1 || [[ ! -x "$VENV/bin/maturin" ]]; then
    "$PY" -m pip install -q maturin pytest hypothesis websockets wsproto
fi
"$PY" -c 'import sys, pytest, hypothesis, websockets, wsproto; print("python", sys.version.split()[0], "| pytest", pytest.__version__, "| hypothesis", hypothesis.__version__, "| websockets", websockets.__version__, "| wsproto", wsproto.__version__)'

step "maturin develop --release"
(
    cd bindings-python
    VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop --release -q
)
"$PY" -c 'import evsock; print("evsock", evsock.__version__, "from", evsock.__file__)'

step "pytest bindings-python/tests"
set +e
"$PY" -m pytest -q -p no:cacheprovider bindings-python/tests
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    echo "test-python: pytest collected no tests in bindings-python/tests; that is a failure" >&2
    exit 1
elif [[ $rc -ne 0 ]]; then
    echo "test-python: pytest failed (exit $rc)" >&2
    exit "$rc"
fi

step "benchmark (quick; ratios are informational)"
if ! "$PY" bindings-python/bench/bench.py --quick; then
    echo "test-python: the benchmark did not run to the end (not a test failure)" >&2
fi
