#!/usr/bin/env bash
# The cluster benchmark (issue 18 item 7): the same clients against
#   redis-1          one chat-server node on Redis (AOF, appendfsync always),
#   redis-3          three nodes on that one Redis, the clients spread over them round-robin,
#   redis-3-nofsync  the same three nodes with Redis's `appendfsync no` (AOF written, not
#                    fsynced: what the durable append's fsync costs),
#   sqlite-1         one node on SQLite (the single-node default), for reference,
# alternating setups within each round. Two scenarios each: fan-out throughput (FAN_ROOMS
# rooms of FAN_MEMBERS, one publisher per room keeping FAN_WINDOW messages unacknowledged,
# FAN_SECS) and latency at a fixed load (one room of LAT_MEMBERS, LAT_PUBLISHERS publishers,
# LAT_RATE msg/s in all, LAT_SECS). On Redis, chat-bench reads `INFO commandstats` and
# redis-server's CPU (/proc) around the publishing: commands (by command) and Redis CPU per
# message, net of the idle rate. Prints a Markdown table of the medians over the rounds and
# appends every result to OUT (default bench/cluster-results.jsonl).
#
# Usage: bench/cluster.sh   (about 6 minutes once built, on 2 cores; `just bench-cluster`)
# Knobs (environment): ROUNDS (2), SETUPS, FAN_ROOMS (10), FAN_MEMBERS (100), FAN_WINDOW (4),
# FAN_SECS (5), LAT_MEMBERS (300), LAT_PUBLISHERS (5), LAT_RATE (50), LAT_SECS (10), OUT,
# CARGO_TARGET_DIR.
# Loopback only, free ports, its own redis-server in a temporary directory; every chat-bench
# run is bounded by its own limits and a `timeout`; everything it started is stopped on exit,
# failure and Ctrl-C included. Needs redis-server (Debian: apt-get install redis-server).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
T=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${ROUNDS:-2}
SETUPS=${SETUPS:-"redis-1 redis-3 redis-3-nofsync sqlite-1"}
FAN_ROOMS=${FAN_ROOMS:-10}
FAN_MEMBERS=${FAN_MEMBERS:-100}
FAN_WINDOW=${FAN_WINDOW:-4}
FAN_SECS=${FAN_SECS:-5}
LAT_MEMBERS=${LAT_MEMBERS:-300}
LAT_PUBLISHERS=${LAT_PUBLISHERS:-5}
LAT_RATE=${LAT_RATE:-50}
LAT_SECS=${LAT_SECS:-10}
OUT=${OUT:-$ROOT/bench/cluster-results.jsonl}

log() { echo "[cluster-bench $(date -u +%H:%M:%S)] $*" >&2; }

command -v redis-server >/dev/null || {
  echo "bench/cluster.sh: redis-server is not installed (apt-get install redis-server)" >&2
  exit 1
}

log "building chat-server and chat-bench (release)"
cargo build --quiet --release -p chat-server -p chat-bench
BIN=$T/release
WORK=$(mktemp -d "${TMPDIR:-/tmp}/chat-cluster-bench.XXXXXX")
NODE_PIDS=()
REDIS_PID=

stop_nodes() {
  for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${NODE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  NODE_PIDS=()
}
cleanup() {
  stop_nodes
  if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port: up to 10 s
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1 after 10 s" >&2
  return 1
}

# --- Redis: AOF with appendfsync always, as cluster mode recommends -----------------------
REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
  --appendonly yes --appendfsync always --protected-mode no --logfile "$WORK/redis/redis.log" &
REDIS_PID=$!
wait_port "$REDIS_PORT"
REDIS=127.0.0.1:$REDIS_PORT
redis() { redis-cli -p "$REDIS_PORT" "$@" >/dev/null; }
log "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on $REDIS (pid $REDIS_PID)"

# --- the nodes of one setup ----------------------------------------------------------------
ADDRS=
PIDS=
start_setup() { # setup: starts its nodes, sets ADDRS and PIDS (comma lists)
  local setup=$1 count store
  case $setup in
    redis-1) count=1; store=redis ;;
    redis-3 | redis-3-nofsync) count=3; store=redis ;;
    sqlite-1) count=1; store=sqlite ;;
    *) echo "unknown setup $setup" >&2; return 1 ;;
  esac
  # A fresh Redis for every setup: no earlier run's logs, nicks or members.
  redis FLUSHALL
  if [ "$setup" = redis-3-nofsync ]; then redis CONFIG SET appendfsync no; else redis CONFIG SET appendfsync always; fi
  ADDRS=; PIDS=
  for i in $(seq 1 "$count"); do
    local port store_flags
    port=$(free_port)
    if [ "$store" = redis ]; then
      store_flags=(--redis "redis://$REDIS")
    else
      rm -rf "$WORK/sqlite" && mkdir -p "$WORK/sqlite"
      store_flags=(--store sqlite --sqlite-path "$WORK/sqlite/chat.db")
    fi
    RUST_LOG=warn "$BIN/chat-server" --listen "127.0.0.1:$port" "${store_flags[@]}" \
      --outbox-capacity 65536 --max-connections 30000 --max-connections-per-ip 30000 \
      --rate-per-sec 0 >> "$WORK/$setup.log" 2>&1 &
    local pid=$!
    NODE_PIDS+=("$pid")
    wait_port "$port"
    ADDRS=${ADDRS:+$ADDRS,}127.0.0.1:$port
    PIDS=${PIDS:+$PIDS,}$pid
  done
}

bench() { # setup, tag, chat-bench fanout flags...
  local setup=$1 tag=$2; shift 2
  local redis_flags=()
  [[ $setup == redis-* ]] && redis_flags=(--redis "$REDIS")
  timeout 180 "$BIN/chat-bench" fanout --addr "$ADDRS" --server-pid "$PIDS" --server "$setup" \
    --src-addrs 8 "${redis_flags[@]}" --tag "$tag" --out "$OUT" "$@" > /dev/null ||
    log "$setup $tag: chat-bench failed (status $?), see above"
}

SITTING=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '{"scenario":"cluster-sitting","when":"%s","commit":"%s","loadavg":"%s","machine":"%s cores"}\n' \
  "$SITTING" "$(git rev-parse --short HEAD)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" >> "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  for setup in $SETUPS; do
    log "round $round of $ROUNDS: $setup"
    start_setup "$setup"
    log "$setup: fan-out, $FAN_ROOMS x $FAN_MEMBERS, $FAN_WINDOW in flight per room, $FAN_SECS s"
    bench "$setup" "cluster-fanout-r$round" --rooms "$FAN_ROOMS" --members "$FAN_MEMBERS" \
      --publishers "$FAN_ROOMS" --window "$FAN_WINDOW" --duration-secs "$FAN_SECS" --drain-secs 10
    log "$setup: latency, 1 x $LAT_MEMBERS at $LAT_RATE msg/s, $LAT_SECS s"
    bench "$setup" "cluster-latency-r$round" --rooms 1 --members "$LAT_MEMBERS" \
      --publishers "$LAT_PUBLISHERS" --rate "$LAT_RATE" --duration-secs "$LAT_SECS" --drain-secs 5
    stop_nodes
  done
done

# --- the table: medians over the rounds of this sitting -------------------------------------
python3 - "$OUT" "$SITTING" "$SETUPS" <<'PY'
import json, statistics, sys
path, sitting, setups = sys.argv[1], sys.argv[2], sys.argv[3].split()
rows, on = [], False
for line in open(path):
    r = json.loads(line)
    if r.get("scenario") == "cluster-sitting":
        on = r["when"] == sitting
    elif on and r.get("scenario") == "fanout":
        rows.append(r)
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def fmt(x, nd=1):
    return "-" if x is None else f"{x:,.{nd}f}"
print("| setup | scenario | runs | clean | deliveries/s | p50 ms | p99 ms | same node p50 / p99 ms | other node p50 / p99 ms | nodes' CPU µs/msg | nodes' CPU µs/delivery | Redis commands/msg | Redis CPU µs/msg | AOF bytes/msg |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
calls = {}
for kind in ("fanout", "latency"):
    for setup in setups:
        rs = [r for r in rows if r["server"] == setup and r["tag"].startswith(f"cluster-{kind}-")]
        if not rs:
            continue
        m = lambda f: med([f(r) for r in rs])
        other = m(lambda r: r["p50_other_node_us"] / 1e3 if r["delivered_other_node"] else None)
        other99 = m(lambda r: r["p99_other_node_us"] / 1e3 if r["delivered_other_node"] else None)
        redis = [r["redis"] for r in rs if r.get("redis")]
        print("| " + " | ".join([
            setup, kind, str(len(rs)), f'{sum(r["complete"] for r in rs)}/{len(rs)}',
            fmt(m(lambda r: r["deliveries_per_s"]), 0),
            fmt(m(lambda r: r["p50_us"] / 1e3), 2), fmt(m(lambda r: r["p99_us"] / 1e3), 2),
            f'{fmt(m(lambda r: r["p50_same_node_us"] / 1e3), 2)} / {fmt(m(lambda r: r["p99_same_node_us"] / 1e3), 2)}',
            f'{fmt(other, 2)} / {fmt(other99, 2)}',
            fmt(m(lambda r: r["server_cpu_s"] / max(r["sent"], 1) * 1e6), 0),
            fmt(m(lambda r: r["server_cpu_s"] / max(r["delivered"], 1) * 1e6), 2),
            fmt(med([x["commands_per_message"] for x in redis]), 2) if redis else "-",
            fmt(med([x["cpu_us_per_message"] for x in redis]), 1) if redis else "-",
            fmt(med([x["aof_bytes_per_message"] for x in redis]), 0) if redis else "-",
        ]) + " |")
        for x in redis:
            for name, n in x["calls_per_message"].items():
                calls.setdefault((setup, kind), {}).setdefault(name, []).append(n)
print()
print("Redis calls per message by command (median over the rounds):")
print()
for (setup, kind), by in calls.items():
    print(f"- {setup} {kind}: " + ", ".join(f"{name} {statistics.median(v):.2f}" for name, v in sorted(by.items(), key=lambda kv: -statistics.median(kv[1]))))
PY
log "done: every result in $OUT"
