#!/usr/bin/env bash
# A/B of two builds by the server's instruction count, which the machine's load does not
# change (issue 19: the metrics' cost). Each run starts one build's release `chat-server` under
# valgrind's callgrind (every instruction of every thread counted from the first, no cache
# simulation) and drives it with that build's `chat-bench fanout`: memory store, 2 rooms x 100
# members, 10 publishers at RATE msg/s for SECS s (a long run), then again for 0.5 s (a short
# run: the same 210 connections and joins, 10 messages). With ADMIN=1 the NEW server has its
# admin listener on and `/metrics` scraped once a second from its start to its end. The builds
# alternate, the order swapped every round. BASE and NEW are directories holding each build's
# release `chat-server` and `chat-bench`.
#
# Prints one line per run: ROUND BUILD KIND instructions delivered expected complete wall-s
# scrapes, and at the end, per build, instructions per delivered message both ways (the whole
# total of a long run divided by its deliveries; and long minus short of the same round over
# their difference in deliveries, which takes start-up, connecting and joining out).
# Knobs: ROUNDS (3), RATE (50), SECS (20), OUT (dir for callgrind files). Loopback only; every
# wait and loop is bounded.
set -u
: "${BASE:?BASE=dir of the base build}" "${NEW:?NEW=dir of the new build}"
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-50}
SECS=${SECS:-20}
OUT=${OUT:-$(mktemp -d /tmp/ab-instructions.XXXXXX)}
mkdir -p "$OUT"
declare -A BIN=([base]=$BASE [new]=$NEW)
# Free loopback ports (free_port), so two of these (or anything else) can run at once.
. "$(dirname "$0")/lib.sh"
results="$OUT/runs.txt"
: >"$results"

# One run: BUILD KIND(long|short) ROUND. Appends its line to $results and prints it.
run() {
  local b=$1 kind=$2 round=$3 secs extra=() pid scraper= line cg t0 t1 total scrapes=0
  if [ "$kind" = long ]; then secs=$SECS; else secs=0.5; fi
  port=$(free_port)
  aport=$(free_port)
  if [ "$b" = new ] && [ "${ADMIN:-0}" = 1 ]; then extra=(--admin-listen 127.0.0.1:$aport); fi
  cg="$OUT/callgrind.$round.$b.$kind"
  valgrind --tool=callgrind --callgrind-out-file="$cg" --collect-atstart=yes --dump-instr=no \
    --cache-sim=no --branch-sim=no \
    "${BIN[$b]}/chat-server" --listen 127.0.0.1:$port --store memory --rate-per-sec 0 \
    --max-connections-per-ip 100000 --max-connections 100000 "${extra[@]}" \
    >"$cg.log" 2>&1 &
  pid=$!
  # Up to 60 s for the server to listen (it starts slowly under valgrind).
  for _ in $(seq 1 120); do
    ss -ltn | grep -q "127.0.0.1:$port " && break
    sleep 0.5
  done
  if [ ${#extra[@]} -gt 0 ]; then
    (for _ in $(seq 1 300); do
      curl -s -m 2 -o /dev/null -w '%{http_code}\n' 127.0.0.1:$aport/metrics >>"$cg.scrapes"
      sleep 1
    done) &
    scraper=$!
  fi
  t0=$(date +%s.%N)
  line=$(timeout 300 "${BIN[$b]}/chat-bench" fanout --addr 127.0.0.1:$port --rooms 2 --members 100 \
    --publishers 10 --rate "$RATE" --duration-secs "$secs" --drain-secs 20 --strict \
    --allow-reorder 2>"$cg.bench.err" | grep '^{' | tail -1)
  t1=$(date +%s.%N)
  if [ -n "$scraper" ]; then
    kill "$scraper" 2>/dev/null
    wait "$scraper" 2>/dev/null
    scrapes=$(grep -c '^200$' "$cg.scrapes")
  fi
  kill -TERM "$pid" 2>/dev/null
  # Up to 60 s for valgrind to write its counts.
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  total=$(grep -E '^(summary|totals):' "$cg" 2>/dev/null | head -1 | awk '{print $2}')
  local d
  d=$(echo "$line" | python3 -c 'import json,sys; j=json.loads(sys.stdin.read() or "{}"); print(j.get("delivered",0), j.get("expected",0), j.get("complete"))')
  echo "$round $b $kind ${total:-0} $d $(python3 -c "print(round($t1-$t0,1))") $scrapes" | tee -a "$results"
}

for round in $(seq 1 "$ROUNDS"); do
  if (( round % 2 )); then order="base new"; else order="new base"; fi
  for b in $order; do
    run "$b" long "$round"
    run "$b" short "$round"
  done
done

# Per build: instructions per delivered message, each round, both ways; then new / base.
python3 - "$results" <<'EOF'
import sys, statistics as st
runs = {}
for l in open(sys.argv[1]):
    r, b, k, ins, dl, ex, ok, wall, sc = l.split()
    runs[(int(r), b, k)] = (int(ins), int(dl), int(ex), ok)
rounds = sorted({r for r, _, _ in runs})
per = {"base": {"total": [], "marginal": []}, "new": {"total": [], "marginal": []}}
for r in rounds:
    for b in ("base", "new"):
        li, ld, le, lok = runs[(r, b, "long")]
        si, sd, se, sok = runs[(r, b, "short")]
        if lok != "True" or sok != "True":
            print(f"round {r} {b}: a run was not complete, left out")
            continue
        per[b]["total"].append(li / ld)
        per[b]["marginal"].append((li - si) / (ld - sd))
for way in ("total", "marginal"):
    b, n = per["base"][way], per["new"][way]
    print(f"{way}: base {[round(x) for x in b]} new {[round(x) for x in n]}")
    if b and n:
        print(f"  new/base of medians {st.median(n)/st.median(b):.4f}; "
              f"round by round {[round(x/y, 4) for x, y in zip(n, b)]}; "
              f"extremes {min(n)/max(b):.4f}..{max(n)/min(b):.4f}")
EOF
echo "callgrind files and logs in $OUT"
