#!/usr/bin/env bash
# Runs every test evsock has, and installs what they need (idempotently):
#
#   Rust      fmt, clippy -D warnings, unit/integration/vector/hub tests
#   Autobahn  wstest in both roles (the slow compression cases 12/13.X.7-18
#             only with AUTOBAHN_FULL=1, see tests/autobahn/fuzzingclient.json)
#   interop   Python websockets and Node ws, both roles, plain and deflate
#   C         header drift, C tests plain/valgrind/ASan, the C host, wslay
#   Python    the pyo3 module: vectors, interop, errors, hypothesis, asyncio
#   Node      the napi addon: vectors, interop with ws, errors
#   browser   evsock.js under Node, then the chat demo in headless Chromium
#   hub       two chat nodes over a real redis-server
#   fuzz      every cargo-fuzz target for a few seconds (smoke)
#
# `.ci/run` calls exactly this. Each part is also runnable on its own; see
# the scripts named below. SKIP="python node" skips parts by name (for local
# iteration only; CI skips nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
declare -a timings=() failed=()
skip=" ${SKIP:-} "

part() { # part NAME CMD...
    local name=$1 t0=$SECONDS status=ok
    shift
    if [[ "$skip" == *" $name "* ]]; then
        printf '\n==> %s: skipped (SKIP)\n' "$name"
        timings+=("$(printf '%-9s    - s  skipped' "$name")")
        return 0
    fi
    printf '\n==> %s: %s\n' "$name" "$*"
    # Keep going after a failure, so one run shows every broken part.
    "$@" || { status=FAILED; failed+=("$name"); }
    timings+=("$(printf '%-9s %4d s  %s' "$name" $((SECONDS - t0)) "$status")")
}

# Called under `||`, where set -e does not apply: chain explicitly.
rust_checks() {
    cargo fmt --all -- --check &&
        cargo clippy --workspace --all-targets -q -- -D warnings &&
        cargo test --workspace -q
}

part rust     rust_checks
part autobahn bash scripts/autobahn.sh both
part interop  bash tests/interop/run.sh
part c        bash scripts/test-ffi.sh
part python   bash scripts/test-python.sh
part node     bash scripts/test-node.sh
part browser  bash scripts/test-browser.sh
part hub      bash scripts/test-hub.sh
part fuzz     bash fuzz/smoke.sh

printf '\n==> summary after %d s\n' $((SECONDS - start))
printf '    %s\n' "${timings[@]}"
# The closing line CI reads: parts passed and failed (skipped ones aside).
ran=0
for t in "${timings[@]}"; do [[ "$t" == *skipped ]] || ran=$((ran + 1)); done
if ((${#failed[@]})); then
    printf '==> FAILED: %s\n' "${failed[*]}"
    printf 'parts: %d passed, %d failed\n' $((ran - ${#failed[@]})) ${#failed[@]}
    exit 1
fi
printf '==> all tests passed\n'
printf 'parts: %d passed, 0 failed\n' "$ran"
