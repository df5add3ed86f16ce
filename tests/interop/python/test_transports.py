"""The official python-socketio AsyncClient against the `interop` example over each
transport: the client's default options (HTTP long-polling, then the upgrade to WebSocket),
polling only, and WebSocket only; events, binary attachments and broadcasts on each. Run
through tests/interop/run.sh, which sets INTEROP_URL."""

from __future__ import annotations

import pytest

from helpers import Client, require_url, token


async def exercise(c: Client, other: Client) -> None:
    """Echo (with a binary attachment) and a broadcast to another client, over `c`."""
    args = [{"blob": b"\x00\x01\x02\xff"}, "text"]
    assert await c.call("/", "echo-ack", *args) == args
    event = f"ev-{token()}"
    assert await c.call("/", "broadcast", {"event": event, "data": {"n": 1}}) == ["done"]
    assert await other.wait_event("/", event) == [{"n": 1}]


@pytest.mark.parametrize(
    ("transports", "expected"),
    [
        (None, "websocket"),
        (["polling"], "polling"),
        (["websocket"], "websocket"),
    ],
    ids=["default-options", "polling-only", "websocket-only"],
)
async def test_transport(transports, expected):
    url = require_url("INTEROP_URL")
    a = Client("a", url, ["/"], transports=transports)
    b = Client("b", url, ["/"], transports=["polling"])
    try:
        await a.connect()
        await b.connect()
        assert a.sio.transport() == expected
        await exercise(a, b)
        await exercise(b, a)
    finally:
        await a.close()
        await b.close()
