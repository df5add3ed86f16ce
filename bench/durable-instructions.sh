#!/usr/bin/env bash
# A/B of builds on the durable path by the store writer's instructions per stored message,
# which the machine's load does not change (issue 21 item 4): `durable_bench` under valgrind's
# callgrind (each thread counted in a file of its own, no cache simulation), the builds in
# turn, their order swapped every round. The writer's file is the one holding
# `Writer::index_due`; stored messages are messages/commit x commits from the bench's output.
# Under valgrind the bench runs ~50x slower, so the batches are smaller than on the real
# path (~65 messages a commit at window 8) and the indexing is by count (--index-rows, the age
# limit off): compare builds with each other, not with un-instrumented runs.
#   DIR_base=/tmp/base DIR_new=/tmp/new bench/durable-instructions.sh
# Prints one line per run: ROUND WINDOW BUILD stored messages, the writer's instructions per
# message, all threads' instructions per message, the indexing passes. Knobs: ROUNDS (2), SECS
# (20), SENDERS (64), ROWS (2048), WINDOWS ("8 1"), OUT (dir for the callgrind files).
# Loopback only; each run bounded by a timeout.
set -u
ROUNDS=${ROUNDS:-2}
SECS=${SECS:-20}
SENDERS=${SENDERS:-64}
OUT=${OUT:-$(mktemp -d /tmp/durable-instructions.XXXXXX)}
mkdir -p "$OUT"
declare -A DIR=([base]=${DIR_base:?set DIR_base} [new]=${DIR_new:?set DIR_new})
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="base new"; else order="new base"; fi
  for w in ${WINDOWS:-8 1}; do
    for b in $order; do
      pfx="$OUT/cg.r$r.w$w.$b"
      rm -f "$pfx".*
      out=$(timeout $((SECS + 120)) valgrind --tool=callgrind --separate-threads=yes \
        --dump-instr=no --cache-sim=no --branch-sim=no --callgrind-out-file="$pfx.%p" \
        "${DIR[$b]}/durable_bench" --senders "$SENDERS" --window "$w" --seconds "$SECS" \
        --index-rows "${ROWS:-2048}" --index-age-ms 600000 2>/dev/null)
      stored=$(awk '/messages\/commit/ {gsub(/\(/, "", $8); printf "%.0f", $2 * $8}' <<<"$out")
      writer=$(grep -l 'writer::Writer::index_due' "$pfx".*-* | head -1)
      if [ -z "$writer" ] || [ -z "$stored" ] || [ "$stored" = 0 ]; then
        echo "r$r w$w $b: no result (see $pfx.*)"
        continue
      fi
      winstr=$(grep -m1 '^totals:' "$writer" | awk '{print $2}')
      all=0
      for f in "$pfx".*-*; do
        t=$(grep -m1 '^totals:' "$f" | awk '{print $2}')
        all=$((all + ${t:-0}))
      done
      idx=$(sed -n 's/indexing *//p' <<<"$out")
      echo "r$r w$w $b stored=$stored writer_instr_per_msg=$((winstr / stored))" \
        "all_instr_per_msg=$((all / stored)) | $idx"
    done
  done
done
