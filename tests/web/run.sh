#!/usr/bin/env bash
# The browser tests: the chat page (server/web/) in Debian's Chromium, driven by Playwright
# for Python, against a real chat-server and the headless terminal client.
#
# Creates tests/web/.venv (gitignored) and installs Playwright and pytest into it when
# missing; builds chat-server and chat (debug; or takes them from $CHAT_BIN_DIR). Chromium comes from the system (`apt-get install chromium`; Playwright's
# own browser download is not used). Arguments go to pytest: `tests/web/run.sh -k reload`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

chromium="${CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$chromium" ]; then
    echo "chromium not found: apt-get update && apt-get install -y chromium (or set CHROMIUM)" >&2
    exit 1
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import playwright, pytest" 2>/dev/null; then
    "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
fi

# chat-server serves the page compiled in: build it (a no-op when nothing changed) so the
# page tested is the working tree's. CHAT_BIN_DIR: binaries from elsewhere, not built here
# (with CHAT_WEB_FROM_FILES=1 the page then comes from the files on disk).
if [ -z "${CHAT_BIN_DIR:-}" ]; then
    (cd "$root" && cargo build -q -p chat-server -p chat-client)
fi

cd "$here"
exec "$venv/bin/python" -m pytest "$@"
