"""Shared helpers for the python-socketio interop tests. Every wait here is bounded."""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

import pytest
import socketio

#: How long receivers are collected after an acked broadcast.
SETTLE = 0.3
#: Bound on any single wait for the server (connect, ack, event).
WAIT = 5.0
#: INTEROP_DEBUG=1 turns on the python-socketio and engineio loggers (packets as sent/received).
DEBUG = os.environ.get("INTEROP_DEBUG") == "1"


def require_url(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        pytest.fail(f"{name} is not set: run tests/interop/run.sh, which starts the servers")
    return url


def token() -> str:
    """A short random token, to keep rooms, events and nicks of different runs apart."""
    return secrets.token_hex(4)


class Client:
    """One python-socketio AsyncClient = one Engine.IO connection (one WebSocket), connected
    to every namespace in `namespaces` at once (multiplexing). Every event that arrives is
    recorded per namespace; `connect_error` payloads too."""

    def __init__(
        self,
        name: str,
        url: str,
        namespaces: list[str],
        auth: Any = None,
        transports: list[str] | None = ["websocket"],  # noqa: B006 (never mutated)
    ):
        self.name = name
        #: None: the client's defaults (long-polling, then the upgrade to WebSocket).
        self.transports = transports
        self.url = url
        self.namespaces = namespaces
        self.auth = auth
        self.sio = socketio.AsyncClient(
            reconnection=False, request_timeout=WAIT, logger=DEBUG, engineio_logger=DEBUG
        )
        self.received: list[tuple[str, str, list[Any]]] = []
        self.connect_errors: dict[str, list[Any]] = {}
        for nsp in namespaces:
            self.sio.on("*", self._recorder(nsp), namespace=nsp)
            self.sio.on("connect_error", self._error_recorder(nsp), namespace=nsp)

    def _recorder(self, nsp: str):
        async def record(event, *args):
            self.received.append((nsp, event, list(args)))

        return record

    def _error_recorder(self, nsp: str):
        async def record(*args):
            self.connect_errors.setdefault(nsp, []).extend(args)

        return record

    async def connect(self) -> "Client":
        await asyncio.wait_for(
            self.sio.connect(
                self.url,
                transports=self.transports,
                namespaces=self.namespaces,
                auth=self.auth,
                wait_timeout=WAIT,
            ),
            WAIT * 2,
        )
        return self

    async def call(self, nsp: str, event: str, *args: Any) -> list[Any]:
        """Emits with an ack and returns ALL the ack's arguments as a list."""
        done = asyncio.get_running_loop().create_future()

        def on_ack(*ack_args):
            if not done.done():
                done.set_result(list(ack_args))

        # python-socketio sends a tuple as that many arguments.
        await self.sio.emit(event, data=tuple(args), namespace=nsp, callback=on_ack)
        try:
            return await asyncio.wait_for(done, WAIT)
        except asyncio.TimeoutError:
            raise AssertionError(f"no ack for {event} on {nsp} within {WAIT} s") from None

    def events_named(self, event: str) -> list[tuple[str, str, list[Any]]]:
        return [r for r in self.received if r[1] == event]

    async def wait_event(self, nsp: str, event: str, timeout: float = WAIT) -> list[Any]:
        """The arguments of the first `event` on `nsp` (already received or arriving)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for r_nsp, r_event, r_args in self.received:
                if r_nsp == nsp and r_event == event:
                    return r_args
            if loop.time() > deadline:
                raise AssertionError(f"{self.name}: no {event} on {nsp} within {timeout} s")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.sio.disconnect(), WAIT)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - best effort teardown
            pass


def receivers_of(clients: list[Client], event: str) -> list[str]:
    """Every (client, namespace) that received `event`, one entry per delivery, sorted:
    "A" for a delivery on `/`, "A/admin" on `/admin`. Duplicates stay."""
    out = []
    for client in clients:
        for nsp, _, _ in client.events_named(event):
            out.append(client.name if nsp == "/" else f"{client.name}{nsp}")
    return sorted(out)
