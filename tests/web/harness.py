"""The browser tests' processes: a chat-server, a page server, and headless `chat` clients.

- `ChatServer`: target/debug/chat-server on a free loopback port with a SQLite file in a
  temporary directory (so a restart keeps history); `restart()` comes back on the same port.
- `PageServer`: serves `server/web/` from disk with the Content-Security-Policy chat-server
  sends, and passes `/socket.io/` (long-polling requests and WebSocket upgrades, byte for
  byte) to the chat-server, so the page talks to its own origin as when chat-server serves
  it; a test can make it refuse WebSocket upgrades and read the requests. (Most tests load
  the page from chat-server itself: `conftest.page_origin`.)
- `TerminalClient`: `chat --script - --nick NAME`, fed lines on stdin; every line it shows
  comes back on stdout as `[namespace window] line`.
"""

from __future__ import annotations

import http.client
import mimetypes
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "server" / "web"

# What chat-server sends with the page (server/src/web.rs; server/web/README.md).
CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


def bin_dir() -> Path:
    """Where chat-server and chat are: $CHAT_BIN_DIR, else target/debug (run.sh builds them)."""
    return Path(os.environ.get("CHAT_BIN_DIR", ROOT / "target" / "debug"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChatServer:
    def __init__(self, tmp: Path, extra_args: list[str] | None = None):
        self.tmp = tmp
        self.db = tmp / "chat.db"
        self.port = free_port()
        self.extra = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "chat-server.log"
        self.start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.addr}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.addr}"

    def start(self, timeout: float = 10.0) -> None:
        args = [
            str(bin_dir() / "chat-server"),
            "--listen", self.addr,
            "--store", "sqlite",
            "--sqlite-path", str(self.db),
            *self.extra,
        ]
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chat-server exited: {self.log.read_text()[-2000:]}")
            if "listening on" in self.log.read_text(errors="replace"):
                return
            time.sleep(0.05)
        raise RuntimeError("chat-server did not start in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def supports_polling(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/socket.io/?EIO=4&transport=polling")
            resp = conn.getresponse()
            body = resp.read()
            return resp.status == 200 and body.startswith(b"0{")
        except OSError:
            return False
        finally:
            conn.close()


class PageServer:
    """Static files of server/web with the CSP, and /socket.io/ passed to the chat-server."""

    def __init__(self, upstream: ChatServer, csp: str = CSP, websocket: str = "pass"):
        """`websocket`: "pass" passes WebSocket upgrades on; "block" refuses them all (a
        proxy that does not carry WebSockets); "block-new" refuses those without a `sid`
        (so only the upgrade of a long-polling session gets through)."""
        self.upstream = upstream
        self.csp = csp
        self.websocket = websocket
        self.requests: list[str] = []
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet
                pass

            def do_GET(self):
                server.requests.append(f"GET {self.path}")
                if self.path.startswith("/socket.io"):
                    if self.headers.get("Upgrade", "").lower() == "websocket":
                        blocked = server.websocket == "block" or (
                            server.websocket == "block-new" and "sid=" not in self.path
                        )
                        if blocked:
                            self.send_error(403, "WebSockets are blocked here")
                        else:
                            self.tunnel()
                    else:
                        self.forward(None)
                else:
                    self.static()

            def do_POST(self):
                server.requests.append(f"POST {self.path}")
                if not self.path.startswith("/socket.io"):
                    self.send_error(405)
                    return
                length = int(self.headers.get("Content-Length", "0"))
                self.forward(self.rfile.read(length))

            def static(self):
                path = self.path.split("?", 1)[0]
                name = "index.html" if path == "/" else path.lstrip("/")
                file = (WEB / name).resolve()
                if WEB.resolve() not in file.parents or not file.is_file():
                    self.send_error(404)
                    return
                body = file.read_bytes()
                ctype = CONTENT_TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0]
                self.send_response(200)
                self.send_header("Content-Type", ctype or "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-cache")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Content-Security-Policy", server.csp)
                self.end_headers()
                self.wfile.write(body)

            def forward(self, body):
                up = server.upstream
                conn = http.client.HTTPConnection("127.0.0.1", up.port, timeout=70)
                try:
                    headers = {}
                    if body is not None:
                        headers["Content-Type"] = self.headers.get("Content-Type", "text/plain")
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except OSError:
                    self.send_error(502)
                    return
                finally:
                    conn.close()
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.getheader("Content-Type", "text/plain"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def tunnel(self):
                up = server.upstream
                try:
                    upstream = socket.create_connection(("127.0.0.1", up.port), timeout=5)
                except OSError:
                    self.send_error(502)
                    return
                upstream.settimeout(None)
                head = [self.requestline] + [f"{k}: {v}" for k, v in self.headers.items()]
                upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                client = self.connection
                self.close_connection = True

                def pump(src, dst):
                    try:
                        while True:
                            data = src.recv(65536)
                            if not data:
                                break
                            dst.sendall(data)
                    except OSError:
                        pass
                    finally:
                        for s in (src, dst):
                            try:
                                s.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass

                back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
                back.start()
                pump(client, upstream)
                back.join(5)
                upstream.close()

        return Handler


LINE = re.compile(r"^\[(?P<ns>\S+)(?: (?P<win>[^\]]+))?\] (?P<text>.*)$")


class TerminalClient:
    """The headless terminal client, driven line by line."""

    def __init__(self, server: ChatServer, nick: str):
        self.nick = nick
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            [
                str(bin_dir() / "chat"),
                "--script", "-",
                "--server", server.ws_url,
                "--nick", nick,
                "--expect-timeout", "10",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, text: str, timeout: float = 10.0, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if text in line and not line.startswith("> "):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.nick} never showed {text!r}; it showed:\n" + "\n".join(self.lines)
                    )
                self.cond.wait(left)

    def count(self, text: str) -> int:
        with self.cond:
            return sum(1 for line in self.lines if text in line and not line.startswith("> "))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("/quit\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def chromium_path() -> str:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
