#!/usr/bin/env bash
# One publisher's fan-out and the latency at 100 msg/s (issue 21 item 3), A/B in one sitting:
# two chat-server builds and the socketioxide peer, alternating (the order rotated every
# round), each run on a fresh server on a free loopback port.
#
#  - full: one room of MEMBERS, one publisher with WINDOW messages in flight for SECS s
#    (`--window`), then, for the chat-server builds, the same for 0.5 s: the server's system
#    calls over its whole life (`perf stat -e syscalls:sys_enter_*`), long minus short over
#    their difference in deliveries, take start-up, connecting and joining out (sends per
#    delivery: the kernel's work);
#  - p99: one room of MEMBERS, 10 publishers at RATE msg/s for P99_SECS s.
#
# BASE and NEW are directories holding each build's release `chat-server` and `chat-bench`
# (NEW's generator drives every server); SIOXIDE is the socketioxide peer's binary (empty: left
# out). Prints one line per run: KIND ROUND SERVER and a JSON object (deliveries/s, server CPU
# and its system part, generator CPU, p50/p99 in us, and for chat-server the syscall counts).
# Knobs: ROUNDS (3), MEMBERS (1000), WINDOW (16), SECS (5), RATE (100), P99_SECS (10), WHAT
# ("full p99"). Loopback only; every run bounded by a timeout.
set -u
: "${BASE:?BASE=dir of the base build}" "${NEW:?NEW=dir of the new build}"
SIOXIDE=${SIOXIDE-}
ROUNDS=${ROUNDS:-3}
MEMBERS=${MEMBERS:-1000}
WINDOW=${WINDOW:-16}
SECS=${SECS:-5}
RATE=${RATE:-100}
P99_SECS=${P99_SECS:-10}
WHAT=${WHAT:-full p99}
GEN=$NEW/chat-bench
OUT=${OUT:-$(mktemp -d /tmp/single-publisher.XXXXXX)}
mkdir -p "$OUT"

. "$(dirname "$0")/lib.sh"

# run SERVER KIND ROUND [fanout flags...]: one fresh server, one fan-out run; prints its line.
run() {
  local server=$1 kind=$2 round=$3 port pid stat=
  shift 3
  port=$(free_port)
  start_server "$server" $port "$OUT/$server.log"
  pid=$server_pid
  if ! kill -0 $pid 2>/dev/null; then
    echo "$kind $round $server {\"error\":\"server did not start\"}"
    return
  fi
  if [ "$server" != socketioxide ]; then
    stat="$OUT/$kind.$round.$server.stat"
    perf stat -x, -p $pid -o "$stat" -e task-clock,context-switches,syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex &
  fi
  timeout 200 "$GEN" fanout --addr 127.0.0.1:$port --server "$server" --server-pid $pid "$@" \
    >"$OUT/$kind.$round.$server.json" 2>/dev/null
  kill $pid 2>/dev/null
  wait $pid 2>/dev/null
  wait 2>/dev/null
  python3 - "$OUT/$kind.$round.$server.json" "$stat" "$kind $round $server" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith('{')]
if not lines:
    print(sys.argv[3], '{"error":"no result"}'); sys.exit()
j = json.loads(lines[-1])
r = dict(delivered=j['delivered'], expected=j['expected'], dps=round(j['deliveries_per_s']),
         cpu=round(j['server_cpu_s'], 2), sys=round(j['server_sys_s'], 2),
         gen=round(j['generator_cpu_s'], 2), p50=j['p50_us'], p99=j['p99_us'],
         reordered=j['reordered'], complete=j['complete'])
if sys.argv[2]:
    for l in open(sys.argv[2]):
        p = l.strip().split(',')
        if len(p) > 3 and p[0][:1].isdigit():
            r[p[2].replace('syscalls:sys_enter_', '')] = int(float(p[0]))
print(sys.argv[3], json.dumps(r))
PY
}

servers="base new"
[ -n "$SIOXIDE" ] && servers="$servers socketioxide"
for round in $(seq 1 "$ROUNDS"); do
  # Rotate the order: each server goes first in some round.
  set -- $servers
  for _ in $(seq 2 "$round"); do set -- "${@:2}" "$1"; done
  order="$*"
  for server in $order; do
    for kind in $WHAT; do
      case $kind in
        full)
          run "$server" full "$round" --rooms 1 --members "$MEMBERS" --publishers 1 \
            --window "$WINDOW" --duration-secs "$SECS" --drain-secs 5
          if [ "$server" != socketioxide ]; then
            run "$server" short "$round" --rooms 1 --members "$MEMBERS" --publishers 1 \
              --window "$WINDOW" --duration-secs 0.5 --drain-secs 5
          fi
          ;;
        p99)
          run "$server" p99 "$round" --rooms 1 --members "$MEMBERS" --publishers 10 \
            --rate "$RATE" --duration-secs "$P99_SECS" --drain-secs 5
          ;;
      esac
    done
  done
done
echo "raw files: $OUT" >&2
