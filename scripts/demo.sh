#!/usr/bin/env bash
# A scripted demonstration (`just demo`): builds, starts a chat-server on a free port with a
# protected namespace /ops, runs three headless `chat --script` clients (alice, bob, carol)
# that show namespaces, rooms, a broadcast to a room, a direct message, a leave and a refused
# join to the protected namespace, and prints their interleaved transcript, each line
# prefixed with the client's name. Exits 0 only if every client's expectations held.
set -euo pipefail

cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d "${TMPDIR:-/tmp}/chat-demo.XXXXXX")"
server_pid=""
client_pids=()

cleanup() {
    for pid in "${client_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "demo: building chat-server and chat"
cargo build --quiet -p chat-server -p chat-client --bins
server_bin="$target/debug/chat-server"
chat_bin="$target/debug/chat"

cat >"$work/server.toml" <<'EOF'
[[namespace]]
name = "/ops"
key = "s3cret"
EOF

# Port 0: the server picks a free port and logs `listening on 127.0.0.1:PORT`. A fresh
# database in the work directory (CHAT_DATA), so earlier runs leave no history behind.
RUST_LOG=info CHAT_DATA="$work/chat.db" "$server_bin" --listen 127.0.0.1:0 \
    --config "$work/server.toml" >"$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
    addr="$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$work/server.log" | head -n1 | sed 's/listening on //' || true)"
    [[ -n "$addr" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "demo: chat-server exited:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$addr" ]]; then
    echo "demo: chat-server did not report its address" >&2
    cat "$work/server.log" >&2
    exit 1
fi
echo "demo: chat-server listening on $addr (namespace /ops needs the key s3cret)"

# alice opens #general, greets, reads a DM, then moves to the protected /ops with its key.
cat >"$work/alice.chat" <<'EOF'
/join #general
/expect bob joined #general
/expect carol joined #general
hello everyone, welcome to #general
/expect <bob> hi alice
/expect <carol> psst
/ns /ops s3cret
/expect connected to /ops as alice
/join deploy
/expect you joined #deploy
/msg carol come to #deploy
/expect carol joined #deploy
deploying v1.2 now
/expect <carol> looks good
/quit
EOF

# bob chats in #general, is refused by /ops (no key), then leaves #general.
cat >"$work/bob.chat" <<'EOF'
/join general
/expect <alice> hello everyone
hi alice
/ns /ops
/expect /ops refused the connection
/ns /
/leave #general
/expect you left #general
/quit
EOF

# carol sends alice a direct message, then joins her in /ops #deploy.
cat >"$work/carol.chat" <<'EOF'
/join general
/expect <alice> hello everyone
/msg alice psst, lunch later?
/expect bob left #general
/expect <alice> come to #deploy
/ns /ops s3cret
/expect connected to /ops as carol
/join deploy
/expect <alice> deploying v1.2
looks good
/wait 200
/quit
EOF

# One client: its output, prefixed with its name, goes to the screen as it happens.
start_client() {
    local name="$1"
    {
        set +e
        timeout 60 "$chat_bin" --server "ws://$addr" --nick "$name" \
            --script "$work/$name.chat" --log "$work/$name.log" --expect-timeout 10s 2>&1
        echo "$?" >"$work/$name.rc"
    } | sed -u "s/^/$(printf '%-5s' "$name") | /" | tee "$work/$name.out" &
    client_pids+=("$!")
}

start_client alice
# bob and carol start once alice is in #general, so she sees them arrive.
for _ in $(seq 1 100); do
    grep -q "you joined #general" "$work/alice.out" 2>/dev/null && break
    sleep 0.1
done
start_client bob
start_client carol

for pid in "${client_pids[@]}"; do
    wait "$pid" || true
done
client_pids=()

status=0
for name in alice bob carol; do
    rc="$(cat "$work/$name.rc" 2>/dev/null || echo missing)"
    if [[ "$rc" != "0" ]]; then
        echo "demo: $name failed (exit status $rc)" >&2
        status=1
    fi
done
if [[ "$status" == 0 ]]; then
    echo "demo: every expectation held"
else
    echo "demo: server log:" >&2
    cat "$work/server.log" >&2
fi
exit "$status"
