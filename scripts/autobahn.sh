#!/usr/bin/env bash
# Run the Autobahn|Testsuite against evsock and compare the results with the
# checked-in expectations.
#
#   scripts/autobahn.sh [server|client|both]      (default: both)
#
# server: wstest -m fuzzingclient drives target/release/examples/autobahn-server
# client: target/release/examples/autobahn-client drives wstest -m fuzzingserver
#
# Reports land in tests/autobahn/reports/{server,client}/ and are checked by
# tests/autobahn/check.py against tests/autobahn/expected-{server,client}.json.
#
# Environment knobs (mainly for testing the harness itself):
#   AUTOBAHN_SERVER_BIN   testee server binary, invoked as BIN 127.0.0.1:PORT
#   AUTOBAHN_CLIENT_BIN   testee client binary, invoked as BIN ws://127.0.0.1:PORT evsock
#   AUTOBAHN_NO_BUILD=1   skip `cargo build`
#   AUTOBAHN_TIMEOUT      seconds allowed per mode (default 300)
#   AUTOBAHN_UPDATE=1     rewrite the expectation files instead of failing on drift
#   AUTOBAHN_FULL=1       run every case; by default the slow compression cases
#                         listed in the specs' _ci_exclude are skipped (see there)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE="${1:-both}"
case "$MODE" in server|client|both) ;; *) echo "usage: $0 [server|client|both]" >&2; exit 2 ;; esac

AGENT=evsock
TIMEOUT="${AUTOBAHN_TIMEOUT:-300}"
SERVER_BIN="${AUTOBAHN_SERVER_BIN:-$ROOT/target/release/examples/autobahn-server}"
CLIENT_BIN="${AUTOBAHN_CLIENT_BIN:-$ROOT/target/release/examples/autobahn-client}"
WORK="$ROOT/.cache/autobahn"
REPORTS="$ROOT/tests/autobahn/reports"
VENV="$ROOT/.cache/autobahn-venv"
mkdir -p "$WORK" "$REPORTS"

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT PID LOG: wait until 127.0.0.1:PORT accepts, or PID dies.
wait_port() {
    local port="$1" pid="$2" log="$3" i
    for ((i = 0; i < 300; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "autobahn: process $pid exited before listening on $port; log:" >&2
            tail -n 30 "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "autobahn: timed out waiting for 127.0.0.1:$port" >&2
    return 1
}

# spec_with_url TEMPLATE OUT URL: copy a wstest spec, pointing it at URL.
spec_with_url() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, os, sys
template, out, url = sys.argv[1:]
with open(template) as f:
    spec = json.load(f)
ci_exclude = spec.pop("_ci_exclude", [])
if os.environ.get("AUTOBAHN_FULL") != "1":
    spec["exclude-cases"] = list(spec.get("exclude-cases", [])) + ci_exclude
if "servers" in spec:
    for server in spec["servers"]:
        server["url"] = url
else:
    spec["url"] = url
with open(out, "w") as f:
    json.dump(spec, f, indent=2)
PY
}

# wstest ARGS...: run wstest in the foreground, bounded by $TIMEOUT.
wstest() {
    timeout --kill-after=10 "$TIMEOUT" "$VENV/bin/python" "$ROOT/tests/autobahn/wstest_loopback.py" "$@"
}

check() {
    local side="$1" args=()
    [[ "${AUTOBAHN_UPDATE:-0}" == 1 ]] && args+=(--update)
    [[ "${AUTOBAHN_FULL:-0}" == 1 ]] || args+=(--skipped-from "$ROOT/tests/autobahn/fuzzing$([[ $side == server ]] && echo client || echo server).json")
    python3 "$ROOT/tests/autobahn/check.py" "$side" ${args[@]+"${args[@]}"}
}

run_server_mode() {
    local port log spec started
    [[ -x "$SERVER_BIN" ]] || { echo "autobahn: missing $SERVER_BIN" >&2; return 1; }
    port="$(free_port)"
    log="$WORK/testee-server.log"
    spec="$WORK/fuzzingclient.json"
    spec_with_url tests/autobahn/fuzzingclient.json "$spec" "ws://127.0.0.1:$port" || return 1
    rm -rf "$REPORTS/server"

    echo "autobahn server: $(basename "$SERVER_BIN") on 127.0.0.1:$port, wstest fuzzingclient"
    "$SERVER_BIN" "127.0.0.1:$port" >"$log" 2>&1 &
    PIDS+=($!)
    wait_port "$port" "$!" "$log" || return 1

    started=$SECONDS
    if ! wstest -m fuzzingclient -s "$spec" >"$WORK/wstest-fuzzingclient.log" 2>&1; then
        tail -n 30 "$WORK/wstest-fuzzingclient.log" >&2
        echo "autobahn server: wstest failed or timed out (log: $WORK/wstest-fuzzingclient.log)" >&2
        cleanup
        return 1
    fi
    echo "autobahn server: wstest finished in $((SECONDS - started))s"
    cleanup
    check server
}

run_client_mode() {
    local port log spec started wspid rc=0
    [[ -x "$CLIENT_BIN" ]] || { echo "autobahn: missing $CLIENT_BIN" >&2; return 1; }
    port="$(free_port)"
    log="$WORK/wstest-fuzzingserver.log"
    spec="$WORK/fuzzingserver.json"
    spec_with_url tests/autobahn/fuzzingserver.json "$spec" "ws://127.0.0.1:$port" || return 1
    rm -rf "$REPORTS/client"

    echo "autobahn client: wstest fuzzingserver on 127.0.0.1:$port, $(basename "$CLIENT_BIN")"
    # Started directly (not via the wstest function) so $! is the python
    # process itself and cleanup() really stops it.
    "$VENV/bin/python" "$ROOT/tests/autobahn/wstest_loopback.py" -m fuzzingserver -u 0 -s "$spec" >"$log" 2>&1 &
    wspid=$!
    PIDS+=($wspid)
    wait_port "$port" "$wspid" "$log" || return 1

    started=$SECONDS
    timeout --kill-after=10 "$TIMEOUT" "$CLIENT_BIN" "ws://127.0.0.1:$port" "$AGENT" \
        >"$WORK/testee-client.log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        tail -n 30 "$WORK/testee-client.log" >&2
        echo "autobahn client: $(basename "$CLIENT_BIN") exited with $rc (log: $WORK/testee-client.log)" >&2
        cleanup
        return 1
    fi
    echo "autobahn client: testee finished in $((SECONDS - started))s"
    cleanup
    check client
}

if [[ "${AUTOBAHN_NO_BUILD:-0}" != 1 ]]; then
    examples=()
    [[ "$MODE" != client ]] && examples+=(--example autobahn-server)
    [[ "$MODE" != server ]] && examples+=(--example autobahn-client)
    echo "autobahn: cargo build --release -p evsock ${examples[*]}"
    cargo build --quiet --release -p evsock "${examples[@]}"
fi
bash "$ROOT/scripts/setup-autobahn.sh" >/dev/null

status=0
if [[ "$MODE" == both ]]; then
    # The two roles share nothing (ports, logs and reports are per role) and
    # each is bound by wstest's single Python thread, so they run side by side.
    AUTOBAHN_NO_BUILD=1 bash "$0" server > "$WORK/server-mode.out" 2>&1 & spid=$!
    AUTOBAHN_NO_BUILD=1 bash "$0" client > "$WORK/client-mode.out" 2>&1 & cpid=$!
    wait "$spid" || status=1
    wait "$cpid" || status=1
    cat "$WORK/server-mode.out" "$WORK/client-mode.out"
    exit $status
fi
if [[ "$MODE" == server ]]; then run_server_mode || status=1; fi
if [[ "$MODE" == client ]]; then run_client_mode || status=1; fi
if [[ $status -ne 0 ]]; then
    echo "autobahn: FAILED (reports: tests/autobahn/reports/)" >&2
else
    echo "autobahn: all modes match expectations"
fi
exit $status
