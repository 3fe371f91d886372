#!/usr/bin/env bash
# A fuzzing campaign: every target (or those named) for RUNS executions or SECONDS, whichever comes
# first, JOBS targets at a time, under a 512 MB memory limit. New inputs go to corpus/<target>/ (kept
# between campaigns, ignored by git), crashes to artifacts/<target>/; each target's libFuzzer log
# goes to logs/. Prints a Markdown table of executions and findings per target. Needs the nightly
# toolchain and cargo-fuzz.
#
#     fuzz/campaign.sh                      # 10 million executions or 15 minutes each, 2 at a time
#     RUNS=1000000 SECONDS_EACH=60 JOBS=1 fuzz/campaign.sh geometry tracker
set -euo pipefail
cd "$(dirname "$0")"
runs=${RUNS:-10000000}
seconds=${SECONDS_EACH:-900}
jobs=${JOBS:-2}
cargo +nightly fuzz build --release
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
mkdir -p logs

fuzz_one() {
    local target=$1 runs=$2 seconds=$3
    mkdir -p "corpus/$target"
    local inputs=("seeds/$target")
    [ -d "regressions/$target" ] && inputs+=("regressions/$target")
    local start=$SECONDS
    # A crash ends the run with a non-zero status; the table reports it from the log.
    cargo +nightly fuzz run --release "$target" "corpus/$target" "${inputs[@]}" -- \
        -rss_limit_mb=512 -malloc_limit_mb=512 -runs="$runs" -max_total_time="$seconds" \
        -print_final_stats=1 >"logs/$target.log" 2>&1 || true
    echo $((SECONDS - start)) >"logs/$target.seconds"
}
export -f fuzz_one
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c "fuzz_one {} $runs $seconds"

echo "| target | executions | seconds | peak RSS MB | corpus | findings |"
echo "|---|---|---|---|---|---|"
for target in "${targets[@]}"; do
    log="logs/$target.log"
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    took=$(cat "logs/$target.seconds")
    peak=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    corpus=$(find "corpus/$target" -type f | wc -l)
    finding=$(grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+|panicked at [^ ]+|SUMMARY: [A-Za-z]+: [a-z-]+' "$log" || true)
    artifact=$(grep -m1 -o 'Test unit written to [^ ]*' "$log" | sed 's/Test unit written to //' || true)
    echo "| \`$target\` | $execs | $took | $peak | $corpus | ${finding:-none}${artifact:+ ($artifact)} |"
done
