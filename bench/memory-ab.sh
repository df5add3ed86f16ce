#!/usr/bin/env bash
# A/B of two builds' memory per connection in one sitting (BENCHMARKS.md "Memory per
# connection, second pass"): 10 rooms x 1,000 members chatting at 5 msg/s per room for 20 s
# (KiB of server RSS per connection when all have joined, and the peak while publishing),
# then 10,000 idle connections (CONNECT with a nick, no room). A fresh server per run, the
# two builds alternating, their order swapped every round. BASE and NEW are directories
# holding each build's release `chat-server` and `chat-bench`. Prints one line per run:
# chatting ROUND BUILD joined-KiB peak-KiB lost complete, or idle ROUND BUILD KiB.
# Knobs: CHAT_ROUNDS (5), IDLE_ROUNDS (3). Each server listens on a free port.
# Loopback only; each run bounded by a timeout. Needs `ulimit -n` of 12,000 or more.
set -u
: "${BASE:?BASE=dir of the base build}" "${NEW:?NEW=dir of the new build}"
CHAT_ROUNDS=${CHAT_ROUNDS:-5}
IDLE_ROUNDS=${IDLE_ROUNDS:-3}
declare -A BIN=([base]=$BASE [new]=$NEW)

# Starts BUILD's server on a free port and waits (at most 10 s) until it listens; sets pid
# and port.
start() {
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${BIN[$1]}/chat-server" --listen 127.0.0.1:$port --store memory --outbox-capacity 65536 \
    --max-connections 30000 --max-connections-per-ip 30000 --rate-per-sec 0 >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do ss -ltn | grep -q "127.0.0.1:$port " && break; sleep 0.1; done
}

stop() {
  kill "$pid"
  wait "$pid" 2>/dev/null
}

field() {
  python3 -c 'import json,sys
j=json.loads(sys.stdin.read() or "{}")
print(" ".join(str(j.get(k)) for k in sys.argv[1:]))' "$@"
}

for round in $(seq 1 "$CHAT_ROUNDS"); do
  if (( round % 2 )); then order="base new"; else order="new base"; fi
  for b in $order; do
    start "$b"
    line=$(timeout 400 "${BIN[$b]}/chat-bench" fanout --addr 127.0.0.1:$port --mode sio \
      --server-pid $pid --rooms 10 --members 1000 --publishers 10 --rate 50 --duration-secs 20 \
      --drain-secs 5 --src-addrs 8 --tag active-memory 2>/dev/null | grep '^{' | tail -1)
    stop
    echo "chatting $round $b $(echo "$line" | field rss_per_connection_joined_kib \
      rss_per_connection_peak_kib lost complete)"
  done
done
for round in $(seq 1 "$IDLE_ROUNDS"); do
  if (( round % 2 )); then order="base new"; else order="new base"; fi
  for b in $order; do
    start "$b"
    line=$(timeout 400 "${BIN[$b]}/chat-bench" connections --addr 127.0.0.1:$port --mode sio \
      --server-pid $pid --count 10000 --procs 2 --src-addrs 8 --setup-secs 180 2>/dev/null \
      | grep '^{' | tail -1)
    stop
    echo "idle $round $b $(echo "$line" | field rss_per_connection_kib)"
  done
done
