"""A real HTTP reverse proxy on loopback in front of moto's server, answering chosen requests itself.

Why: moto never answers 429/503 with `Retry-After`, nor fails one part of a multipart upload, but
real S3 (and S3-compatible stores) do. The proxy forwards every request byte for byte (headers,
Host included, so SigV4 signatures and moto's IAM checks still hold) unless a queued fault matches
it; a matching request is read whole and answered with the fault's S3 error instead.

- `s3_fault_proxy` fixture -> :class:`S3FaultProxy` in front of `write_only_s3`'s moto server;
  point a target at `proxy.url` (e.g. `bucket.settings(endpoint_url=proxy.url)`).
- `proxy.fail(status, code, operation=..., times=..., headers=..., part_number=...)` queues a fault;
  `operation` is one of `put` (PutObject), `part` (UploadPart), `create`, `complete`, `abort`, or
  None for any; `part_number` narrows `part` to one part of a multipart upload.
- `proxy.seen` lists (operation, status) for every request, in order.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.net import reply, serving
from tests.support.s3 import WriteOnlyBucket

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade"}


def operation_of(method: str, path: str) -> str:
    """Which S3 operation a request is, from its method and query (enough for PUT-only clients)."""
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
    if method == "PUT":
        return "part" if "partNumber" in query else "put"
    if method == "POST":
        return "create" if "uploads" in query else ("complete" if "uploadId" in query else "post")
    if method == "DELETE":
        return "abort" if "uploadId" in query else "delete"
    return method.lower()


@dataclass
class Fault:
    status: int
    code: str
    operation: str | None
    times: int
    headers: dict[str, str]
    part_number: int | None = None


@dataclass
class S3FaultProxy:
    """Forwards to `upstream` (moto) unless a queued :class:`Fault` matches the request."""

    upstream: str
    url: str = ""
    seen: list[tuple[str, int]] = field(default_factory=list)
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        status: int,
        code: str,
        *,
        operation: str | None = None,
        times: int = 1,
        headers: dict[str, str] | None = None,
        part_number: int | None = None,
    ) -> None:
        """Answer the next `times` requests of `operation` (only part `part_number`, if given) with this
        S3 error (status, code, headers)."""
        with self._lock:
            self._faults.append(Fault(status, code, operation, times, dict(headers or {}), part_number))

    def take(self, operation: str, part_number: int | None = None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                wanted_part = fault.part_number in (None, part_number)
                if fault.times > 0 and fault.operation in (None, operation) and wanted_part:
                    fault.times -= 1
                    return fault
        return None

    def note(self, operation: str, status: int) -> None:
        with self._lock:
            self.seen.append((operation, status))

    def statuses(self, operation: str) -> list[int]:
        with self._lock:
            return [status for name, status in self.seen if name == operation]


def _handler(proxy: S3FaultProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._relay()

        do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = operation_of(self.command, self.path)
            part = parse_qs(urlsplit(self.path).query).get("partNumber", [""])[0]
            fault = proxy.take(operation, int(part) if part.isdigit() else None)
            if fault is not None:
                self._answer_fault(fault, operation)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP]
                status = answer.status
            finally:
                connection.close()
            proxy.note(operation, status)
            reply(self, status, payload, kept, body=self.command != "HEAD")

        def _answer_fault(self, fault: Fault, operation: str) -> None:
            proxy.note(operation, fault.status)
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{fault.code}</Code>'
                f"<Message>injected by the test proxy</Message></Error>"
            ).encode()
            reply(self, fault.status, payload, [("Content-Type", "application/xml"), *fault.headers.items()])

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

    return Handler


@pytest.fixture
def s3_fault_proxy(write_only_s3: WriteOnlyBucket) -> Iterator[S3FaultProxy]:
    """A fault-injecting proxy in front of the test's moto server, on a free loopback port."""
    proxy = S3FaultProxy(upstream=write_only_s3.endpoint)
    with serving(_handler(proxy)) as url:
        proxy.url = url
        yield proxy
