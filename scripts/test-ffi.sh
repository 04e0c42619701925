#!/usr/bin/env bash
# Tests the C API (issue 5): header drift, the Rust side of the FFI crate,
# the C tests (shared vectors + API tests) plain, under valgrind and under
# AddressSanitizer, the C example host against Python websockets clients,
# and a quick benchmark against wslay. Installs what it needs, idempotently.
#
#   bash scripts/test-ffi.sh            everything
#   FFI_SKIP_BENCH=1 bash scripts/test-ffi.sh
#
# The last line is "N passed, M failed" over the C test runs; the exit status
# is non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export PIP_DISABLE_PIP_VERSION_CHECK=1
export RUST_BACKTRACE=0

step() { printf '\n==> %s\n' "$*"; }
failed_steps=()
fail_step() { failed_steps+=("$1"); echo "FAILED: $1"; }

# ----- tools ----------------------------------------------------------------
step "system packages"
need=()
for pkg in gcc make pkg-config valgrind libjansson-dev libwslay-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
        || { echo "apt-get install failed"; exit 1; }
else
    echo "all present"
fi

step "cbindgen"
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cbindgen >/dev/null 2>&1; then
    cargo install cbindgen --locked -q || { echo "cargo install cbindgen failed"; exit 1; }
fi
cbindgen --version

# ----- header and Rust side ---------------------------------------------------
step "header drift (ffi/include/evsock.h vs cbindgen)"
make -s -C ffi check-header || fail_step "header drift"

step "cargo fmt / clippy / test (evsock-ffi)"
cargo fmt -p evsock-ffi -- --check || fail_step "cargo fmt"
cargo clippy -q -p evsock-ffi --all-targets -- -D warnings || fail_step "clippy"
cargo clippy -q -p evsock-ffi --all-targets --features testing -- -D warnings || fail_step "clippy (testing)"
cargo test -q -p evsock-ffi 2>&1 | tail -n 3 || fail_step "cargo test -p evsock-ffi"

# ----- C tests: plain, valgrind, ASan -----------------------------------------
total_pass=0
total_fail=0
c_run() { # name make-target
    local name="$1" target="$2" log
    log="$(mktemp)"
    step "C tests: $name"
    make -s -C ffi "$target" >"$log" 2>&1
    local rc=$?
    grep -v '^ok ' "$log" | grep -v '^thread .*panicked\|^deliberate panic\|^note: run with' || true
    local line p f
    line="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)"
    if [[ -n "$line" ]]; then
        p="${line%% passed*}"
        f="${line#*, }"; f="${f%% failed}"
        echo "$name: $line (exit $rc)"
    else
        p=0; f=1
        echo "$name: no summary line (exit $rc)"
    fi
    if ((rc != 0 && f == 0)); then f=1; fi # valgrind/ASan errors fail the run
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    ((rc == 0)) || fail_step "C tests ($name)"
    rm -f "$log"
}
c_run "plain (shared library)" test
c_run "valgrind --leak-check=full" test-valgrind
c_run "AddressSanitizer + UBSan (static library)" test-asan

# ----- the example host -------------------------------------------------------
step "example host (ffi/examples/echo_server.c) against Python websockets"
VENV="$ROOT/.cache/ffi-venv"
if ! "$VENV/bin/python" -c 'import websockets' >/dev/null 2>&1; then
    PY3=""
    for c in python3.11 python3; do
        if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
            PY3="$(command -v "$c")"; break
        fi
    done
    rm -rf "$VENV" && mkdir -p "$(dirname "$VENV")"
    if [[ -z "$PY3" ]] || ! "$PY3" -m venv "$VENV" || ! "$VENV/bin/python" -m pip install -q websockets; then
        fail_step "python venv"
    fi
fi
if make -s -C ffi example; then
    OUT="${CARGO_TARGET_DIR:-$ROOT/target}/ffi"
    SERVER_LOG="$(mktemp)"
    # Under valgrind, so the host's own memory use is checked too.
    valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
        "$OUT/echo_server" 0 >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    PORT=""
    for _ in $(seq 1 100); do
        PORT="$(sed -n 's|^listening on ws://127.0.0.1:\([0-9]*\).*|\1|p' "$SERVER_LOG")"
        [[ -n "$PORT" ]] && break
        sleep 0.1
    done
    if [[ -z "$PORT" ]]; then
        fail_step "example host did not start"; cat "$SERVER_LOG"
    else
        echo "echo_server on port $PORT (pid $SERVER_PID)"
        timeout 120 "$VENV/bin/python" ffi/tests/example_client.py "ws://127.0.0.1:$PORT" \
            || fail_step "example host: ffi/tests/example_client.py"
        if [[ -f tests/interop/py_client.py ]]; then
            echo "-- tests/interop/py_client.py against the C host"
            timeout 180 "$VENV/bin/python" tests/interop/py_client.py "ws://127.0.0.1:$PORT" \
                || fail_step "example host: tests/interop/py_client.py"
        fi
    fi
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID"
    rc=$?
    grep -v '^listening on\|connection ended: handshake failed: rejected by the host with status 404' "$SERVER_LOG"
    ((rc == 0)) || fail_step "example host exit status $rc (99: valgrind found errors)"
    rm -f "$SERVER_LOG"
else
    fail_step "building the example host"
fi

# ----- the hub chat example ------------------------------------------------------
step "hub chat host (ffi/examples/hub_chat.c) against a Python session client"
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/ffi"
if [[ -x "$OUT/hub_chat" ]]; then
    HUB_LOG="$(mktemp)"
    valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
        "$OUT/hub_chat" 0 >"$HUB_LOG" 2>&1 &
    HUB_PID=$!
    PORT=""
    for _ in $(seq 1 100); do
        PORT="$(sed -n 's|^listening on ws://127.0.0.1:\([0-9]*\).*|\1|p' "$HUB_LOG")"
        [[ -n "$PORT" ]] && break
        sleep 0.1
    done
    if [[ -z "$PORT" ]]; then
        fail_step "hub chat host did not start"; cat "$HUB_LOG"
    else
        timeout 120 "$VENV/bin/python" ffi/tests/hub_chat_client.py "ws://127.0.0.1:$PORT" \
            || fail_step "hub chat host: ffi/tests/hub_chat_client.py"
    fi
    kill -TERM "$HUB_PID" 2>/dev/null
    wait "$HUB_PID"
    rc=$?
    grep -v '^listening on' "$HUB_LOG" || true
    ((rc == 0)) || fail_step "hub chat host exit status $rc (99: valgrind found errors)"
    rm -f "$HUB_LOG"
else
    fail_step "the hub chat host was not built"
fi

# ----- benchmark --------------------------------------------------------------
if [[ -z "${FFI_SKIP_BENCH:-}" ]]; then
    step "benchmark against wslay (quick mode; informational, never fails on the ratio)"
    if make -s -C ffi bench; then
        "${CARGO_TARGET_DIR:-$ROOT/target}/ffi/bench_wslay" --quick || fail_step "benchmark run"
    else
        fail_step "building the benchmark"
    fi
fi

step "summary"
if ((${#failed_steps[@]})); then
    printf 'failed steps:\n'; printf '  - %s\n' "${failed_steps[@]}"
else
    echo "all steps passed"
fi
echo "$total_pass passed, $total_fail failed"
((${#failed_steps[@]} == 0 && total_fail == 0))
