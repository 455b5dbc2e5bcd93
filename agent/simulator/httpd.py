"""HTTP plumbing shared by the Learn simulator and the job API stand-in.

Two details matter to clients that measure or parse us:
- every answer (success, error, REST, job API) leaves in ONE write on a socket with TCP_NODELAY set,
  so no answer ever waits for the client's delayed ACK (about 40 ms) behind Nagle's algorithm;
  each answer is recorded as a :class:`Reply`, with the socket option read back from the socket,
  so tests can check that property instead of timing it;
- bodies are read in 64 KiB pieces (Content-Length or chunked), never whole.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

PIECE = 64 * 1024  # bytes read from the socket at a time
DRAIN_LIMIT = 16 * 1024 * 1024  # refused bodies up to this size are read, so the client sees the answer


@dataclass(frozen=True)
class Reply:
    """One answer as it went out (or, with answered=False, one request left without an answer)."""

    method: str
    path: str
    status: int
    nodelay: bool  # TCP_NODELAY read back from the socket the answer was written to
    answered: bool = True


class Dispatcher(Protocol):
    """What a server hands each request to."""

    def dispatch(self, handler: Handler, method: str) -> None: ...

    def record(self, reply: Reply) -> None: ...


class Server(ThreadingHTTPServer):
    """A threaded server whose connections can all be ended at once (a stopped server stops answering)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        dispatcher: Dispatcher,
        *,
        tls: ssl.SSLContext | None = None,
        software: str = "LearnSimulator/1.0",
    ) -> None:
        self.dispatcher = dispatcher
        self.tls = tls
        self.software = software
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Runs in the connection's own thread, so a slow TLS handshake never blocks accept()."""
        raw: socket.socket = request
        connection: socket.socket = raw
        with self.sockets_lock:
            self.open_sockets.add(raw)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                connection = self.tls.wrap_socket(raw, server_side=True)
            super().finish_request(connection, client_address)
        except (OSError, ssl.SSLError):
            pass  # the client went away or failed the handshake
        finally:
            with self.sockets_lock:
                self.open_sockets.discard(raw)
            if connection is not raw:  # the TLS socket took over the descriptor: close it, not the husk
                with contextlib.suppress(OSError):
                    connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hangs up is normal here."""

    def close_connections(self) -> None:
        """Ends keep-alive (and withheld) connections."""
        with self.sockets_lock:
            for sock in list(self.open_sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300
    server: Server

    def version_string(self) -> str:
        return self.server.software

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the simulators report through their own event hooks."""

    def do_GET(self) -> None:
        self.server.dispatcher.dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.dispatcher.dispatch(self, "POST")

    def do_PUT(self) -> None:
        self.server.dispatcher.dispatch(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.dispatcher.dispatch(self, "DELETE")

    def do_PATCH(self) -> None:
        self.server.dispatcher.dispatch(self, "PATCH")

    # Request ------------------------------------------------------------------------------------
    @property
    def url_path(self) -> str:
        return unquote(urlsplit(self.path).path)

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.path).query, keep_blank_values=True)

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def body_pieces(self) -> Iterator[bytes]:
        """The request body in pieces of at most 64 KiB (Content-Length or chunked)."""
        stream = self.rfile
        if self.chunked:
            while True:
                size_line = stream.readline(1024)
                if not size_line:
                    raise ConnectionError("client closed the connection mid-body")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while stream.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield from _exact(stream, size)
                stream.readline(1024)  # the CRLF after each chunk
        else:
            yield from _exact(stream, int(self.headers.get("Content-Length") or 0))

    def read_small_body(self, limit: int = 1024 * 1024) -> bytes | None:
        """The whole body when it is at most `limit` bytes; None (and the connection closes) otherwise."""
        length = self.headers.get("Content-Length")
        if length is not None and int(length) > limit:
            self.close_connection = True
            return None
        data = bytearray()
        for piece in self.body_pieces():
            data += piece
            if len(data) > limit:
                self.close_connection = True
                return None
        return bytes(data)

    def drain_or_close(self) -> None:
        """Read a small refused body so the client gets the answer; close on anything bigger."""
        length = self.headers.get("Content-Length")
        if self.chunked or (length is not None and int(length) > DRAIN_LIMIT):
            self.close_connection = True
            return
        for _ in self.body_pieces():
            pass

    # Answers ------------------------------------------------------------------------------------
    def reply(
        self,
        code: int,
        body: str | bytes,
        *,
        content_type: str = "text/plain;charset=UTF-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Status line, headers and body in one write."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        extra = dict(headers or {})
        if extra.get("Connection", "").lower() == "close":
            self.close_connection = True
        extra.pop("Connection", None)
        reason = self.responses.get(code, ("",))[0]
        lines = [
            f"{self.protocol_version} {code} {reason}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(data)}",
            *(f"{name}: {value}" for name, value in extra.items()),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        # Recorded before the write, so whoever has read the answer also finds it recorded.
        self.server.dispatcher.record(Reply(self.command or "", self.path, code, self._nodelay()))
        self.wfile.write(head + data)

    def reply_json(self, code: int, payload: Any, *, headers: dict[str, str] | None = None) -> None:
        self.reply(code, json.dumps(payload), content_type="application/json;charset=UTF-8", headers=headers)

    def hold_unanswered(self, seconds: float) -> None:
        """Send nothing; keep the connection until the client leaves, the server stops or `seconds` pass."""
        self.close_connection = True
        self.server.dispatcher.record(Reply(self.command or "", self.path, 0, self._nodelay(), answered=False))
        try:
            self.connection.settimeout(seconds if seconds > 0 else None)
            self.rfile.read(1)
        except OSError:
            pass  # the time is up, or the client reset the connection

    def _nodelay(self) -> bool:
        try:
            return bool(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        except OSError:
            return False


def _exact(stream: Any, size: int) -> Iterator[bytes]:
    remaining = size
    while remaining > 0:
        piece = stream.read(min(PIECE, remaining))
        if not piece:
            raise ConnectionError("client closed the connection mid-body")
        remaining -= len(piece)
        yield piece
