#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 10) from its seeds and past crashes,
# under a 512 MB memory limit; fails on the first crash. Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`). Prints each target's executions.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-10}
cargo +nightly fuzz build --release
for target in $(cargo +nightly fuzz list); do
    corpus=$(mktemp -d)
    inputs=("seeds/$target")
    [ -d "regressions/$target" ] && inputs+=("regressions/$target")
    log=$(mktemp)
    if ! cargo +nightly fuzz run --release "$target" "$corpus" "${inputs[@]}" -- \
        -rss_limit_mb=512 -malloc_limit_mb=512 -max_total_time="$seconds" >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz target $target failed" >&2
        exit 1
    fi
    execs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo '?')
    echo "$target: $execs executions in $seconds s"
    rm -rf "$corpus" "$log"
done
