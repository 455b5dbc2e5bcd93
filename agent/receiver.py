"""The webhook receiver `watch` serves: AlumnIQ POSTs a job's end to `/jobs/{token}`.

The standard library's ThreadingHTTPServer, on its own thread, one short-lived thread per request:
a slow or hostile caller never blocks the watcher or the pipeline. What a request may do is narrow
on purpose, and every refusal is a bare status with an empty body, so a caller learns nothing about
other jobs: only POST (else 405), only `/jobs/{token}` (else 404), at most 64 KB (else 413, read
no further), and a token the journal does not know, or a job already settled, is the same 404.
What a notification *means* is decided by the `settle` callback (the follow-up of `agent.completions`).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent.callbacks import MAX_BODY_BYTES, token_in

log = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 10.0  # a caller that stops sending mid-body loses its thread after this
Settle = Callable[[str, bytes], bool]  # (token, raw body) -> True when it settled an open job


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_SECONDS
    server_version = "feed-agent"
    sys_version = ""
    error_message_format = ""  # a malformed request gets its status and nothing else

    def do_POST(self) -> None:
        token = token_in(self.path)
        length = self._length()
        if length is None or length > MAX_BODY_BYTES:
            self._refuse(413 if length else 411)
            return
        try:
            raw = self.rfile.read(length)
        except OSError:
            self.close_connection = True
            return
        if token is None or len(raw) != length:
            self._refuse(404)
            return
        try:
            settled = self.server.settle(token, raw)
        except Exception:  # the journal broke: the caller should try again later
            log.exception("webhook: a notification could not be recorded")
            self._refuse(503)
            return
        self._answer(204 if settled else 404)

    def _length(self) -> int | None:
        value = self.headers.get("Content-Length", "")
        return int(value) if value.isdigit() else None

    def _refuse(self, status: int) -> None:
        self.close_connection = True  # an unread body must not be taken for the next request
        self._answer(status)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        if status == 405:
            self.send_header("Allow", "POST")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _not_allowed(self) -> None:
        self._refuse(405)

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def log_message(self, format: str, *args: object) -> None:
        """One debug line per request, without the path (it holds the token)."""
        log.debug("webhook: %s %s from %s", self.command, args[1] if len(args) > 1 else "", self.client_address[0])


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck caller never keeps the agent from stopping
    block_on_close = False

    def __init__(self, address: tuple[str, int], settle: Settle) -> None:
        self.settle = settle
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)


class Receiver:
    """`with Receiver((host, port), settle) as receiver:` serves until the block ends (port 0: any free one)."""

    def __init__(self, address: tuple[str, int], settle: Settle) -> None:
        self._server = _Server(address, settle)
        host, port = self._server.server_address[:2]
        self.address = (str(host), int(port))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The bound address as a base URL (the default public_url)."""
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self) -> Receiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        log.info("webhook: listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
