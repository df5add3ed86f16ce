#!/usr/bin/env bash
# A/B of builds on the durable path in one sitting (issue 21 item 4): `durable_bench` with 256
# senders at window 1 and window 8, the builds in turn, their order rotated every round.
# BUILDS names the builds (default "base new"); each NAME needs a variable DIR_NAME holding the
# directory of that build's release `durable_bench` (a copy of target/release/examples), e.g.
#   DIR_base=/tmp/base DIR_new=/tmp/new bench/durable-ab.sh
# Prints one line per run: ROUND WINDOW BUILD acked/s, messages per commit, the ack latency
# percentiles, the CPU per acked message (all / server / store writer / senders) and the
# indexing passes. Knobs: ROUNDS (4), SECS (5, measured after durable_bench's 1 s warm-up),
# SENDERS (256), WINDOWS ("1 8"), EXTRA (more durable_bench flags for every run, e.g.
# "--index-rows 2048"), TEXT (every message's text, spaces and all; default durable_bench's
# 100 ASCII digits). Loopback only; each run bounded by a timeout.
set -u
ROUNDS=${ROUNDS:-4}
SECS=${SECS:-5}
SENDERS=${SENDERS:-256}
read -r -a builds <<<"${BUILDS:-base new}"
n=${#builds[@]}
for b in "${builds[@]}"; do
  dir="DIR_$b"
  : "${!dir:?set $dir to the directory of build $b}"
done
for r in $(seq 1 "$ROUNDS"); do
  order=()
  for i in $(seq 0 $((n - 1))); do order+=("${builds[$(((i + r - 1) % n))]}"); done
  for w in ${WINDOWS:-1 8}; do
    for b in "${order[@]}"; do
      dir="DIR_$b"
      out=$(timeout $((SECS + 60)) "${!dir}/durable_bench" --senders "$SENDERS" --window "$w" \
        --seconds "$SECS" ${EXTRA:-} ${TEXT:+--text "$TEXT"} 2>&1)
      acked=$(awk '/acked messages/ {print $3}' <<<"$out")
      mpc=$(awk '/messages\/commit/ {print $2}' <<<"$out")
      lat=$(sed -n 's/ack latency *//p' <<<"$out")
      cpu=$(sed -n 's/CPU per acked msg *//p' <<<"$out")
      idx=$(sed -n 's/indexing *//p' <<<"$out")
      echo "r$r w$w $b acked=$acked mpc=$mpc | $lat | $cpu | $idx"
    done
  done
done
