#!/usr/bin/env bash
# The full benchmark: builds chat-server (from a commit, default HEAD), chat-bench, the bare
# peer, the socketioxide peer and the Node Socket.IO peer; starts all four servers on
# loopback; runs the same scenarios against each, alternating servers within every step;
# writes bench/results.jsonl, BENCHMARKS.md (the generated part) and bench/latency.svg.
#
# Usage: bench/run.sh            (what `just bench` runs; ~15-25 minutes on 2 cores)
# Knobs (environment): BENCH_REV (commit of chat-server to measure), ROOMS, MEMBERS,
# PUBLISHERS, RATES (the ladder, total msg/s), STEP_SECS, P99_RATE, P99_SECS, P99_ROUNDS, CONNS,
# CHURN_SECS, FULL_MEMBERS, FULL_WINDOW, FULL_SECS (one publisher at full speed),
# ACTIVE_ROOMS, ACTIVE_MEMBERS, ACTIVE_RATE, ACTIVE_SECS (memory while the rooms chat),
# SERVERS (subset, e.g. "chat-server bare"), CARGO_TARGET_DIR.
# Every run is bounded: each chat-bench call has its own time limits and a `timeout` here.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
T=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$T

BENCH_REV=${BENCH_REV:-HEAD}
ROOMS=${ROOMS:-2}
MEMBERS=${MEMBERS:-1000}
PUBLISHERS=${PUBLISHERS:-10}
RATES=${RATES:-"25 50 100 200 400 800 1200 1600 2000 2400 2800 3000 3200 3600 4000"}
STEP_SECS=${STEP_SECS:-5}
P99_RATE=${P99_RATE:-100}
P99_SECS=${P99_SECS:-10}
P99_ROUNDS=${P99_ROUNDS:-3}
CONNS=${CONNS:-19000}
CHURN_SECS=${CHURN_SECS:-5}
FULL_MEMBERS=${FULL_MEMBERS:-1000}
FULL_WINDOW=${FULL_WINDOW:-16}
FULL_SECS=${FULL_SECS:-5}
ACTIVE_ROOMS=${ACTIVE_ROOMS:-10}
ACTIVE_MEMBERS=${ACTIVE_MEMBERS:-1000}
ACTIVE_RATE=${ACTIVE_RATE:-50}
ACTIVE_SECS=${ACTIVE_SECS:-20}
SERVERS=${SERVERS:-"chat-server bare socketioxide socketio-node"}
RESULTS=$ROOT/bench/results.jsonl

log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }

# --- build -------------------------------------------------------------------------------
SHA=$(git rev-parse "$BENCH_REV")
SRC=$T/bench-src/$SHA
BIN=$T/bench-bin
mkdir -p "$BIN"
if [ ! -x "$BIN/chat-server-$SHA" ]; then
  log "building chat-server at $SHA (release)"
  rm -rf "$SRC" && mkdir -p "$SRC"
  git archive "$SHA" | tar -x -C "$SRC"
  # A target directory of its own: built into the shared one, the exported tree's artifacts
  # made cargo take the working tree's release build for up to date when it was not.
  (cd "$SRC" && CARGO_TARGET_DIR="$T/bench-build" cargo build --release -p chat-server)
  cp "$T/bench-build/release/chat-server" "$BIN/chat-server-$SHA"
fi
log "building chat-bench and bench-bare (release)"
cargo build --release -p chat-bench -p bench-bare
log "building the socketioxide peer (release)"
(cd bench/peers/socketioxide && CARGO_TARGET_DIR=$T/sioxide cargo build --release --locked)
if [ ! -d bench/peers/socketio-node/node_modules ]; then
  log "installing the Node peer (npm ci)"
  (cd bench/peers/socketio-node && npm ci --no-audit --no-fund)
fi
GEN=$T/release/chat-bench

# --- servers -------------------------------------------------------------------------------
declare -A PORT=([chat-server]=7911 [bare]=7914 [socketioxide]=7913 [socketio-node]=7912)
declare -A MODE=([chat-server]=sio [bare]=raw [socketioxide]=sio [socketio-node]=sio)
declare -A CMD=(
  [chat-server]="$BIN/chat-server-$SHA --listen 127.0.0.1:${PORT[chat-server]} --store memory --outbox-capacity 65536 --max-connections 30000 --max-connections-per-ip 30000 --rate-per-sec 0"
  [bare]="$T/release/bench-bare ${PORT[bare]}"
  [socketioxide]="$T/sioxide/release/bench-socketioxide ${PORT[socketioxide]}"
  [socketio-node]="node bench/peers/socketio-node/server.js ${PORT[socketio-node]}"
)
declare -A NOTE=(
  [chat-server]="release build of commit $SHA; memory store, outbox 65536 packets, connection limits above the test, no per-connection rate limit"
  [bare]="tokio-tungstenite broadcast, no Socket.IO, no chat logic (bench/peers/bare)"
  [socketioxide]="socketioxide $(grep -A1 'name = "socketioxide"' bench/peers/socketioxide/Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p'), axum, max_buffer_size 65536 (bench/peers/socketioxide)"
  [socketio-node]="socket.io $(node -p 'require("./bench/peers/socketio-node/package-lock.json").packages["node_modules/socket.io"].version') on ws, Node $(node --version), NODE_ENV=production, websocket transport only, no compression"
)
declare -A PID=()

cleanup() {
  for name in "${!PID[@]}"; do
    kill "${PID[$name]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

: > "$RESULTS"
loadavg() { printf '{"scenario":"load","when":"%s","loadavg":"%s"}\n' "$1" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESULTS"; }
loadavg start
start_server() { # name: starts it (again: the old process is stopped first)
  local name=$1
  if [ -n "${PID[$name]:-}" ]; then
    kill "${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
  fi
  log "starting $name: ${CMD[$name]}"
  if [ "$name" = socketio-node ]; then
    NODE_ENV=production ${CMD[$name]} >> "$T/bench-$name.log" 2>&1 &
  else
    RUST_LOG=warn ${CMD[$name]} >> "$T/bench-$name.log" 2>&1 &
  fi
  PID[$name]=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$name]}") 2>/dev/null; then break; fi
    sleep 0.1
  done
}

for name in $SERVERS; do
  : > "$T/bench-$name.log"
  start_server "$name"
  printf '{"scenario":"server","server":"%s","note":"%s","command":"%s"}\n' \
    "$name" "${NOTE[$name]}" "${CMD[$name]/$T/\$CARGO_TARGET_DIR}" >> "$RESULTS"
done

common() { # name -> the flags every scenario shares
  echo --addr "127.0.0.1:${PORT[$1]}" --mode "${MODE[$1]}" --server "$1" --server-pid "${PID[$1]}" --out "$RESULTS"
}

# --- idle connections: first, on fresh servers (memory freed by later load would hide the cost)
for name in $SERVERS; do
  log "connections $name: $CONNS"
  # shellcheck disable=SC2046
  timeout 400 "$GEN" connections $(common "$name") --count "$CONNS" --procs 2 --src-addrs 8 \
    --setup-secs 180 || true
done

# --- memory while the rooms chat: each server restarted, so the RSS it starts from is a fresh
# process's and what the idle connections above left behind does not count.
for name in $SERVERS; do
  start_server "$name"
  log "active memory $name: $ACTIVE_ROOMS x $ACTIVE_MEMBERS members, $ACTIVE_RATE msg/s"
  # shellcheck disable=SC2046
  timeout 400 "$GEN" fanout $(common "$name") --rooms "$ACTIVE_ROOMS" --members "$ACTIVE_MEMBERS" \
    --publishers "$ACTIVE_ROOMS" --rate "$ACTIVE_RATE" --duration-secs "$ACTIVE_SECS" --drain-secs 5 \
    --src-addrs 8 --tag active-memory || true
done

# --- one publisher at full speed into one room (Socket.IO servers: the window counts acks)
for name in $SERVERS; do
  [ "${MODE[$name]}" = sio ] || continue
  log "full speed $name: 1 x $FULL_MEMBERS members, $FULL_WINDOW in flight"
  # shellcheck disable=SC2046
  timeout 300 "$GEN" fanout $(common "$name") --rooms 1 --members "$FULL_MEMBERS" \
    --publishers 1 --window "$FULL_WINDOW" --duration-secs "$FULL_SECS" --drain-secs 5 \
    --tag full-speed || true
done

# --- fan-out ladder: alternate servers at each rate; a server stops after its first unclean step
declare -A CLIMBING=()
for name in $SERVERS; do CLIMBING[$name]=1; done
for rate in $RATES; do
  for name in $SERVERS; do
    [ "${CLIMBING[$name]}" = 1 ] || continue
    log "fan-out $name: $ROOMS x $MEMBERS members, $rate msg/s"
    # shellcheck disable=SC2046
    if ! timeout 300 "$GEN" fanout $(common "$name") --rooms "$ROOMS" --members "$MEMBERS" \
        --publishers "$PUBLISHERS" --rate "$rate" --duration-secs "$STEP_SECS" --drain-secs 5 \
        --keep-up-secs 1 --tag ladder --strict --allow-reorder; then
      CLIMBING[$name]=0
    fi
  done
done

# --- latency at a fixed load: one room of MEMBERS at P99_RATE msg/s -------------------------
# Several rounds, the servers alternating within each, so a burst of other work on the shared
# machine lands on one run and not on one server; the report gives each server's median.
for round in $(seq 1 "$P99_ROUNDS"); do
  for name in $SERVERS; do
    log "p99 $name (round $round of $P99_ROUNDS): 1 x $MEMBERS members, $P99_RATE msg/s"
    # shellcheck disable=SC2046
    timeout 300 "$GEN" fanout $(common "$name") --rooms 1 --members "$MEMBERS" \
      --publishers "$PUBLISHERS" --rate "$P99_RATE" --duration-secs "$P99_SECS" --drain-secs 5 \
      --tag "p99-r$round" || true
  done
done

# --- churn ---------------------------------------------------------------------------------
for name in $SERVERS; do
  log "churn $name: $CHURN_SECS s"
  # shellcheck disable=SC2046
  timeout 120 "$GEN" churn $(common "$name") --concurrency 32 --src-addrs 16 \
    --duration-secs "$CHURN_SECS" || true
done

loadavg end

# --- report --------------------------------------------------------------------------------
"$GEN" report --results "$RESULTS" --doc "$ROOT/BENCHMARKS.md" --chart "$ROOT/bench/latency.svg" \
  --chart-link bench/latency.svg --commit "$SHA" --date "$(date -u '+%Y-%m-%d %H:%M UTC')"
log "done: BENCHMARKS.md, bench/latency.svg, bench/results.jsonl"
