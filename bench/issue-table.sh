#!/usr/bin/env bash
# Issue 21's table in one sitting: the scenarios of its first three rows for two chat-server
# builds and the socketioxide peer, alternating (the order rotated every round), each run on a
# fresh server on a free loopback port. The fourth row (durable) is bench/durable-ab.sh.
#
#  - full: one room of 1,000, one publisher with 16 messages in flight for 5 s;
#  - p99:  one room of 1,000, 10 publishers at 100 msg/s in all for 10 s;
#  - mem:  10 rooms x 1,000 chatting at 5 msg/s per room for 20 s (RSS per connection, joined
#          and at its peak while publishing).
#
# BASE and NEW are directories holding each build's release `chat-server`; NEW's `chat-bench`
# drives every server. SIOXIDE is the socketioxide peer's binary (empty: left out; built by
# bench/run.sh, or `cargo build --release` in bench/peers/socketioxide). BARE is the bare
# tokio-tungstenite peer's binary (`bench-bare`, no Socket.IO and no chat: the floor of a
# WebSocket fan-out on this machine; empty: left out). Prints one line per run:
# KIND ROUND SERVER deliveries/s, server and generator CPU-s, p50/p99 (us), RSS per connection
# joined/peak (KiB), complete, lost. Knobs: ROUNDS (3), WHAT ("full p99 mem"), SERVERS (the
# order of the first round, default "base new socketioxide bare", without those not given).
# Loopback only; every run bounded by a timeout.
set -u
: "${BASE:?BASE=dir of the base build}" "${NEW:?NEW=dir of the new build}"
SIOXIDE=${SIOXIDE-}
BARE=${BARE-}
ROUNDS=${ROUNDS:-3}
WHAT=${WHAT:-full p99 mem}
GEN=$NEW/chat-bench
OUT=${OUT:-$(mktemp -d /tmp/issue-table.XXXXXX)}
mkdir -p "$OUT"
default_servers="base new"
[ -n "$SIOXIDE" ] && default_servers="$default_servers socketioxide"
[ -n "$BARE" ] && default_servers="$default_servers bare"
SERVERS=${SERVERS:-$default_servers}

. "$(dirname "$0")/lib.sh"

# run SERVER KIND ROUND [fanout flags...]: one fresh server, one fan-out run; prints its line.
run() {
  local server=$1 kind=$2 round=$3 port pid
  shift 3
  [ "$server" = bare ] && set -- --mode raw "$@"
  port=$(free_port)
  start_server "$server" $port "$OUT/$server.log"
  pid=$server_pid
  timeout 300 "$GEN" fanout --addr 127.0.0.1:$port --server "$server" --server-pid $pid "$@" \
    >"$OUT/$kind.$round.$server.json" 2>/dev/null
  kill $pid 2>/dev/null
  wait $pid 2>/dev/null
  python3 - "$OUT/$kind.$round.$server.json" "$kind $round $server" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith('{')]
if not lines:
    print(sys.argv[2], 'no result'); sys.exit()
j = json.loads(lines[-1])
print(sys.argv[2], 'dps=%d cpu=%.2f gen=%.2f p50=%s p99=%s joined=%.2f peak=%.2f complete=%s lost=%s' % (
    j['deliveries_per_s'], j['server_cpu_s'], j['generator_cpu_s'], j['p50_us'], j['p99_us'],
    j.get('rss_per_connection_joined_kib', 0), j.get('rss_per_connection_peak_kib', 0),
    j['complete'], j.get('lost', '?')), flush=True)
PY
}

for round in $(seq 1 "$ROUNDS"); do
  set -- $SERVERS
  for _ in $(seq 2 "$round"); do set -- "${@:2}" "$1"; done
  for server in "$@"; do
    for kind in $WHAT; do
      # The bare peer does not answer acks: it has no full-speed (windowed) run.
      [ "$server" = bare ] && [ "$kind" = full ] && continue
      case $kind in
        full) run "$server" full "$round" --rooms 1 --members 1000 --publishers 1 --window 16 \
          --duration-secs 5 --drain-secs 5 ;;
        p99) run "$server" p99 "$round" --rooms 1 --members 1000 --publishers 10 --rate 100 \
          --duration-secs 10 --drain-secs 5 ;;
        mem) run "$server" mem "$round" --rooms 10 --members 1000 --publishers 10 --rate 50 \
          --duration-secs 20 --drain-secs 5 --src-addrs 8 ;;
      esac
    done
  done
done
echo "raw files: $OUT" >&2
