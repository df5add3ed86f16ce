#!/usr/bin/env bash
# A/B of two builds in one sitting: fan-out (memory store, 2 rooms x 1,000 members, 10
# publishers at RATE msg/s for 6 s) and durable acked messages (256 senders, window 8, 6 s),
# the two builds alternating, their order swapped every round. BASE and NEW are directories
# holding each build's release `chat-server`, `chat-bench` and `durable_bench` (e.g. copies
# of target/release and target/release/examples of two checkouts). With ADMIN=1 the NEW
# server runs with an admin listener scraped every second (the metrics' cost, issue 19).
# Prints one line per run: fanout ROUND BUILD deliveries/s cpu-s-per-million lost complete
# p99-us, then durable ROUND BUILD and durable_bench's summary. Knobs: ROUNDS, DURABLE_ROUNDS,
# RATE. Loopback only; each run bounded by a timeout.
set -u
: "${BASE:?BASE=dir of the base build}" "${NEW:?NEW=dir of the new build}"
ROUNDS=${ROUNDS:-10}
DURABLE_ROUNDS=${DURABLE_ROUNDS:-6}
RATE=${RATE:-400}
declare -A BIN=([base]=$BASE [new]=$NEW)
# Free loopback ports (free_port), so two of these (or anything else) can run at once.
. "$(dirname "$0")/lib.sh"
for round in $(seq 1 "$ROUNDS"); do
  if (( round % 2 )); then order="base new"; else order="new base"; fi
  for b in $order; do
    port=$(free_port)
    aport=$(free_port)
    extra=()
    if [ "$b" = new ] && [ "${ADMIN:-0}" = 1 ]; then extra=(--admin-listen 127.0.0.1:$aport); fi
    "${BIN[$b]}/chat-server" --listen 127.0.0.1:$port --store memory --rate-per-sec 0 \
      --max-connections-per-ip 100000 --max-connections 100000 "${extra[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep 1
    scraper=
    if [ ${#extra[@]} -gt 0 ]; then
      (for _ in $(seq 1 40); do curl -s -o /dev/null 127.0.0.1:$aport/metrics; sleep 1; done) &
      scraper=$!
    fi
    line=$(timeout 120 "${BIN[$b]}/chat-bench" fanout --addr 127.0.0.1:$port --server-pid $pid \
      --rooms 2 --members 1000 --publishers 10 --rate "$RATE" --duration-secs 6 --strict \
      --allow-reorder 2>/dev/null | grep '^{' | tail -1)
    if [ -n "$scraper" ]; then kill "$scraper" 2>/dev/null; fi
    kill $pid; wait $pid 2>/dev/null
    d=$(echo "$line" | python3 -c 'import json,sys; j=json.loads(sys.stdin.read() or "{}"); print(round(j.get("deliveries_per_s",0)), round(j.get("server_cpu_s_per_million",0),3), j.get("lost"), j.get("complete"), j.get("p99_us"))')
    echo "fanout $round $b $d"
  done
done
for round in $(seq 1 "$DURABLE_ROUNDS"); do
  if (( round % 2 )); then order="base new"; else order="new base"; fi
  for b in $order; do
    a=$(timeout 120 "${BIN[$b]}/durable_bench" --senders 256 --window 8 --seconds 6 2>/dev/null \
      | grep -E "acked messages/s|CPU per acked" | tr -s ' ' | tr '\n' ' ')
    echo "durable $round $b $a"
  done
done
