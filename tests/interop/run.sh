#!/usr/bin/env bash
# Interop tests with the official Socket.IO clients: socket.io-client (npm, node:test) and
# python-socketio (PyPI, pytest), over WebSocket and (transports tests) long-polling, against
#   - the `interop` example (server/examples/interop.rs) and
#   - the real `chat-server` binary.
#
# Usage (from anywhere):
#   cargo build -p chat-server --example interop --bin chat-server
#   bash tests/interop/run.sh
#
# Environment:
#   INTEROP_BIN      the built interop example   (default: $CARGO_TARGET_DIR or <repo>/target, /debug/examples/interop)
#   CHAT_SERVER_BIN  the built chat-server       (default: $CARGO_TARGET_DIR or <repo>/target, /debug/chat-server)
#   CHAT_SERVER_ARGS extra arguments for chat-server (word-split)
#   INTEROP_SUITES   which client suites to run: "node python" (default) or one of them
#   INTEROP_DEBUG=1  wire logs: DEBUG=socket.io-client:*,engine.io-client:* for node and the
#                    python-socketio/engineio loggers for python
# Installs what is missing (npm ci into tests/interop/node_modules, a venv in
# tests/interop/.venv), starts each server on a free loopback port, runs both suites, stops
# the servers on exit, and exits non-zero if anything failed. Every wait is bounded.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
INTEROP_BIN="${INTEROP_BIN:-$TARGET/debug/examples/interop}"
CHAT_SERVER_BIN="${CHAT_SERVER_BIN:-$TARGET/debug/chat-server}"
SUITES="${INTEROP_SUITES:-node python}"
# The servers run in a scratch directory: make relative paths absolute first.
absolute() { case "$1" in /*) echo "$1" ;; */*) echo "$PWD/$1" ;; *) command -v "$1" || echo "$1" ;; esac; }
INTEROP_BIN="$(absolute "$INTEROP_BIN")"
CHAT_SERVER_BIN="$(absolute "$CHAT_SERVER_BIN")"

START_TIMEOUT=30      # seconds for a server to say it is listening
NPM_TIMEOUT=600       # seconds for npm ci
PIP_TIMEOUT=900       # seconds for venv + pip install
NODE_TIMEOUT=300      # seconds for the whole node suite
PYTEST_TIMEOUT=300    # seconds for the whole pytest suite

say() { printf 'interop: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/chat-interop.XXXXXX")"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for bin in "$INTEROP_BIN" "$CHAT_SERVER_BIN"; do
  [[ -x "$bin" ]] || die "$bin is not an executable; build it first:
    cargo build -p chat-server --example interop --bin chat-server
  (or point INTEROP_BIN / CHAT_SERVER_BIN at the binaries)"
done
command -v node >/dev/null || die "node is not installed"
command -v python3 >/dev/null || die "python3 is not installed"

# ---- dependencies -------------------------------------------------------------------------

wants() { [[ " $SUITES " == *" $1 "* ]]; }

if wants node; then
  # npm ci when node_modules is missing or older than the lock file.
  if [[ ! -f "$HERE/node_modules/.package-lock.json" \
        || "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]]; then
    say "npm ci (tests/interop)"
    (cd "$HERE" && timeout -k 10 "$NPM_TIMEOUT" npm ci --no-audit --no-fund) >&2 \
      || die "npm ci failed"
  fi
fi

VENV="$HERE/.venv"
if wants python; then
  STAMP="$VENV/.requirements.sha256"
  WANT_SUM="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
  if [[ ! -x "$VENV/bin/python" || ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT_SUM" ]]; then
    say "creating $VENV and installing requirements.txt"
    [[ -x "$VENV/bin/python" ]] || timeout -k 10 120 python3 -m venv "$VENV" >&2 \
      || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    timeout -k 10 "$PIP_TIMEOUT" "$VENV/bin/python" -m pip install --disable-pip-version-check \
      -q -r "$HERE/requirements.txt" >&2 || die "pip install -r requirements.txt failed"
    echo "$WANT_SUM" > "$STAMP"
  fi
fi

# ---- servers -------------------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for_line PID FILE REGEX: prints the first match of REGEX (sed -E, group 1) in FILE.
wait_for_line() {
  local pid="$1" file="$2" regex="$3" deadline=$((SECONDS + START_TIMEOUT)) hit
  while (( SECONDS < deadline )); do
    hit="$(sed -nE "s/.*${regex}.*/\\1/p" "$file" 2>/dev/null | head -n1)"
    if [[ -n "$hit" ]]; then echo "$hit"; return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

show_log() { say "---- $1 (last 40 lines) ----"; tail -n 40 "$2" >&2; say "----"; }

INTEROP_LOG="$WORK/interop.log"
CHAT_LOG="$WORK/chat-server.log"

say "starting $INTEROP_BIN --port 0"
(cd "$WORK" && exec "$INTEROP_BIN" --port 0) >"$INTEROP_LOG" 2>&1 &
INTEROP_PID=$!
PIDS+=("$INTEROP_PID")
INTEROP_PORT="$(wait_for_line "$INTEROP_PID" "$INTEROP_LOG" 'listening on 127\.0\.0\.1:([0-9]+)')" || {
  show_log interop "$INTEROP_LOG"
  die "the interop example exited, or did not print 'listening on 127.0.0.1:PORT' within ${START_TIMEOUT}s"
}

CHAT_PORT="$(free_port)"
# A short heartbeat, so the tests see the server's pings and the clients' pongs.
export CHAT_TEST_PING_INTERVAL_MS=400
# Its own database in the work directory: a test must not write the user's default data file
# (nor see what earlier runs claimed there).
CHAT_ARGS=(--listen "127.0.0.1:$CHAT_PORT" --data "$WORK/chat.db" --ping-interval-ms "$CHAT_TEST_PING_INTERVAL_MS" --ping-timeout-ms 5000)
say "starting $CHAT_SERVER_BIN ${CHAT_ARGS[*]} ${CHAT_SERVER_ARGS:-}"
# shellcheck disable=SC2086 # CHAT_SERVER_ARGS is word-split on purpose
(cd "$WORK" && RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 exec "$CHAT_SERVER_BIN" "${CHAT_ARGS[@]}" ${CHAT_SERVER_ARGS:-}) \
  >"$CHAT_LOG" 2>&1 &
CHAT_PID=$!
PIDS+=("$CHAT_PID")
wait_for_line "$CHAT_PID" "$CHAT_LOG" "(listening) on .*${CHAT_PORT}" >/dev/null || {
  show_log chat-server "$CHAT_LOG"
  die "chat-server exited, or did not log 'listening on ...:$CHAT_PORT' within ${START_TIMEOUT}s"
}

export INTEROP_URL="http://127.0.0.1:$INTEROP_PORT"
export CHAT_URL="http://127.0.0.1:$CHAT_PORT"
say "interop example at $INTEROP_URL, chat-server at $CHAT_URL"

# ---- suites --------------------------------------------------------------------------------

FAILED=()
PASSED_N=0
FAILED_N=0

if wants node; then
  say "node --test (socket.io-client $(node -p 'require("'"$HERE"'/node_modules/socket.io-client/package.json").version' 2>/dev/null))"
  NODE_OUT="$WORK/node.out"
  (
    cd "$HERE" || exit 2
    if [[ "${INTEROP_DEBUG:-}" == 1 ]]; then export DEBUG="socket.io-client:*,engine.io-client:*"; fi
    timeout -k 10 "$NODE_TIMEOUT" node --test --test-concurrency=1 --test-timeout=60000 \
      --test-reporter=spec node/interop.test.mjs node/transports.test.mjs node/chat.test.mjs
  ) 2>&1 | tee "$NODE_OUT"
  rc=${PIPESTATUS[0]}
  p="$(sed -nE 's/^. pass ([0-9]+)$/\1/p' "$NODE_OUT" | tail -n1)"
  f="$(sed -nE 's/^. fail ([0-9]+)$/\1/p' "$NODE_OUT" | tail -n1)"
  PASSED_N=$((PASSED_N + ${p:-0})); FAILED_N=$((FAILED_N + ${f:-0}))
  if (( rc != 0 )); then FAILED+=("node (exit $rc)"); (( ${f:-0} > 0 )) || FAILED_N=$((FAILED_N + 1)); fi
fi

if wants python; then
  say "pytest (python-socketio $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("python-socketio"))' 2>/dev/null))"
  PY_OUT="$WORK/pytest.out"
  (
    cd "$HERE" || exit 2
    timeout -k 10 "$PYTEST_TIMEOUT" "$VENV/bin/python" -m pytest -p no:cacheprovider
  ) 2>&1 | tee "$PY_OUT"
  rc=${PIPESTATUS[0]}
  summary="$(grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$PY_OUT" | tail -n1)"
  p="$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$summary")"
  f="$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$summary")"
  e="$(sed -nE 's/.* ([0-9]+) errors?.*/\1/p' <<<"$summary")"
  PASSED_N=$((PASSED_N + ${p:-0})); FAILED_N=$((FAILED_N + ${f:-0} + ${e:-0}))
  if (( rc != 0 )); then FAILED+=("pytest (exit $rc)"); (( ${f:-0} + ${e:-0} > 0 )) || FAILED_N=$((FAILED_N + 1)); fi
fi

# A server that died during the run is a failure of its own.
for entry in "interop:$INTEROP_PID:$INTEROP_LOG" "chat-server:$CHAT_PID:$CHAT_LOG"; do
  IFS=: read -r name pid log <<<"$entry"
  if ! kill -0 "$pid" 2>/dev/null; then
    FAILED+=("$name exited during the run")
    FAILED_N=$((FAILED_N + 1))
    show_log "$name" "$log"
  fi
done

if (( ${#FAILED[@]} > 0 )); then
  show_log "interop example log" "$INTEROP_LOG"
  show_log "chat-server log" "$CHAT_LOG"
  say "FAILED: ${FAILED[*]}"
fi
echo "interop: $PASSED_N passed, $FAILED_N failed"
(( ${#FAILED[@]} == 0 ))
