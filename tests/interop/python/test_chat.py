"""Smoke test: the official python-socketio AsyncClient against the real `chat-server`
binary, over WebSocket only and (bob) with the client's default options (long-polling, then
the upgrade). Run through tests/interop/run.sh, which sets CHAT_URL."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import socketio

from helpers import SETTLE, Client, require_url, token


@pytest.fixture
async def opened():
    clients: list[Client] = []
    yield clients
    await asyncio.gather(*(c.close() for c in clients))


def _client(opened: list[Client], nick: str, transports=["websocket"]) -> Client:  # noqa: B006
    c = Client(nick, require_url("CHAT_URL"), ["/"], auth={"nick": nick}, transports=transports)
    opened.append(c)
    return c


async def test_join_and_message(opened):
    run = token()
    alice = await _client(opened, f"pyalice{run}").connect()
    bob = await _client(opened, f"pybob{run}", transports=None).connect()
    room = f"pyinterop-{run}"

    assert await alice.call("/", "join", {"room": room}) == [
        {"ok": True, "room": room, "members": [alice.name], "topic": None, "history": []}
    ]
    assert await bob.call("/", "join", {"room": room}) == [
        {
            "ok": True,
            "room": room,
            "members": sorted([alice.name, bob.name]),
            "topic": None,
            "history": [],
        }
    ]

    before = time.time() * 1000
    text = f"hello from python {run} ✓"
    [ack] = await alice.call("/", "message", {"room": room, "text": text})
    assert ack["ok"] is True, ack
    message = ack["message"]
    assert sorted(message) == ["from", "id", "room", "seq", "text", "ts"]
    assert isinstance(message["id"], str) and message["id"]
    assert message["room"] == room
    assert message["seq"] == 1, "first message of a fresh room"
    assert message["from"] == alice.name
    assert message["text"] == text
    assert isinstance(message["ts"], int)
    assert abs(message["ts"] - before) < 60_000

    assert await bob.wait_event("/", "message") == [message]
    await asyncio.sleep(SETTLE)
    assert alice.events_named("message") == [], "the sender gets its message in the ack only"
    assert len(bob.events_named("message")) == 1

    [ack2] = await bob.call("/", "message", {"room": room, "text": "reply"})
    assert ack2["ok"] is True and ack2["message"]["seq"] == 2
    await asyncio.sleep(SETTLE)
    assert [args for _, _, args in alice.events_named("message")] == [[ack2["message"]]]
    assert len(bob.events_named("message")) == 1, "bob does not get his own message"


async def test_duplicate_nick(opened):
    nick = f"pycarol{token()}"
    await _client(opened, nick).connect()
    dup = _client(opened, nick)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await dup.connect()
    [error] = dup.connect_errors["/"]
    assert isinstance(error.get("message"), str) and error["message"]
    assert error.get("data", {}).get("code") == "nick_taken", error


async def test_heartbeat_keeps_the_connection(opened):
    """run.sh starts chat-server with a short ping interval: after several intervals the
    python client (which answers the pings, and drops a connection whose pings stop) is still
    connected on the same Engine.IO session."""
    interval = int(os.environ.get("CHAT_TEST_PING_INTERVAL_MS", "0")) / 1000
    if not interval:
        pytest.skip("chat-server runs with the default 25 s ping interval")
    dave = await _client(opened, f"pydave{token()}").connect()
    sid = dave.sio.eio.sid
    await asyncio.sleep(interval * 3.5)
    assert dave.sio.connected and dave.sio.eio.state == "connected"
    assert dave.sio.eio.sid == sid
    [ack] = await dave.call("/", "join", {"room": f"pybeat-{token()}"})
    assert ack["ok"] is True
