#!/usr/bin/env bash
# Fan-out at equal bytes per frame: chat-server against the bare peer with its default 100-byte
# payload and with a 208-byte payload (a 212-byte frame, the size of chat-server's `message`
# frame in this scenario: id, room, seq, from, text and ts around the same 100-byte text).
# Alternates the three servers at each rate; one 5 s step each, 2 rooms of 1,000 members,
# 10 publishers. Prints one line per step; raw results go to $OUT (default
# $CARGO_TARGET_DIR/same-bytes.jsonl). Knobs: RATES, OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=${CARGO_TARGET_DIR:-$ROOT/target}
RATES=${RATES:-"2800 3200 3600"}
OUT=${OUT:-$T/same-bytes.jsonl}
cargo build --release --quiet -p chat-server -p chat-bench -p bench-bare --manifest-path "$ROOT/Cargo.toml"
GEN=$T/release/chat-bench
PORT=7101
for rate in $RATES; do
  for who in chat-server bare bare-208; do
    PORT=$((PORT + 1))
    extra=()
    case $who in
      chat-server)
        "$T/release/chat-server" --listen "127.0.0.1:$PORT" --store memory --outbox-capacity 65536 \
          --max-connections 30000 --max-connections-per-ip 30000 --rate-per-sec 0 > /dev/null 2>&1 &
        mode=sio ;;
      bare) "$T/release/bench-bare" "$PORT" > /dev/null 2>&1 & mode=raw ;;
      bare-208) "$T/release/bench-bare" "$PORT" > /dev/null 2>&1 & mode=raw; extra=(--payload 208) ;;
    esac
    PID=$!
    for _ in $(seq 1 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2> /dev/null; then break; fi
      sleep 0.1
    done
    timeout 120 "$GEN" fanout --addr "127.0.0.1:$PORT" --mode $mode --server $who --server-pid $PID \
      --out "$OUT" --rooms 2 --members 1000 --publishers 10 --rate "$rate" --duration-secs 5 \
      --drain-secs 5 --keep-up-secs 1 --tag same-bytes "${extra[@]}" 2>&1 | tail -1 || true
    kill $PID 2> /dev/null || true
    wait $PID 2> /dev/null || true
  done
done
