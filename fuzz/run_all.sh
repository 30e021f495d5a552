#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, one after another,
# from its committed seeds (fuzz/seeds/NAME); new inputs go to
# fuzz/corpus/NAME (ignored by git), crashes to fuzz/artifacts/NAME.
# Prints each target's executions and whether it found anything.
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=${*:-spec pth checkpoint safetensors idx adapter}
for t in $targets; do
    mkdir -p "corpus/$t"
    log="fuzz-$t.log"
    cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    echo "$t: exit $status, ${execs:-?} executions, $(ls "artifacts/$t" 2>/dev/null | wc -l) artifacts"
done
