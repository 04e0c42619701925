#!/usr/bin/env bash
# Multi-node test of the chat host: a throwaway redis-server on 127.0.0.1 (a
# free port, no persistence), two evsock-chat processes sharing rooms through
# it (--redis, different --node-id), and clients on both nodes
# (tests/hub-multinode/multinode.test.mjs): a room broadcast reaches every
# member exactly once and presence spans the nodes.
#
# Installs what it needs, idempotently: Debian's redis-server if missing, the
# `ws` npm package in tests/hub-multinode when node_modules is out of date.
# Everything it starts is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
start=$SECONDS
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

if ! command -v redis-server >/dev/null; then
  step "installing Debian redis-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server >/dev/null
fi

dir=tests/hub-multinode
stamp="$dir/node_modules/.evsock-package-json.sha256"
want=$(sha256sum "$dir/package.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  step "npm install in $dir"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi

step "cargo build --release -p evsock-chat"
cargo build --release -q -p evsock-chat
bin="${CARGO_TARGET_DIR:-target}/release/evsock-chat"

# A free TCP port on 127.0.0.1 (redis-server cannot be told to pick one).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
step "redis-server on 127.0.0.1:$port"
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
  --dir "$work" --protected-mode yes --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then break; fi
  sleep 0.05
done
[ "$(redis-cli -h 127.0.0.1 -p "$port" ping)" = PONG ] || { cat "$work/redis.log"; exit 1; }

# Starts a node (in this shell, so the trap can kill it).
start_node() {
  "$bin" --addr 127.0.0.1:0 --redis "redis://127.0.0.1:$port" --node-id "$1" >"$work/chat-$1.log" 2>&1 &
  pids+=($!)
}
# Prints a node's base URL once it listens.
url_of() {
  local log="$work/chat-$1.log" url
  for _ in $(seq 200); do
    url=$(grep -o 'chat listening on http://[^ ]*' "$log" | cut -d' ' -f4 || true)
    if [ -n "$url" ]; then
      echo "$url"
      return 0
    fi
    sleep 0.05
  done
  echo "node $1 did not start:" >&2
  cat "$log" >&2
  return 1
}
step "two chat nodes"
start_node node-a
start_node node-b
a=$(url_of node-a)
b=$(url_of node-b)
echo "node-a $a, node-b $b"

step "clients on both nodes"
status=0
EVSOCK_NODE_A=$a EVSOCK_NODE_B=$b EVSOCK_REDIS_PORT=$port node --test "$dir/multinode.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  for f in "$work"/chat-*.log "$work/redis.log"; do
    echo "--- $f"
    tail -n 30 "$f"
  done
  exit "$status"
fi
step "hub multi-node test done in $((SECONDS - start)) s"
