#!/usr/bin/env bash
# Builds the Python binding and runs its tests and a quick benchmark.
#
#   scripts/test-python.sh
#
# Uses (and creates on first run) a venv at .cache/py-bind-venv with maturin,
# pytest, hypothesis, websockets, wsproto and mypy (for stubtest); installs
# evsock into it with `maturin develop --release`; runs pytest on
# bindings-python/tests; checks `pip install ./bindings-python` in a throwaway
# venv; then the benchmark in quick mode, which prints ratios and never fails
# on them.
#
# The pip check builds the wheel with the venv's own interpreter, so cargo
# finds everything `maturin develop` just compiled (same target dir, same
# PYO3_PYTHON) and only repackages it: ~10-20 s instead of a second release
# build. PY_SKIP_PIP_INSTALL=1 skips it for quick local iterations.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.cache/py-bind-venv"
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

T0=$SECONDS
step() { printf '\n==> [%ds] %s\n' "$((SECONDS - T0))" "$*"; }

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
if ! "$PY" -c 'import pytest, hypothesis, websockets, wsproto, mypy' >/dev/null 2>&1 || [[ ! -x "$VENV/bin/maturin" ]]; then
    "$PY" -m pip install -q maturin pytest hypothesis websockets wsproto mypy
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

if [[ "${PY_SKIP_PIP_INSTALL:-}" == 1 ]]; then
    step "pip install ./bindings-python: skipped (PY_SKIP_PIP_INSTALL=1)"
else
    step "pip install ./bindings-python into a throwaway venv"
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    # `pip install DIR` = build DIR's wheel (PEP 517, maturin from PyPI in an
    # isolated build env) + install it: do the two halves so the build runs
    # with this venv's interpreter (cargo cache hit, see above) and the
    # install goes into a fresh venv with nothing else in it.
    "$PY" -m pip wheel -q --no-deps -w "$TMP/dist" ./bindings-python
    WHEEL=("$TMP"/dist/evsock-*.whl)
    echo "built $(basename "${WHEEL[0]}")"
    case "$(basename "${WHEEL[0]}")" in
        *-cp311-abi3-*.whl) ;;
        *) echo "test-python: expected an abi3 wheel for CPython >= 3.11" >&2; exit 1 ;;
    esac
    "$PY" -m venv --without-pip "$TMP/venv"
    "$PY" -m pip --python "$TMP/venv/bin/python" install -q --no-deps "${WHEEL[0]}"
    (cd "$TMP" && "$TMP/venv/bin/python" - "$TMP/venv" <<'PYEOF'
import pathlib, sys
import evsock, evsock.asyncio, evsock.session
pkg = pathlib.Path(evsock.__file__).resolve().parent
assert str(pkg).startswith(str(pathlib.Path(sys.argv[1]).resolve())), f"evsock imported from {pkg}"
for f in ("_evsock.pyi", "py.typed", "asyncio.py", "session.py"):
    assert (pkg / f).is_file(), f"wheel lacks evsock/{f}"
# A message round trip through the installed extension.
s = evsock.ServerConnection(timers=False)
c = evsock.ClientConnection("ws://example.com/", timers=False)
s.receive_data(c.data_to_send())
for ev in s.events():
    if isinstance(ev, evsock.Request):
        s.accept()
c.receive_data(s.data_to_send())
assert [type(e) for e in c.events()] == [evsock.Open]
c.send_text("hello")
s.receive_data(c.data_to_send())
assert list(s.events()) == [evsock.TextMessage("hello")]
print(f"installed evsock {evsock.__version__} works from {pkg}")
PYEOF
    )
fi

step "benchmark (quick; ratios are informational)"
if ! "$PY" bindings-python/bench/bench.py --quick; then
    echo "test-python: the benchmark did not run to the end (not a test failure)" >&2
fi
step "done in $((SECONDS - T0)) s"
