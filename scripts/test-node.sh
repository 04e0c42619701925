#!/usr/bin/env bash
# Tests the Node addon (issue 7, bindings-node/): builds it in release with
# @napi-rs/cli, runs the `node --test` suite (shared ws and session vectors,
# interop with the ws package both ways, hosts, errors) and a quick run of
# the frame benchmark against ws (ratios are printed, never judged).
# Installs what it needs only when missing; safe to run again.
#
#   bash scripts/test-node.sh
#   NODE_SKIP_BENCH=1 bash scripts/test-node.sh
#
# Exits non-zero if the build or any test fails.
set -uo pipefail
cd "$(dirname "$0")/../bindings-node"
export PATH="$HOME/.cargo/bin:$PATH"
export RUST_BACKTRACE=0
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

step() { printf '\n==> %s\n' "$*"; }
start=$SECONDS

step "node and npm"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "installing nodejs and npm (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null \
        || { echo "apt-get install nodejs npm failed"; exit 1; }
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if ((major < 18)); then
    echo "node $(node --version) is too old: the addon and node --test need >= 18"
    exit 1
fi
echo "node $(node --version), npm $(npm --version)"

step "npm dependencies (@napi-rs/cli, ws, bufferutil)"
# npm records what it installed in node_modules/.package-lock.json; install
# again only if it is missing or older than package.json / package-lock.json.
marker=node_modules/.package-lock.json
if [[ ! -f $marker || package.json -nt $marker || package-lock.json -nt $marker ]]; then
    npm install --no-save --loglevel=error || { echo "npm install failed"; exit 1; }
    touch "$marker" # npm leaves it alone when nothing changed
else
    echo "up to date"
fi

step "build the addon (release)"
# napi build writes evsock.<platform>.node, native.js and index.d.ts here;
# the last two are committed and must come out the same.
npx napi build --platform --release --js native.js --dts index.d.ts 2>&1 | grep -v '^npm warn'
if ((PIPESTATUS[0] != 0)); then
    echo "FAILED: napi build"
    exit 1
fi
if ! node -e "require('.')"; then
    echo "FAILED: require('evsock') after the build"
    exit 1
fi
if ! git diff --quiet -- native.js index.d.ts 2>/dev/null; then
    echo "note: the generated native.js / index.d.ts differ from the committed ones:"
    git --no-pager diff --stat -- native.js index.d.ts
fi

status=0
step "node --test"
log="$(mktemp)"
if node --test test/ >"$log" 2>&1; then
    tail -n 9 "$log"
else
    grep -A 25 '^not ok' "$log" | head -n 200
    tail -n 9 "$log"
    echo "FAILED: node --test"
    status=1
fi
rm -f "$log"

if [[ -z ${NODE_SKIP_BENCH:-} ]]; then
    step "benchmark vs ws (quick; ratios are informative only)"
    timeout 120 node bench/frames.js --quick || echo "benchmark did not finish (ignored)"
fi

step "done in $((SECONDS - start)) s"
exit $status
