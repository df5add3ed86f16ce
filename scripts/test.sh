#!/usr/bin/env bash
# Runs every test: the Rust unit and integration tests (the client's tmux end-to-end test
# included when tmux is installed; the crash test SIGKILLs a real server), the interop tests
# with the official Socket.IO clients (npm socket.io-client, PyPI python-socketio), the
# Autobahn WebSocket cases (PyPI kosoku), the web page's browser tests (when Debian's chromium
# is installed; Playwright from PyPI), the benchmark smoke run, and the scripted demo.
# Needs: Rust, Node + npm, Python 3; installs the rest into gitignored folders on first run.
# Loopback traffic only; every wait is bounded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "build (binaries, examples, tests)"
cargo build --workspace --all-targets

step "cargo test"
cargo test --workspace

step "interop: official Socket.IO clients"
bash tests/interop/run.sh

step "WebSocket conformance: Autobahn cases"
bash scripts/autobahn.sh

step "web page: browser tests"
if command -v chromium >/dev/null 2>&1; then
    bash tests/web/run.sh
else
    echo "skipped: chromium is not installed (apt-get install chromium)"
fi

step "benchmark smoke"
bash bench/smoke.sh

step "demo"
if command -v just >/dev/null 2>&1; then just demo; else bash scripts/demo.sh; fi

step "all tests passed"
