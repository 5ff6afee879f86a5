#!/usr/bin/env bash
# Runs every fuzz target in turn for SECONDS seconds each (default 300), at low CPU
# priority, starting from the committed seeds; new corpus entries go to corpus/<target>
# (git-ignored), crashes to artifacts/<target>. Needs nightly and `cargo install cargo-fuzz`.
#
#   fuzz/run-all.sh            # 5 minutes per target
#   fuzz/run-all.sh 60 batch   # 1 minute, one target
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-300}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame_decoder request response batch config segment_recovery)
fi
declare -A max_len=([frame_decoder]=8192 [request]=4096 [response]=4096 [batch]=4096 [config]=8192 [segment_recovery]=16384)
cargo +nightly fuzz build
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" logs
    echo "== $t: ${seconds}s"
    nice -n 19 cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len="${max_len[$t]:-4096}" -print_final_stats=1 2>&1 | tee "logs/$t.log" | grep -E "^(#[0-9]+ +(INITED|DONE)|stat::|==[0-9]+==|thread '|Test unit written)" || true
done
