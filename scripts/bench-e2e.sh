#!/usr/bin/env bash
# End-to-end echo benchmark over 127.0.0.1: the evsock example hosts
# (engine/examples/echo-server.rs, blocking, a thread per connection, and
# engine/examples/echo-server-mio.rs, one thread and a mio poll loop) and a
# tokio-tungstenite echo server (on tokio's default runtime, a worker per
# core, and on its current-thread runtime), each driven by the same load
# client (benches/examples/load-client.rs). Prints one markdown table.
#
#   scripts/bench-e2e.sh [--quick]
#
# Servers listen on loopback only and are stopped (by their PID) when done.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
conns="1 16"
size=128
if [ "${1:-}" = "--quick" ]; then
    seconds=1
    conns="4"
fi

cargo build -q --release -p evsock --example echo-server --example echo-server-mio
cargo build -q --release -p evsock-benches --example tungstenite-echo-server --example load-client
bin="${CARGO_TARGET_DIR:-target}/release/examples"

pids=()
cleanup() {
    for p in "${pids[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "server on port $1 did not come up" >&2
    return 1
}

"$bin/echo-server" 127.0.0.1:19101 >/dev/null &
pids+=($!)
"$bin/tungstenite-echo-server" 127.0.0.1:19102 >/dev/null &
pids+=($!)
"$bin/echo-server-mio" 127.0.0.1:19103 >/dev/null &
pids+=($!)
"$bin/tungstenite-echo-server" 127.0.0.1:19104 --one-thread >/dev/null &
pids+=($!)
wait_port 19101
wait_port 19102
wait_port 19103
wait_port 19104

echo "Echo over 127.0.0.1, closed loop (one message in flight per connection), ${size}-byte text, ${seconds} s per row"
echo
echo "| server | connections | message | messages/s | p50 us | p99 us | p99.9 us |"
echo "|---|--:|--:|--:|--:|--:|--:|"
for c in $conns; do
    "$bin/load-client" 127.0.0.1:19101 --connections "$c" --size "$size" --seconds "$seconds" --label "evsock echo-server (example)"
    "$bin/load-client" 127.0.0.1:19103 --connections "$c" --size "$size" --seconds "$seconds" --label "evsock echo-server-mio (example)"
    "$bin/load-client" 127.0.0.1:19102 --connections "$c" --size "$size" --seconds "$seconds" --label "tokio-tungstenite (multi-thread runtime)"
    "$bin/load-client" 127.0.0.1:19104 --connections "$c" --size "$size" --seconds "$seconds" --label "tokio-tungstenite (current-thread runtime)"
done
