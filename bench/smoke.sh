#!/usr/bin/env bash
# The benchmark's smoke test, for CI: builds chat-server, the bare peer and chat-bench (debug
# by default; BUILD_PROFILE=release for release), starts chat-server and the bare peer on
# loopback, and runs a tiny fan-out (2 rooms of 20, 4 publishers, 2 s), 200 idle connections
# and 1 s of churn against each; the same fan-out against chat-server with every client on
# HTTP long-polling (`--transport polling`); then 1 s of `durable_bench` (SQLite store, 32
# senders with 4 messages in flight each). Fails (non-zero) unless every fan-out delivery
# arrived exactly once and in order, every connection was held, and every durable message was
# acked ok and in order; then, where redis-server is installed, the fan-out with its clients
# spread over two chat-server nodes on one Redis (some deliveries cross nodes, Redis's
# commands per message are read). Well under 2 minutes once built.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
T=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${BUILD_PROFILE:-debug}
if [ "$PROFILE" = release ]; then FLAG=--release; else FLAG=; fi
cargo build $FLAG -p chat-server -p bench-bare -p chat-bench
cargo build $FLAG -p chat-bench --example durable_bench
BIN=$T/$PROFILE
OUT=$(mktemp -d)

# Ports from this process id, so parallel CI jobs do not collide.
CS_PORT=$((20000 + ($$ % 5000) * 2))
BARE_PORT=$((CS_PORT + 1))
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$OUT"; }
trap cleanup EXIT

RUST_LOG=warn "$BIN/chat-server" --listen "127.0.0.1:$CS_PORT" --store memory \
  --outbox-capacity 65536 --max-connections-per-ip 10000 --rate-per-sec 0 > "$OUT/cs.log" 2>&1 &
CS_PID=$!; PIDS+=("$CS_PID")
"$BIN/bench-bare" "$BARE_PORT" > "$OUT/bare.log" 2>&1 &
BARE_PID=$!; PIDS+=("$BARE_PID")
for port in "$CS_PORT" "$BARE_PORT"; do
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
done

passed=0
failed=0
check() { # name, command...
  local name=$1; shift
  if timeout 60 "$@" >> "$OUT/results.jsonl"; then
    passed=$((passed + 1)); echo "ok: $name"
  else
    failed=$((failed + 1)); echo "FAILED: $name"
  fi
}
for target in "chat-server sio $CS_PORT $CS_PID" "bare raw $BARE_PORT $BARE_PID"; do
  read -r name mode port pid <<< "$target"
  flags=(--addr "127.0.0.1:$port" --mode "$mode" --server "$name" --server-pid "$pid")
  check "$name fan-out" "$BIN/chat-bench" fanout "${flags[@]}" --rooms 2 --members 20 \
    --publishers 4 --rate 200 --duration-secs 2 --drain-secs 5 --tag smoke --strict
  check "$name connections" "$BIN/chat-bench" connections "${flags[@]}" --count 200 --procs 2 \
    --setup-secs 30 --strict
  check "$name churn" "$BIN/chat-bench" churn "${flags[@]}" --concurrency 4 --duration-secs 1
done
# The polling client: handshake, CONNECT, join, messages sent by POST and received by the held
# GET, pings answered, each delivery exactly once and in order.
check "chat-server fan-out over polling" "$BIN/chat-bench" fanout --addr "127.0.0.1:$CS_PORT" \
  --mode sio --transport polling --server chat-server --server-pid "$CS_PID" --rooms 2 \
  --members 10 --publishers 4 --rate 100 --duration-secs 2 --drain-secs 5 --tag smoke --strict
check "durable pipelined" "$BIN/examples/durable_bench" --senders 32 --window 4 --seconds 1

# Cluster mode: the same clients spread over two nodes on one redis-server (its own, on a free
# port, AOF with appendfsync always); every delivery exactly once and in order, some of them
# to receivers on the other node than their publisher's, and Redis read for its commands per
# message. Skipped, saying so, where redis-server is not installed (as the cluster tests are;
# .ci/run installs it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
cluster_smoke() {
  local redis_port p1 p2 n1 n2
  redis_port=$(free_port)
  mkdir -p "$OUT/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$OUT/redis" --save '' \
    --appendonly yes --appendfsync always --protected-mode no --logfile "$OUT/redis/redis.log" &
  PIDS+=("$!")
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  p1=$(free_port); p2=$(free_port)
  for port in "$p1" "$p2"; do
    RUST_LOG=warn "$BIN/chat-server" --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$redis_port" \
      --max-connections-per-ip 10000 --rate-per-sec 0 >> "$OUT/cluster.log" 2>&1 &
    PIDS+=("$!")
    if [ "$port" = "$p1" ]; then n1=$!; else n2=$!; fi
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
      sleep 0.1
    done
  done
  timeout 60 "$BIN/chat-bench" fanout --addr "127.0.0.1:$p1,127.0.0.1:$p2" --server-pid "$n1,$n2" \
    --redis "127.0.0.1:$redis_port" --server cluster-2 --rooms 2 --members 10 --publishers 4 \
    --rate 50 --duration-secs 2 --drain-secs 5 --tag smoke --strict > "$OUT/cluster.jsonl" &&
  python3 - "$OUT/cluster.jsonl" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["nodes"] == 2 and r["complete"], r
assert r["delivered_same_node"] > 0 and r["delivered_other_node"] > 0, r
assert r["delivered_same_node"] + r["delivered_other_node"] == r["delivered"], r
assert r["redis"]["commands_per_message"] >= 1 and r["redis"]["calls_per_message"], r["redis"]
print(f'{r["delivered_other_node"]} of {r["delivered"]} deliveries crossed nodes, '
      f'{r["redis"]["commands_per_message"]:.2f} Redis commands per message')
PY
}
if ! command -v redis-server >/dev/null 2>&1; then
  echo "skipped: cluster fan-out (redis-server is not installed: apt-get install redis-server)"
elif cluster_smoke; then
  passed=$((passed + 1)); echo "ok: cluster fan-out, 2 nodes on Redis"
else
  failed=$((failed + 1)); echo "FAILED: cluster fan-out, 2 nodes on Redis"
fi
echo "bench smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
