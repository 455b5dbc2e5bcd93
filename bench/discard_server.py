"""A tiny Basic-auth HTTP server that swallows uploads: the far end of the upload benchmark.

Why not the simulator: the benchmark measures the client, so the server must do as little as
possible (read 64 KiB pieces, hash, count lines, forget). It answers like Learn (the success sentence
with a fresh code; dataSetStatus already finished, completed = the rows it counted) so the agent's
full `post` command can run against it too. `GET /_last` returns the last upload as JSON, for checks.

Run alone: `python bench/discard_server.py [--port 0]` prints its URL and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PIECE = 64 * 1024
SENTENCE = "Success: Feed File Uploaded.  Use the reference code {uid} to track these records in the logs."


class DiscardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, username: str = "bench", password: str = "bench-password"
    ) -> None:
        self.expected_auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.last: dict[str, Any] = {}
        self.rows_by_uid: dict[str, int] = {}
        self.lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DiscardServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the benchmark prints its own table."""

    def setup(self) -> None:
        """TCP_NODELAY, like the simulator: an answer goes out as headers then body, and without it the
        body waits for the client's delayed ACK (~40 ms on every status poll, which curl never pays)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _reply(
        self, code: int, body: str, content_type: str = "text/plain;charset=UTF-8", extra: dict[str, str] | None = None
    ) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _pieces(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield from self._exact(size)
                self.rfile.readline()
        else:
            yield from self._exact(int(self.headers.get("Content-Length") or 0))

    def _exact(self, size: int) -> Any:
        while size > 0:
            piece = self.rfile.read(min(PIECE, size))
            if not piece:
                raise ConnectionError("client went away")
            size -= len(piece)
            yield piece

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, self.server.expected_auth.encode())

    def do_GET(self) -> None:
        if self.path == "/_last":
            with self.server.lock:
                self._reply(200, json.dumps(self.server.last), "application/json")
            return
        self._status()

    def _status(self) -> None:
        if not self._authorized():
            self._reply(401, "Unauthorized", extra={"WWW-Authenticate": 'Basic realm="bench"'})
            return
        uid = self.path.rstrip("/").rsplit("/", 1)[-1]
        with self.server.lock:
            rows = self.server.rows_by_uid.get(uid)
        if "/dataSetStatus/" not in self.path or rows is None:
            self._reply(404, "Not Found")
            return
        xml = (
            f"<dataSetStatus><completedCount>{rows}</completedCount><dataSetUid>{uid}</dataSetUid>"
            f"<errorCount>0</errorCount><queuedCount>0</queuedCount><warningCount>0</warningCount>"
            f"</dataSetStatus>"
        )
        self._reply(200, xml, "application/xml;charset=UTF-8")

    def do_POST(self) -> None:
        if "/dataSetStatus/" in self.path:
            for _ in self._pieces():
                pass
            self._status()
            return
        self._upload()

    def do_PUT(self) -> None:
        self._upload()

    def _upload(self) -> None:
        if not self._authorized():
            self.close_connection = True  # answer at once, body unread (like a real server)
            self._reply(401, "Unauthorized", extra={"WWW-Authenticate": 'Basic realm="bench"'})
            return
        digest, size, newlines, last = hashlib.sha256(), 0, 0, b""
        for piece in self._pieces():
            digest.update(piece)
            size += len(piece)
            newlines += piece.count(b"\n")
            last = piece[-1:]
        lines = newlines + (1 if size and last != b"\n" else 0)
        uid = secrets.token_hex(16)
        record: dict[str, Any] = {
            "uid": uid,
            "sha256": digest.hexdigest(),
            "size": size,
            "rows": max(0, lines - 1),
            "method": self.command,
            "chunked": "chunked" in self.headers.get("Transfer-Encoding", ""),
        }
        with self.server.lock:
            self.server.last = record
            self.server.rows_by_uid[uid] = record["rows"]
        self._reply(200, SENTENCE.format(uid=uid))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--username", default="bench")
    parser.add_argument("--password", default="bench-password")
    args = parser.parse_args()
    server = DiscardServer(port=args.port, username=args.username, password=args.password)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"discard server listening on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
