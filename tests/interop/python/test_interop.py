"""The official python-socketio AsyncClient against the `interop` example
(server/examples/interop.rs), WebSocket transport only, two namespaces multiplexed over one
connection per client. Run through tests/interop/run.sh, which sets INTEROP_URL."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import socketio

from helpers import SETTLE, WAIT, Client, receivers_of, require_url, token

NAMESPACES = ["/", "/admin"]
# Room membership (rooms are per namespace: the same name in two namespaces is two rooms):
#   `/`      : A in r1; B in r1, r2; C in r2; D in none
#   `/admin` : A in r2; B in none;   C in r1; D in r1
MEMBERSHIP = {
    "/": {"A": ["r1"], "B": ["r1", "r2"], "C": ["r2"], "D": []},
    "/admin": {"A": ["r2"], "B": [], "C": ["r1"], "D": ["r1"]},
}
_counter = itertools.count(1)


class World:
    def __init__(self, url: str):
        self.url = url
        self.run = token()
        self.clients: dict[str, Client] = {}

    def room(self, name: str) -> str:
        return f"{name}-{self.run}"

    def fresh_event(self) -> str:
        return f"ev-{self.run}-{next(_counter)}"

    def all(self) -> list[Client]:
        return list(self.clients.values())

    async def broadcast(self, sender: str, nsp: str, handler: str, payload: dict) -> list[str]:
        """`sender` asks the server (over `nsp`) to run `handler`; waits for its ack ("done",
        sent after the broadcast was queued), collects for SETTLE, returns the receivers."""
        event = self.fresh_event()
        data = {"from": sender, "nsp": nsp, "handler": handler, "nested": {"ok": True}}
        ack = await self.clients[sender].call(nsp, handler, {**payload, "event": event, "data": data})
        assert ack == ["done"], f"{handler} ack"
        await asyncio.sleep(SETTLE)
        for client in self.all():
            for r_nsp, _, args in client.events_named(event):
                assert args == [data], f"{client.name}{r_nsp} got the broadcast data intact"
        return receivers_of(self.all(), event)


@pytest.fixture
async def world():
    w = World(require_url("INTEROP_URL"))
    try:
        for name in "ABCD":
            w.clients[name] = await Client(name, w.url, NAMESPACES).connect()
        for nsp in NAMESPACES:
            for name, rooms in MEMBERSHIP[nsp].items():
                for r in rooms:
                    assert await w.clients[name].call(nsp, "join", {"room": w.room(r)}) == ["done"]
        yield w
    finally:
        await asyncio.gather(*(c.close() for c in w.all()))


async def test_websocket_only_and_multiplexed(world: World):
    eio_sids = set()
    for client in world.all():
        sio = client.sio
        assert sio.connected
        assert sio.transport() == "websocket"
        assert sorted(sio.namespaces) == NAMESPACES
        root, admin = sio.get_sid("/"), sio.get_sid("/admin")
        assert isinstance(root, str) and root
        assert isinstance(admin, str) and admin
        assert root != admin, "each namespace gets its own socket id"
        eio_sids.add(sio.eio.sid)
    assert len(eio_sids) == 4, "one Engine.IO session per client, shared by its namespaces"
    assert [r for c in world.all() for r in c.received] == [], "nothing is emitted on connect"


async def test_to_rooms_union(world: World):
    r = world.room
    assert await world.broadcast("D", "/", "to-rooms", {"rooms": [r("r1"), r("r2")]}) == ["A", "B", "C"]
    assert await world.broadcast("A", "/", "to-rooms", {"rooms": [r("r1")]}) == ["A", "B"]
    assert await world.broadcast("A", "/admin", "to-rooms", {"rooms": [r("r1")]}) == [
        "C/admin",
        "D/admin",
    ]
    assert await world.broadcast("A", "/", "to-rooms", {"rooms": [r("nobody")]}) == []


async def test_except(world: World):
    r = world.room
    assert await world.broadcast(
        "D", "/", "except", {"rooms": [r("r1"), r("r2")], "except": [r("r2")]}
    ) == ["A"]
    # No rooms: everyone in the namespace, the sender included, but members of r1.
    assert await world.broadcast("D", "/", "except", {"rooms": [], "except": [r("r1")]}) == [
        "C",
        "D",
    ]
    assert await world.broadcast(
        "C", "/admin", "except", {"rooms": [r("r1"), r("r2")], "except": [r("r1")]}
    ) == ["A/admin"]
    assert await world.broadcast(
        "A", "/admin", "except", {"rooms": [], "except": [r("r2"), r("r1")]}
    ) == ["B/admin"]


async def test_sender_excluded(world: World):
    r = world.room
    assert await world.broadcast("A", "/", "broadcast-room", {"room": r("r1")}) == ["B"]
    assert await world.broadcast("B", "/", "broadcast-room", {"room": r("r2")}) == ["C"]
    assert await world.broadcast("C", "/admin", "broadcast-room", {"room": r("r1")}) == ["D/admin"]
    assert await world.broadcast("A", "/admin", "broadcast", {}) == ["B/admin", "C/admin", "D/admin"]
    assert await world.broadcast("D", "/", "broadcast", {}) == ["A", "B", "C"]


async def test_order(world: World):
    """One client's events are handled, acked and broadcast in the order it sent them."""
    a, b = world.clients["A"], world.clients["B"]
    event = world.fresh_event()
    ack_order = []

    async def send(i):
        ack = await a.call("/", "broadcast-room", {"room": world.room("r1"), "event": event, "data": i})
        assert ack == ["done"]
        ack_order.append(i)

    # Emitted one after the other (python-socketio's emit is not meant to be used
    # concurrently), acks awaited together.
    tasks = []
    for i in range(50):
        tasks.append(asyncio.create_task(send(i)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    await asyncio.sleep(SETTLE)
    assert ack_order == list(range(50))
    assert [args[0] for _, _, args in b.events_named(event)] == list(range(50))
    assert receivers_of(world.all(), event) == ["B"] * 50


async def test_leave(world: World):
    r = world.room
    assert await world.clients["B"].call("/", "leave", {"room": r("r1")}) == ["done"]
    assert await world.broadcast("D", "/", "to-rooms", {"rooms": [r("r1")]}) == ["A"]
    assert await world.broadcast("D", "/", "to-rooms", {"rooms": [r("r2")]}) == ["B", "C"]
    assert await world.broadcast("D", "/admin", "to-rooms", {"rooms": [r("r1")]}) == [
        "C/admin",
        "D/admin",
    ]


async def test_client_to_server_ack(world: World):
    a = world.clients["A"]
    args = [{"3": [True], "z": 1, "a": [None, 1.5, "é"]}, "two", 3, [4, {"five": 5}], None]
    assert await a.call("/", "echo-ack", *args) == args
    assert await a.call("/admin", "echo-ack", "admin") == ["admin"]
    [echoed] = await a.call("/", "echo-ack", {"b": 1, "a": 2, "c": 3})
    assert list(echoed) == ["b", "a", "c"], "key order survives the round trip"
    results = await asyncio.gather(
        *(a.call("/admin" if i % 2 else "/", "echo-ack", i) for i in range(10))
    )
    assert results == [[i] for i in range(10)]


async def test_binary_echo_ack(world: World):
    a = world.clients["A"]
    args = [{"blob": b"\x00\x01\x02\xff", "list": [b"xyz"]}, "text", b""]
    assert await a.call("/admin", "echo-ack", *args) == args


async def test_server_to_client_ack(world: World):
    b = world.clients["B"]
    for nsp in NAMESPACES:
        event = world.fresh_event()
        seen = []

        def make_handler(nsp=nsp, seen=seen):
            async def handler(data):
                seen.append(data)
                return ("pong", {"nsp": nsp, "got": data})  # a tuple: two ack arguments

            return handler

        b.sio.on(event, make_handler(), namespace=nsp)
        assert await b.call(nsp, "server-ack", {"event": event, "data": {"ping": nsp}}) == ["done"]
        result = await b.wait_event(nsp, "server-ack-result")
        # The example emits the client's ack arguments as the event's arguments.
        assert result == ["pong", {"nsp": nsp, "got": {"ping": nsp}}]
        assert seen == [{"ping": nsp}]


def _secure_client(name: str, namespaces: list[str], auth) -> Client:
    return Client(name, require_url("INTEROP_URL"), namespaces, auth=auth)


async def test_connect_error_bad_token():
    client = _secure_client("E", ["/secure"], {"token": "nope"})
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect()
        assert client.connect_errors == {
            "/secure": [{"message": "not authorized", "data": {"reason": "bad token"}}]
        }
    finally:
        await client.close()


async def test_connect_error_no_auth():
    client = _secure_client("F", ["/secure"], None)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect()
        assert client.connect_errors == {
            "/secure": [{"message": "not authorized", "data": {"reason": "bad token"}}]
        }
    finally:
        await client.close()


async def test_connect_error_on_multiplexed_connection():
    """`/` accepts and `/secure` refuses within one connection: the client reports the
    failure (python-socketio then gives up the whole connection)."""
    client = _secure_client("G", ["/", "/secure"], {"token": "wrong"})
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect()
        assert client.connect_errors == {
            "/secure": [{"message": "not authorized", "data": {"reason": "bad token"}}]
        }
    finally:
        await client.close()


async def test_secure_with_right_token():
    client = _secure_client("H", ["/", "/secure"], {"token": "letmein"})
    try:
        await client.connect()
        assert client.connect_errors == {}
        assert sorted(client.sio.namespaces) == ["/", "/secure"]
        secure_sid = client.sio.get_sid("/secure")
        assert isinstance(secure_sid, str) and secure_sid
        assert secure_sid != client.sio.get_sid("/")
        assert await client.call("/", "echo-ack", "root") == ["root"]
    finally:
        await client.close()


async def test_connect_error_unknown_namespace():
    client = _secure_client("I", ["/no-such-namespace"], None)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect()
        assert client.connect_errors == {"/no-such-namespace": [{"message": "Invalid namespace"}]}
    finally:
        await client.close()

