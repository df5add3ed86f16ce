#!/usr/bin/env bash
# Runs every test: the Rust unit and integration tests (the client's tmux end-to-end test
# included when tmux is installed), the interop tests with the official Socket.IO clients
# (npm socket.io-client, PyPI python-socketio; installed on first run), and the scripted demo.
# Needs: Rust, Node + npm, Python 3. Loopback traffic only; every wait is bounded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "build (binaries, examples, tests)"
cargo build --workspace --all-targets

step "cargo test"
cargo test --workspace

step "interop: official Socket.IO clients"
bash tests/interop/run.sh

step "demo"
bash scripts/demo.sh

step "all tests passed"
