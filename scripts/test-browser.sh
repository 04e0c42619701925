#!/usr/bin/env bash
# Tests the browser side of evsock: the JS client (browser/evsock.js) under
# Node (golden session vectors, chaos simulation, client host, codecs), then
# the chat demo end to end in headless Chromium against the Rust host.
#
# Installs what it needs, idempotently: Debian's chromium if /usr/bin/chromium
# is missing, and `npm install` in browser/ and tests/e2e/ when node_modules is
# missing or package.json changed since the last install.
#
#   scripts/test-browser.sh              # unit tests + e2e (Rust host)
#   EVSOCK_E2E_SERVER=standin scripts/test-browser.sh   # e2e on the JS stand-in
#   SKIP_E2E=1 scripts/test-browser.sh   # Node tests only
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
start=$SECONDS

if [ -z "${SKIP_E2E:-}" ] && [ ! -x /usr/bin/chromium ]; then
  step "installing Debian chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

# npm install in $1 unless node_modules matches package.json already.
npm_deps() {
  local dir=$1 stamp want
  stamp="$dir/node_modules/.evsock-package-json.sha256"
  want=$(sha256sum "$dir/package.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  step "npm install in $dir"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  mkdir -p "$dir/node_modules"
  echo "$want" >"$stamp"
}

npm_deps browser
step "Node tests: browser/test (vectors, simulation, client, codecs)"
node --test browser/test/

if [ -n "${SKIP_E2E:-}" ]; then
  step "e2e skipped (SKIP_E2E set); done in $((SECONDS - start)) s"
  exit 0
fi

npm_deps tests/e2e
step "e2e: chat demo in headless Chromium (${EVSOCK_E2E_SERVER:-rust} host)"
node --test --test-concurrency=1 tests/e2e/chat.e2e.test.js

step "browser tests done in $((SECONDS - start)) s (screenshots in tests/e2e/screenshots/)"
