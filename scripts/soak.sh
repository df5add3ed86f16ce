#!/usr/bin/env bash
# Soak test (not in CI): holds thousands of clients chatting against a release chat-server
# for a while and records the server's RSS and open files every 10 seconds.
#
# The clients are `chat-bench fanout` (bench/): ROOMS rooms of MEMBERS members each, PUBLISHERS
# of them sending RATE messages a second in all, every delivery checked exactly once and in
# order (`--strict`). The server uses its default SQLite store in a temporary directory.
#
# Usage: scripts/soak.sh [SECONDS]   (default 600; environment: ROOMS, MEMBERS, PUBLISHERS,
#        RATE, OUT; SOAK_NO_BUILD=1 uses the release binaries already built)
# Output: the samples in $OUT (default target/soak/samples.csv: seconds,rss_kib,open_files),
# the fanout result line in target/soak/fanout.json, and a summary on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECS=${1:-600}
ROOMS=${ROOMS:-20}
MEMBERS=${MEMBERS:-100}
PUBLISHERS=${PUBLISHERS:-40}
RATE=${RATE:-100}
WORK=target/soak
OUT=${OUT:-$WORK/samples.csv}
mkdir -p "$WORK"
CLIENTS=$((ROOMS * MEMBERS))

if [ -z "${SOAK_NO_BUILD:-}" ]; then
  echo "==> building chat-server and chat-bench (release)"
  timeout 1800 cargo build -q --release -p chat-server -p chat-bench
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET_DIR/release

DATA=$(mktemp -d)
# Limits raised for the soak: every client is on loopback (4 source addresses) and the
# publishers send well under the default rate limit, but a soak must not trip on them.
"$BIN/chat-server" --listen 127.0.0.1:0 --data "$DATA/chat.db" \
  --max-connections-per-ip $((CLIENTS + 100)) 2>"$WORK/server.log" &
SERVER=$!
SAMPLER=""
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT
# The server picks a free port and logs it.
ADDR=""
for _ in $(seq 1 100); do
  ADDR=$(sed -n 's/.*listening on \(127[.0-9]*:[0-9]*\).*/\1/p' "$WORK/server.log" 2>/dev/null | head -1)
  [ -n "$ADDR" ] && break
  kill -0 "$SERVER" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ADDR" ]; then
  echo "chat-server did not start:" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi

ulimit -n 65536 2>/dev/null || true
echo "seconds,rss_kib,open_files" >"$OUT"
(
  start=$(date +%s)
  # Bounded: at most the soak plus its setup and drain, sampled every 10 s.
  for _ in $(seq 0 $(((SECS + 300) / 10))); do
    [ -d "/proc/$SERVER" ] || break
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status")
    files=$(ls "/proc/$SERVER/fd" | wc -l)
    echo "$(($(date +%s) - start)),$rss,$files" >>"$OUT"
    sleep 10
  done
) &
SAMPLER=$!

echo "==> chat-server (pid $SERVER) at $ADDR: $CLIENTS clients in $ROOMS rooms, $PUBLISHERS publishers at $RATE msg/s for $SECS s"
set +e
timeout $((SECS + 600)) "$BIN/chat-bench" fanout --addr "$ADDR" --server-pid "$SERVER" \
  --rooms "$ROOMS" --members "$MEMBERS" --publishers "$PUBLISHERS" --rate "$RATE" \
  --duration-secs "$SECS" --drain-secs 10 --concurrency 64 --tag soak --strict \
  >"$WORK/fanout.json"
STATUS=$?
set -e
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=""
echo "==> fanout exit status $STATUS (0: every delivery exactly once, in order)"
cat "$WORK/fanout.json"
python3 - "$OUT" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
if not rows:
    sys.exit("no samples")
rss = [int(r["rss_kib"]) for r in rows]
fds = [int(r["open_files"]) for r in rows]
print(f"==> {len(rows)} samples over {rows[-1]['seconds']} s")
print(f"    RSS MiB: first {rss[0]/1024:.1f}, max {max(rss)/1024:.1f}, last {rss[-1]/1024:.1f}")
print(f"    open files: first {fds[0]}, max {max(fds)}, last {fds[-1]}")
PY
exit "$STATUS"
