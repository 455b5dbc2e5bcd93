"""Loopback helpers: tests never use fixed ports."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (for servers that cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server for `handler` on 127.0.0.1, port 0; yields its base URL, stops after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=20)


def reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: bytes,
    headers: Iterable[tuple[str, str]] = (),
    *,
    body: bool = True,
) -> None:
    """Answer with `headers` and `payload` under its own Content-Length (any other one is dropped);
    `body=False` for HEAD. Only the status line is added: a proxy passes on the upstream's Date."""
    handler.send_response_only(status)
    for name, value in headers:
        if name.lower() != "content-length":
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    if body:
        handler.wfile.write(payload)
