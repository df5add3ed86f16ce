# Tasks for the chat workspace. Install just with `cargo install just --locked` or `pip install rust-just`.

# Start the chat server on 127.0.0.1:7878 with the default store.
server *ARGS:
    cargo run --release -p chat-server --bin chat-server -- {{ARGS}}

# Start the terminal client.
client *ARGS:
    cargo run --release -p chat-client --bin chat -- {{ARGS}}

# A local cluster to try: a redis-server and three chat-server nodes on it (127.0.0.1:7878,
# :7879, :7880), until Ctrl-C. Needs redis-server.
cluster:
    bash scripts/cluster.sh

# Every test: unit, integration, and the interop tests with the official Socket.IO clients.
test:
    bash scripts/test.sh

# A scripted demonstration: a server and three headless clients.
demo:
    bash scripts/demo.sh

# The benchmark: chat-server, the bare ceiling, socketioxide and Node Socket.IO through the same
# scenarios (idle connections, memory while 10 rooms x 1,000 chat, one publisher at full speed,
# the fan-out ladder, latency at a fixed load, churn); writes BENCHMARKS.md and bench/latency.svg
# (15-25 minutes on 2 cores).
bench:
    bash bench/run.sh

# The cluster benchmark: one node on Redis, three nodes on one Redis (fsync always, then off),
# one node on SQLite, the same clients; Redis commands and CPU per message (about 6 minutes
# once built; needs redis-server). The results go into BENCHMARKS.md by hand.
bench-cluster:
    bash bench/cluster.sh

# The web page's browser tests (Chromium from apt, Playwright in tests/web/.venv).
web-test *ARGS:
    bash tests/web/run.sh {{ARGS}}

# Refresh docs/screenshots/ (the web page at 360 and 1440 px, light and dark) from the browser tests.
screenshots:
    UPDATE_SCREENSHOTS=1 bash tests/web/run.sh -k screenshots
