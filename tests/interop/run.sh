#!/usr/bin/env bash
# Interop matrix for evsock against independent WebSocket implementations:
#   evsock echo-server and echo-server-mio  <- py_client.py (websockets),
#                                              node_client.js (ws)
#   evsock echo-client  -> py_server.py (websockets), node_server.js (ws)
# each twice: without compression, then with permessage-deflate negotiated
# (the peers check that it was).
# Exits non-zero if any pairing fails. Only 127.0.0.1 is used.
#
# Environment knobs (mainly for testing the harness itself):
#   INTEROP_SERVER_BIN  one evsock echo server instead of both, invoked as BIN 127.0.0.1:PORT
#   INTEROP_CLIENT_BIN  evsock echo client, invoked as BIN ws://127.0.0.1:PORT
#   INTEROP_NO_BUILD=1  skip `cargo build`
#   INTEROP_TIMEOUT     seconds allowed per pairing (default 120)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/interop"
PY="$ROOT/.cache/py-venv/bin/python"
# Both example hosts serve: the blocking one and the mio poll loop.
if [[ -n "${INTEROP_SERVER_BIN:-}" ]]; then
    SERVER_BINS=("$INTEROP_SERVER_BIN")
else
    SERVER_BINS=("$ROOT/target/release/examples/echo-server" "$ROOT/target/release/examples/echo-server-mio")
fi
CLIENT_BIN="${INTEROP_CLIENT_BIN:-$ROOT/target/release/examples/echo-client}"
TIMEOUT="${INTEROP_TIMEOUT:-120}"
LOGS="$ROOT/.cache/interop-logs"
mkdir -p "$LOGS"

PIDS=()
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_ready PORT PID LOG [WORD]: wait until LOG contains WORD (if given) and
# 127.0.0.1:PORT accepts connections; fail if PID exits first.
wait_ready() {
    local port="$1" pid="$2" log="$3" word="${4:-}" i
    for ((i = 0; i < 300; i++)); do
        if [[ -z "$word" ]] || grep -q "^$word" "$log" 2>/dev/null; then
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "interop: server exited before becoming ready; log:" >&2
            tail -n 30 "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "interop: timed out waiting for 127.0.0.1:$port" >&2
    return 1
}

failures=0
# run_pair NAME LOG CMD...: run one peer against a running server.
run_pair() {
    local name="$1" log="$2" rc=0
    shift 2
    timeout --kill-after=5 "$TIMEOUT" "$@" >"$log" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]]; then
        echo "  pass  $name"
    else
        echo "  FAIL  $name (exit $rc, log: ${log#"$ROOT"/})"
        sed 's/^/        /' "$log" | tail -n 40
        failures=$((failures + 1))
    fi
}

bash "$HERE/setup.sh" >/dev/null
if [[ "${INTEROP_NO_BUILD:-0}" != 1 ]]; then
    echo "interop: cargo build --release -p evsock --examples"
    (cd "$ROOT" && cargo build --quiet --release -p evsock --examples)
fi
for bin in "${SERVER_BINS[@]}" "$CLIENT_BIN"; do
    [[ -x "$bin" ]] || { echo "interop: missing $bin" >&2; exit 1; }
done

# matrix: every pairing once; INTEROP_DEFLATE (exported) tells the peers
# whether to use permessage-deflate. evsock offers/accepts it by default.
matrix() {
    # evsock as the server, each example host in turn.
    for server in "${SERVER_BINS[@]}"; do
        local sname
        sname="$(basename "$server")"
        port="$(free_port)"
        echo "interop ($mode): evsock $sname on 127.0.0.1:$port"
        "$server" "127.0.0.1:$port" >"$LOGS/$sname-$mode.log" 2>&1 &
        PIDS+=($!)
        wait_ready "$port" "$!" "$LOGS/$sname-$mode.log"
        run_pair "[$mode] websockets client -> evsock $sname" "$LOGS/py_client-$sname-$mode.log" "$PY" "$HERE/py_client.py" "ws://127.0.0.1:$port"
        run_pair "[$mode] ws client -> evsock $sname" "$LOGS/node_client-$sname-$mode.log" node "$HERE/node_client.js" "ws://127.0.0.1:$port"
        stop_all
    done

    # evsock as the client.
    for peer in py_server node_server; do
        port="$(free_port)"
        log="$LOGS/$peer-$mode.log"
        case "$peer" in
            py_server) "$PY" "$HERE/py_server.py" 127.0.0.1 "$port" >"$log" 2>&1 & ;;
            node_server) node "$HERE/node_server.js" 127.0.0.1 "$port" >"$log" 2>&1 & ;;
        esac
        PIDS+=($!)
        wait_ready "$port" "$!" "$log" ready
        run_pair "[$mode] evsock client -> $peer ($([[ $peer == py_server ]] && echo websockets || echo ws))" \
            "$LOGS/echo-client-$peer-$mode.log" "$CLIENT_BIN" "ws://127.0.0.1:$port"
        stop_all
    done

}

for mode in plain deflate; do
    if [[ $mode == deflate ]]; then export INTEROP_DEFLATE=1; else export INTEROP_DEFLATE=0; fi
    matrix
done

if [[ $failures -ne 0 ]]; then
    echo "interop: $failures pairing(s) failed"
    exit 1
fi
echo "interop: all pairings passed"
