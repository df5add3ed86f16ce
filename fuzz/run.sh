#!/usr/bin/env bash
# Runs every fuzz target for a fixed number of iterations (default 1,000,000 each, at most
# 120 s each), starting from the seeds in fuzz/seeds/. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); nightly features come from RUSTC_BOOTSTRAP=1 on stable.
# No sanitizer: the workspace forbids unsafe code, and without one the build needs no
# nightly-only instrumentation beyond libFuzzer's coverage.
# Usage: fuzz/run.sh [RUNS] [TARGET...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
RUNS=${1:-1000000}
shift || true
TARGETS=${*:-engine_io socket_io binary_assembler upgrade payload chat_events names}
export RUSTC_BOOTSTRAP=1
for t in $TARGETS; do
  mkdir -p "corpus/$t"
  cp seeds/"$t"/* "corpus/$t/"
  echo "==> $t: $RUNS runs"
  timeout 900 cargo fuzz run --sanitizer none "$t" "corpus/$t" -- \
    -runs="$RUNS" -max_total_time=120 -max_len=4096 2>&1 | grep -E "DONE|Done [0-9]+ runs|panicked|crash-" | tail -3
  test "${PIPESTATUS[0]}" -eq 0
done
