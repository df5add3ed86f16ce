# Shell functions the A/B scripts in bench/ share: sourced (`. "$(dirname "$0")/lib.sh"`),
# not run.

# A free loopback port, the kernel's choice.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server SERVER PORT LOG: starts, in the background, `base`'s or `new`'s chat-server
# (the release builds in the directories $BASE and $NEW, memory store, the benchmarks'
# limits), the socketioxide peer ($SIOXIDE) or the bare tokio-tungstenite peer ($BARE, raw
# frames: drive it with `--mode raw`) on 127.0.0.1:PORT, its output in LOG; sets
# server_pid and waits (at most 10 s) until it listens.
start_server() {
  local server=$1 port=$2 log=$3
  case $server in
    base | new)
      "$([ "$server" = base ] && echo "$BASE" || echo "$NEW")/chat-server" --listen 127.0.0.1:$port \
        --store memory --outbox-capacity 65536 --max-connections 30000 \
        --max-connections-per-ip 30000 --rate-per-sec 0 >"$log" 2>&1 &
      ;;
    socketioxide) "$SIOXIDE" $port >"$log" 2>&1 & ;;
    bare) "$BARE" $port >"$log" 2>&1 & ;;
  esac
  server_pid=$!
  for _ in $(seq 1 100); do
    if ss -ltn 2>/dev/null | grep -q "127.0.0.1:$port "; then return 0; fi
    sleep 0.1
  done
}
