#!/usr/bin/env bash
# Run every fuzz target (or those named) for SECONDS each (default 600),
# with allocation and memory caps, and print each run's figures.
#
#   bash fuzz/run.sh                  # all five, 10 minutes each
#   SECONDS_EACH=30 bash fuzz/run.sh frames inflate
#
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
# The seed corpora in fuzz/corpus/<target> are read, never written: new
# inputs go to target/fuzz-corpus/<target>. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the script; keep it as a regression
# test (see fuzz/README.md).
#
# Caps: -malloc_limit_mb=64 fails any single allocation over 64 MiB (the
# targets' limits are 1 MiB frames and messages, so a buffer sized by a
# declared 16 MiB length would be caught), -rss_limit_mb=1024 the process
# (ASan's shadow memory included), -timeout=10 any input taking over 10 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
SECONDS_EACH=${SECONDS_EACH:-600}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(http_head body_framing frames inflate load_response)
cargo +nightly fuzz build -O >/dev/null
status=0
for t in "${TARGETS[@]}"; do
    work=../target/fuzz-corpus/$t
    mkdir -p "$work"
    log=../target/fuzz-$t.log
    echo "=== $t: ${SECONDS_EACH}s (log: target/fuzz-$t.log)"
    if cargo +nightly fuzz run -O "$t" "$work" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -malloc_limit_mb=64 -rss_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
    fi
    # libFuzzer's last status line: executions, coverage, features, corpus.
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
    rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)
    rss=$(grep -E '^stat::peak_rss_mb' "$log" | awk '{print $2}' || true)
    echo "$t: $result; executions ${execs:-?}, ${rate:-?}/s, peak RSS ${rss:-?} MB; last: $last"
done
exit $status
