#!/usr/bin/env bash
# Fuzz smoke test: replays the seeds and crash reproducers (cargo test), then
# runs every cargo-fuzz target for a few seconds each. Exits non-zero if any
# target finds a crash. See README.md for a long campaign.
#
#   fuzz/smoke.sh                 # every target, FUZZ_SECS (default 4) each
#   FUZZ_SECS=3 fuzz/smoke.sh reader connection
#   FUZZ_SEED=0 fuzz/smoke.sh     # a random seed (CI uses seed 1, so a red
#                                 # smoke run replays the same inputs)
set -euo pipefail
cd "$(dirname "$0")"

secs=${FUZZ_SECS:-4}
# Builds outside the clone, so that a fresh clone on the same machine (as
# in CI) rebuilds only the engine and the harness, not every dependency.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/evsock/fuzz-target}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    # cargo-fuzz needs nightly-only flags; stable can be talked into them.
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi
# No sanitizer: the engine is safe Rust, and the targets check their own
# properties; debug assertions and overflow checks stay on.
opts=(--sanitizer none)

echo "== replaying seeds and regressions (at ${SECONDS}s)"
cargo test --quiet

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi

echo "== building ${#targets[@]} targets (at ${SECONDS}s)"
"${fuzz[@]}" build "${opts[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
    echo "== $t (${secs}s)"
    mkdir -p "$work/$t" "corpus/$t"
    # New inputs go to the scratch directory; the checked-in seeds are read only.
    if ! "${fuzz[@]}" run "${opts[@]}" "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -seed="${FUZZ_SEED:-1}" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>"$work/$t.log"; then
        failed+=("$t")
        tail -n 40 "$work/$t.log"
    fi
    grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec' "$work/$t.log" | sed 's/^/   /' || true
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz smoke OK (${SECONDS}s)"
