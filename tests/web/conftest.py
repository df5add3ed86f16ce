"""Fixtures of the browser tests: one Chromium for the run, and per test a chat-server, the
page server in front of it, pages (each its own browser context, so its own
sessionStorage) and headless terminal clients."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, sync_playwright

from harness import ROOT, ChatServer, PageServer, TerminalClient, chromium_path

SCREENSHOTS = ROOT / "target" / "web-screenshots"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item, so fixtures know in teardown whether the
    test failed (and then print what explains it)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def failed(request) -> bool:
    report = getattr(request.node, "report_call", None)
    return report is None or report.failed


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True)
        yield b
        b.close()


@pytest.fixture
def server_args() -> list[str]:
    """Extra chat-server flags (a test overrides it with pytest.mark.parametrize)."""
    return []


@pytest.fixture
def chat_server(request, tmp_path: Path, server_args: list[str]):
    server = ChatServer(tmp_path, server_args)
    yield server
    server.stop()
    if failed(request) and server.log.exists():
        tail = server.log.read_text(errors="replace").splitlines()[-60:]
        print("---- chat-server's log, last lines ----", *tail, sep="\n")


@pytest.fixture
def websocket_policy() -> str:
    """How the page server treats WebSocket upgrades (a test overrides it to block them)."""
    return "pass"


@pytest.fixture
def page_server(chat_server: ChatServer, websocket_policy: str):
    server = PageServer(chat_server, websocket=websocket_policy)
    yield server
    server.stop()


@pytest.fixture
def page_origin(request, chat_server: ChatServer) -> str:
    """Where the page is loaded from: chat-server itself, which serves server/web/ compiled in
    (run.sh rebuilds it, so the page is the working tree's). With CHAT_WEB_FROM_FILES=1 the
    page server serves the files as they are on disk instead (for a chat-server binary from
    elsewhere, CHAT_BIN_DIR, or a quick edit-and-run without a build)."""
    if os.environ.get("CHAT_WEB_FROM_FILES") == "1":
        return request.getfixturevalue("page_server").url
    return chat_server.http_url


class Pages:
    """Opens pages; each records its console, and none may report a CSP violation."""

    def __init__(self, browser, origin: str):
        self.browser = browser
        self.origin = origin
        self.contexts = []
        self.consoles: dict[Page, list[str]] = {}

    def url(self, **query) -> str:
        query = {k: v for k, v in query.items() if v is not None}
        return f"{self.origin}/" + (f"?{urlencode(query)}" if query else "")

    def open(
        self,
        nick: str | None = None,
        room: str | None = "general",
        ns: str | None = None,
        transport: str | None = None,
        width: int = 1100,
        height: int = 720,
        scheme: str = "light",
        origin: str | None = None,
        before=None,
        **extra,
    ) -> Page:
        ctx = self.browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=scheme
        )
        ctx.set_default_timeout(10_000)  # every wait is bounded; none needs this long
        self.contexts.append(ctx)
        page = ctx.new_page()
        console: list[str] = []
        self.consoles[page] = console
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        page.on(
            "requestfailed",
            lambda r: console.append(f"requestfailed: {r.method} {r.url} {r.failure}"),
        )
        if before:
            before(page)
        if origin:
            self.origin, saved = origin, self.origin
        url = self.url(nick=nick, room=room if nick else None, ns=ns, transport=transport, **extra)
        if origin:
            self.origin = saved
        page.goto(url)
        return page

    def report(self) -> None:
        """Prints each page's address, status line and console (for a failed test)."""
        for i, (page, lines) in enumerate(self.consoles.items()):
            try:
                status = page.evaluate(
                    "() => { const s = document.getElementById('status');"
                    " return s ? `${s.dataset.state}: ${s.textContent}` : 'no status'; }"
                )
            except Exception as e:  # a closed page
                status = f"(not readable: {e})"
            print(f"---- page {i}: {page.url} ----", f"status {status}", *lines[-80:], sep="\n")

    def close(self):
        problems = [
            line
            for lines in self.consoles.values()
            for line in lines
            if "Content Security Policy" in line or line.startswith("pageerror")
        ]
        for ctx in self.contexts:
            ctx.close()
        assert not problems, "the page reported:\n" + "\n".join(problems)


@pytest.fixture
def pages(request, browser, page_origin):
    p = Pages(browser, page_origin)
    yield p
    if failed(request):
        p.report()
    p.close()


@pytest.fixture
def proxied_pages(request, browser, page_server):
    """Pages loaded from the page server, whose /socket.io/ proxy a test can make refuse
    WebSockets (websocket_policy) and whose requests it can read."""
    p = Pages(browser, page_server.url)
    yield p
    if failed(request):
        p.report()
    p.close()


@pytest.fixture
def terminal(chat_server: ChatServer):
    clients: list[TerminalClient] = []

    def start(nick: str) -> TerminalClient:
        c = TerminalClient(chat_server, nick)
        clients.append(c)
        return c

    yield start
    for c in clients:
        c.stop()
