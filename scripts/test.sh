#!/usr/bin/env bash
# Runs every test evsock has. Installs what it needs, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings

step "cargo test (workspace)"
cargo test --workspace -q 2>&1 | tee .test-rust.log
