#!/usr/bin/env bash
# Runs every test evsock has: Rust unit/integration/vector tests, Autobahn
# in both roles, interop with independent peers, and (as they land) the C,
# Python and Node bindings and a fuzz smoke. Installs what it needs,
# idempotently. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
start=$SECONDS

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings

step "cargo test (workspace)"
cargo test --workspace -q

step "Autobahn|Testsuite, server and client roles"
bash scripts/autobahn.sh both

step "interop with Python websockets and Node ws, both roles"
bash tests/interop/run.sh

step "done in $((SECONDS - start)) s"
