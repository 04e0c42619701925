#!/usr/bin/env bash
# Create (or reuse) a Python 2.7 virtualenv holding the Autobahn|Testsuite
# (`wstest`) at .cache/autobahn-venv. Idempotent: a stamp file records the hash
# of scripts/autobahn-constraints.txt and the venv is rebuilt only when the
# pins change or wstest is missing/broken.
#
# Python 2.7 is located via $PYTHON2, then `python2.7` on PATH, then pyenv.
# virtualenv itself is installed with 2.7's own pip into .cache/virtualenv-py27
# (a --target dir, so the system interpreter is left untouched); 20.15.x is a
# release line that still runs on and creates Python 2.7 environments.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
VENV="$CACHE/autobahn-venv"
VENV_TOOL="$CACHE/virtualenv-py27"
CONSTRAINTS="$ROOT/scripts/autobahn-constraints.txt"
STAMP="$VENV/.evsock-stamp"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONWARNINGS=ignore

find_python2() {
    local c
    for c in "${PYTHON2:-}" "$(command -v python2.7 2>/dev/null || true)" \
             "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7; do
        [[ -n "$c" && -x "$c" ]] || continue
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    return 1
}

want="$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/wstest" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] \
   && "$VENV/bin/wstest" --autobahnversion >/dev/null 2>&1; then
    echo "setup-autobahn: wstest ready ($VENV)"
    exit 0
fi

if ! PY2="$(find_python2)"; then
    echo "setup-autobahn: no Python 2.7 interpreter found (set PYTHON2=/path/to/python2.7)" >&2
    exit 3
fi
echo "setup-autobahn: building $VENV with $PY2"

mkdir -p "$CACHE"
if ! PYTHONPATH="$VENV_TOOL" "$PY2" -m virtualenv --version >/dev/null 2>&1; then
    rm -rf "$VENV_TOOL"
    "$PY2" -m pip install -q --target "$VENV_TOOL" 'virtualenv==20.15.1' 2>&1 \
        | grep -v -i 'deprecation' >&2 || true
fi
rm -rf "$VENV"
PYTHONPATH="$VENV_TOOL" "$PY2" -m virtualenv -q --no-periodic-update "$VENV"

log="$CACHE/autobahn-pip.log"
if ! "$VENV/bin/pip" install -c "$CONSTRAINTS" autobahntestsuite >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setup-autobahn: pip install failed (full log: $log)" >&2
    exit 1
fi
"$VENV/bin/wstest" --help >/dev/null
"$VENV/bin/wstest" --autobahnversion
echo "$want" >"$STAMP"
echo "setup-autobahn: wstest ready ($VENV)"
