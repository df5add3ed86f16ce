#!/usr/bin/env bash
# Profiles chat-server under fan-out load: starts the release build that bench/run.sh made
# (or CHAT_SERVER=path), drives one room of MEMBERS at RATE msg/s for SECS seconds, and meanwhile
#  - perf stat: task clock, context switches, syscalls (all, write, writev, sendto, read,
#    recvfrom, epoll_wait, futex) of the server;
#  - perf record -g (call graphs from DWARF-less frame pointers are poor in Rust, so
#    --call-graph dwarf) and a flat report of the hottest symbols.
# Output: $OUT (default $CARGO_TARGET_DIR/bench-profile) with perf-stat.txt and perf-report.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=${CARGO_TARGET_DIR:-$ROOT/target}
MEMBERS=${MEMBERS:-1000}
RATE=${RATE:-200}
SECS=${SECS:-10}
OUT=${OUT:-$T/bench-profile}
SHA=$(git -C "$ROOT" rev-parse "${BENCH_REV:-HEAD}")
CHAT_SERVER=${CHAT_SERVER:-$T/bench-bin/chat-server-$SHA}
GEN=$T/release/chat-bench
PORT=7921
mkdir -p "$OUT"

RUST_LOG=warn "$CHAT_SERVER" --listen 127.0.0.1:$PORT --store memory --outbox-capacity 65536 \
  --max-connections 30000 --max-connections-per-ip 30000 --rate-per-sec 0 > "$OUT/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.1
done

"$GEN" fanout --addr 127.0.0.1:$PORT --server chat-server --server-pid $PID --rooms 1 \
  --members "$MEMBERS" --publishers 10 --rate "$RATE" --duration-secs "$SECS" --tag profile \
  > "$OUT/fanout.json" &
GENPID=$!
# Wait until publishing has started: the server goes busy after the joins settle.
sleep "${WARMUP:-6}"
PSECS=$((SECS / 2))
perf stat -p $PID -e task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex \
  -o "$OUT/perf-stat.txt" -- sleep "$PSECS" || true
perf record -F 499 --call-graph dwarf,16384 -p $PID -o "$OUT/perf.data" -- sleep 3 2> /dev/null || true
wait $GENPID || true
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
  | grep -v '^$' | head -400 > "$OUT/perf-report.txt" || true
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null \
  | grep '%' | head -60 > "$OUT/perf-flat.txt" || true
cat "$OUT/fanout.json"
cat "$OUT/perf-stat.txt"
cat "$OUT/perf-flat.txt"
