#!/usr/bin/env bash
# `just cluster`: a local cluster to try. Starts a redis-server (AOF, appendfsync always, a
# fresh directory, a free port) and three chat-server nodes on it, on 127.0.0.1:7878, :7879
# and :7880 (or from CLUSTER_PORT on), prints how to connect, and runs until Ctrl-C, which
# stops all of them. Needs redis-server (Debian: apt-get install redis-server).
set -euo pipefail

cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
base="${CLUSTER_PORT:-7878}"
work="$(mktemp -d "${TMPDIR:-/tmp}/chat-cluster.XXXXXX")"
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v redis-server >/dev/null || { echo "cluster: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }

echo "cluster: building chat-server"
cargo build --quiet --release -p chat-server --bin chat-server
server_bin="$target/release/chat-server"

# A free port for Redis: ask the kernel for one.
redis_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' \
    --appendonly yes --appendfsync always --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.05
done
url="redis://127.0.0.1:$redis_port"
echo "cluster: redis on $url (data in $work)"

for i in 0 1 2; do
    port=$((base + i))
    "$server_bin" --redis "$url" --listen "127.0.0.1:$port" 2> >(sed "s/^/node $port: /" >&2) &
    pids+=($!)
done
sleep 1
cat <<TXT
cluster: three nodes on one Redis:
  http://127.0.0.1:$base  http://127.0.0.1:$((base + 1))  http://127.0.0.1:$((base + 2))
  chat --server ws://127.0.0.1:$base --nick ann    (and another node for another nick)
Ctrl-C stops them all.
TXT
wait
