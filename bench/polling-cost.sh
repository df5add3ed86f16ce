#!/usr/bin/env bash
# What HTTP long-polling costs the server against WebSocket (issue 16, item 10): one room of
# MEMBERS clients (default 100), PUBLISHERS of them sending RATE messages per second in all
# for SECS seconds, every client on WebSocket or every client on polling (no upgrade). Each
# run gets a fresh release chat-server, so its RSS before the first client is a new
# process's; the transports alternate within each of ROUNDS rounds. Prints one line per run;
# raw results (server CPU and its system part, RSS before / joined / peak, the GETs and POSTs
# made) go to $OUT (default $CARGO_TARGET_DIR/polling-cost.jsonl). Knobs: MEMBERS, PUBLISHERS,
# RATES, SECS, ROUNDS, OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=${CARGO_TARGET_DIR:-$ROOT/target}
MEMBERS=${MEMBERS:-100}
PUBLISHERS=${PUBLISHERS:-10}
RATES=${RATES:-"20"}
SECS=${SECS:-20}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$T/polling-cost.jsonl}
cargo build --release --quiet -p chat-server -p chat-bench --manifest-path "$ROOT/Cargo.toml"
GEN=$T/release/chat-bench
PORT=7201
for rate in $RATES; do
  for round in $(seq 1 "$ROUNDS"); do
    for transport in websocket polling; do
      PORT=$((PORT + 1))
      "$T/release/chat-server" --listen "127.0.0.1:$PORT" --store memory --outbox-capacity 65536 \
        --max-connections 30000 --max-connections-per-ip 30000 --rate-per-sec 0 > /dev/null 2>&1 &
      PID=$!
      for _ in $(seq 1 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2> /dev/null; then break; fi
        sleep 0.1
      done
      timeout 300 "$GEN" fanout --addr "127.0.0.1:$PORT" --server chat-server --server-pid $PID \
        --transport $transport --out "$OUT" --rooms 1 --members "$MEMBERS" \
        --publishers "$PUBLISHERS" --rate "$rate" --duration-secs "$SECS" --drain-secs 5 \
        --tag "polling-cost-r$round" 2>&1 | tail -1 || true
      kill $PID 2> /dev/null || true
      wait $PID 2> /dev/null || true
    done
  done
done
