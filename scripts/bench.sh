#!/usr/bin/env bash
# Builds and runs the evsock benchmarks in release mode and prints one table
# of throughput ratios (evsock / peer) plus memory per idle connection.
#
#   scripts/bench.sh            full run (a few minutes once built)
#   scripts/bench.sh --quick    smoke run (well under a minute once built);
#                               fails only on errors, never on ratios
#   scripts/bench.sh --e2e      also the end-to-end echo benchmark over
#                               127.0.0.1 (evsock example vs tokio-tungstenite)
#
# Results are also written to $BENCH_OUT (default: target/bench-results/).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=""
e2e=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick="--quick" ;;
        --e2e) e2e=1 ;;
        -h | --help)
            sed -n '2,12p' "$0"
            exit 0
            ;;
        *)
            echo "unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

target_dir="${CARGO_TARGET_DIR:-target}"
out="${BENCH_OUT:-$target_dir/bench-results}"
mkdir -p "$out"

step() { printf '\n==> %s\n' "$*" >&2; }

step "building benchmarks (release)"
cargo bench -p evsock-benches --no-run -q

step "ratios and memory per connection"
cargo bench -q -p evsock-benches --bench ratios -- $quick --out "$out/ratios.md"

if [ "$e2e" = 1 ]; then
    step "end-to-end echo over 127.0.0.1"
    bash scripts/bench-e2e.sh $quick | tee "$out/e2e.md"
fi

step "results written to $out/"
