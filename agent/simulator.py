"""A Learn-compatible "Snapshot Flat File" server for demos and tests.

Why it exists: nobody can point a test suite or a demo at a production Learn, and the protocol has
sharp edges (a localized success sentence, XML status with every field, asynchronous processing,
records that fail because a membership names a person Learn has never seen). This stand-in follows
`shared/reference/learn-snapshot-flatfile.md` and adds clearly-named fault modes that the real server
shows only on bad days.

It deliberately imports nothing from the agent: if it shared the agent's header parser, a bug there
would be invisible in every test. Uploads are streamed in 64 KiB pieces (hashed with SHA-256 and
parsed line by line), so a large file never sits in memory; only the keys of stored people, courses
and organizations are remembered (up to a cap), which is what makes wrong-order batches fail.

Invented behaviour (the reference has no evidence for it), kept simple and documented:
- unknown dataSetUid: 404 with a plain-text explanation;
- data sets are checked when they arrive, in arrival order, as if Learn's queue ran them one by one;
- `delete` forgets the listed people/courses/organizations, other operations remember them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

PIECE = 64 * 1024  # bytes read from the socket at a time
MAX_LINE = 1024 * 1024  # a longer "line" is an error row, not a memory hog
DRAIN_LIMIT = 16 * 1024 * 1024  # refused bodies up to this size are read, so the client sees the answer
MAX_REMEMBERED_KEYS = 1_000_000  # per kind; beyond it, references are no longer checked
MAX_PROBLEMS = 200  # row problems kept per data set, for assertions and the console
DATA_INTEGRATION_TYPE = "blackboard.platform.dataintegration.DataIntegration"
SUCCESS_SENTENCE = "Success: Feed File Uploaded.  Use the reference code {uid} to track these records in the logs."
OPERATIONS = ("store", "refresh", "refreshlegacy", "delete")

# Required columns per slug (reference §2). data_source_key is not required: this integration
# supplies a default one, as the reference says a real integration may.
REQUIRED: dict[str, tuple[str, ...]] = {
    "person": ("external_person_key", "firstname", "lastname", "user_id"),
    "course": ("external_course_key", "course_id", "course_name"),
    "organization": ("external_organization_key", "organization_id", "organization_name"),
    "membership": ("external_course_key", "external_person_key"),
    "organizationmembership": ("external_organization_key", "external_person_key"),
    "term": ("external_term_key", "name"),
    "secondaryinstrole": ("external_person_key", "role_id"),
    "associateobserver": ("external_observer_key", "external_user_key"),
    "coursecategory": ("external_category_key", "title"),
    "organizationcategory": ("external_category_key", "title"),
    "coursecategorymembership": ("external_category_key", "external_course_key"),
    "organizationcategorymembership": ("external_category_key", "external_organization_key"),
    "node": ("external_node_key", "parent_node_key", "name"),
    "userassociation": ("external_association_key", "external_node_key", "external_user_key"),
    "courseassociation": ("external_association_key", "external_node_key", "external_course_key"),
    "organizationassociation": ("external_association_key", "external_node_key", "external_organization_key"),
    "standardsassociation": ("std_sub_doc_key", "course_key"),
    "subject": ("external_subject_key", "subject_id", "subject_name", "subject_type"),
    "program": ("external_program_key", "program_id", "program_name", "program_type"),
    "programtosubjectassociation": ("external_association_key", "external_program_key", "external_subject_key"),
    "subjecttocourseassociation": ("external_association_key", "external_subject_key", "external_course_key"),
    "subjecttoorgassociation": ("external_association_key", "external_subject_key", "external_org_key"),
}

# Objects whose keys Learn remembers, and the column that holds the key.
STORED_KEY_COLUMN = {
    "person": "external_person_key",
    "course": "external_course_key",
    "organization": "external_organization_key",
}

# Memberships must name things that exist: column -> kind of stored object.
REFERENCES: dict[str, dict[str, str]] = {
    "membership": {"external_course_key": "course", "external_person_key": "person"},
    "organizationmembership": {"external_organization_key": "organization", "external_person_key": "person"},
}

_PATH = re.compile(r"^/webapps/bb-data-integration-flatfile-([^/]+)/endpoint/([^/]+)/([^/]+)/?$")
_STACK_TRACE = (
    "java.lang.IllegalStateException: simulated failure (fault mode fail-uploads)\n"
    "\tat blackboard.platform.dataintegration.impl.FlatFileEndpoint.store(FlatFileEndpoint.java:212)\n"
)
_NO_CODE_PAGE = (
    "<html><head><title>Blackboard Learn</title></head><body><h1>Processing error</h1>"
    "<p>The feed could not be queued (simulated fault mode no-code).</p></body></html>"
)


# ----------------------------------------------------------------------------------------------
# Public records


@dataclass
class Faults:
    """Switchable misbehaviour; every field may be changed while the server runs.

    Counters (fail_uploads, status_503, drop_uploads) count down as requests use them up.
    """

    fail_uploads: int = 0  # the next N uploads answer 500 with a stack trace
    slow_seconds: float = 0.0  # every authenticated answer is delayed this long
    stuck: bool = False  # data sets accepted meanwhile never leave the queue
    no_code: bool = False  # uploads answer 200 with a page that has no reference code
    status_503: int = 0  # the next N status requests answer 503
    drop_uploads: int = 0  # the next N uploads are read, then the connection is closed unanswered

    def describe(self) -> str:
        active = [f"{name}={value}" for name, value in vars(self).items() if value]
        return ", ".join(active) if active else "none"


@dataclass(frozen=True)
class Upload:
    """One accepted upload, as the server received it."""

    slug: str
    operation: str
    uid: str
    sha256: str
    size: int
    rows: int
    content_type: str
    received_at: datetime
    chunked: bool = False  # Transfer-Encoding: chunked rather than Content-Length
    errors: int = 0
    warnings: int = 0


@dataclass(frozen=True)
class DataSetInfo:
    """The state of one data set at the moment it was asked for."""

    uid: str
    slug: str
    operation: str
    rows: int
    queued: int
    completed: int
    warnings: int
    errors: int
    finished: bool
    stuck: bool
    problems: tuple[str, ...] = ()


# ----------------------------------------------------------------------------------------------
# Internals: data sets, row checking, body reading


@dataclass
class _DataSet:
    uid: str
    slug: str
    operation: str
    rows: int
    error_rows: int
    warning_rows: int
    problems: tuple[str, ...]
    started: float  # time.monotonic() at acceptance
    started_wall: datetime
    stuck: bool

    def processed(self, now: float, rate: float) -> int:
        if self.stuck:
            return 0
        return min(self.rows, int(max(0.0, now - self.started) * rate))

    def info(self, now: float, rate: float) -> DataSetInfo:
        done = self.processed(now, rate)
        # Errors and warnings surface in proportion as processing advances; exact at the end.
        errors = done * self.error_rows // self.rows if self.rows else 0
        warnings = done * self.warning_rows // self.rows if self.rows else 0
        return DataSetInfo(
            uid=self.uid,
            slug=self.slug,
            operation=self.operation,
            rows=self.rows,
            queued=self.rows - done,
            completed=done - errors - warnings,
            warnings=warnings,
            errors=errors,
            finished=done == self.rows,
            stuck=self.stuck,
            problems=self.problems,
        )

    def last_entry(self, now: float, rate: float) -> datetime:
        done = self.processed(now, rate)
        return self.started_wall + timedelta(seconds=done / rate if rate else 0.0)


class _KeyStore:
    """What Learn has stored: keys of people, courses and organizations (bounded)."""

    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = {kind: set() for kind in STORED_KEY_COLUMN}
        self.overflowed: set[str] = set()
        self._lock = threading.Lock()

    def knows(self, kind: str, key: str) -> bool:
        with self._lock:
            return kind in self.overflowed or key in self._keys[kind]

    def apply(self, kind: str, keys: set[str], *, forget: bool) -> None:
        with self._lock:
            stored = self._keys[kind]
            if forget:
                stored.difference_update(keys)
                return
            stored.update(keys)
            if len(stored) > MAX_REMEMBERED_KEYS:
                self.overflowed.add(kind)
                stored.clear()


class _RowChecker:
    """Parses an upload line by line, as it streams in, and decides each row's fate."""

    def __init__(self, slug: str, store: _KeyStore) -> None:
        self.slug = slug
        self.store = store
        self.columns: list[str] | None = None
        self.delimiter = "|"
        self.rows = 0
        self.error_rows = 0
        self.warning_rows = 0
        self.problems: list[str] = []
        self.new_keys: set[str] = set()
        self._partial = bytearray()
        self._skipping_long_line = False

    # Feeding ------------------------------------------------------------------------------
    def feed(self, piece: bytes) -> None:
        start = 0
        while True:
            newline = piece.find(b"\n", start)
            if newline < 0:
                self._keep(piece[start:])
                return
            self._keep(piece[start:newline])
            self._end_line()
            start = newline + 1

    def close(self) -> None:
        if self._partial or self._skipping_long_line:
            self._end_line()

    def _keep(self, data: bytes) -> None:
        if self._skipping_long_line:
            return
        self._partial += data
        if len(self._partial) > MAX_LINE:
            self._partial.clear()
            self._skipping_long_line = True

    def _end_line(self) -> None:
        if self._skipping_long_line:
            self._skipping_long_line = False
            self._count_row()
            self._error(f"line longer than {MAX_LINE} bytes")
            return
        raw = bytes(self._partial)
        self._partial.clear()
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if self.columns is None:
            self._read_header(text)
        elif text.strip():
            self._check_row(text)

    # Header and rows ----------------------------------------------------------------------
    def _read_header(self, text: str) -> None:
        text = text.lstrip("\ufeff")
        self.delimiter = "|" if "|" in text else ("\t" if "\t" in text else ",")
        self.columns = [name.strip().lower() for name in text.split(self.delimiter)]

    def _count_row(self) -> None:
        self.rows += 1

    def _error(self, why: str) -> None:
        self.error_rows += 1
        self._note(f"row {self.rows}: error: {why}")

    def _note(self, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)

    def _check_row(self, text: str) -> None:
        assert self.columns is not None
        self._count_row()
        values = text.split(self.delimiter)
        if len(values) > len(self.columns):
            self._error(f"{len(values)} fields but the header has {len(self.columns)}")
            return
        row = dict(zip(self.columns, (v.strip() for v in values), strict=False))
        for column in REQUIRED[self.slug]:
            if column not in self.columns:
                self._error(f"the header lacks the required column {column}")
                return
            if not row.get(column):
                self._error(f"no value for the required column {column}")
                return
        for column, kind in REFERENCES.get(self.slug, {}).items():
            if not self.store.knows(kind, row[column]):
                self._error(f"{column} '{row[column]}' names a {kind} that does not exist")
                return
        available = row.get("available_ind", "")
        if available and available.upper() not in ("Y", "N"):
            self.warning_rows += 1
            self._note(f"row {self.rows}: warning: available_ind '{available}' is not Y or N; ignored")
        key_column = STORED_KEY_COLUMN.get(self.slug)
        if key_column and len(self.new_keys) <= MAX_REMEMBERED_KEYS:
            self.new_keys.add(row[key_column])


def _body_pieces(handler: BaseHTTPRequestHandler) -> Iterator[bytes]:
    """The request body in pieces of at most 64 KiB (Content-Length or chunked)."""
    stream = handler.rfile
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
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
        yield from _exact(stream, int(handler.headers.get("Content-Length") or 0))


def _exact(stream: Any, size: int) -> Iterator[bytes]:
    remaining = size
    while remaining > 0:
        piece = stream.read(min(PIECE, remaining))
        if not piece:
            raise ConnectionError("client closed the connection mid-body")
        remaining -= len(piece)
        yield piece


def _iso(moment: datetime) -> str:
    """ISO-8601 with milliseconds and offset, like 2017-07-23T12:42:28.717-05:00."""
    return moment.astimezone().isoformat(timespec="milliseconds")


# ----------------------------------------------------------------------------------------------
# HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: LearnSimulator, tls: ssl.SSLContext | None) -> None:
        self.simulator = simulator
        self.tls = tls
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Runs in the connection's own thread, so a slow TLS handshake never blocks accept()."""
        with self.sockets_lock:
            self.open_sockets.add(request)
        try:
            # Headers and body go out as two writes; without NODELAY, Nagle holds the second one
            # until the client's delayed ACK (40 ms), which would dwarf every real cost here.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                request = self.tls.wrap_socket(request, server_side=True)
            super().finish_request(request, client_address)
        except (OSError, ssl.SSLError):
            pass  # the client went away or failed the handshake
        finally:
            with self.sockets_lock:
                self.open_sockets.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hangs up is normal here."""

    def close_connections(self) -> None:
        """Ends keep-alive connections, so a stopped simulator really stops answering."""
        with self.sockets_lock:
            for sock in list(self.open_sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LearnSimulator/1.0"
    timeout = 300
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the simulator reports uploads through its own event hook."""

    def do_GET(self) -> None:
        self.server.simulator._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.simulator._dispatch(self, "POST")

    def do_PUT(self) -> None:
        self.server.simulator._dispatch(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.simulator._dispatch(self, "DELETE")

    def reply(
        self,
        code: int,
        body: str,
        *,
        content_type: str = "text/plain;charset=UTF-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def drain_or_close(self) -> None:
        """Read a small refused body so the client gets the answer; close on anything bigger."""
        length = self.headers.get("Content-Length")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if chunked or (length is not None and int(length) > DRAIN_LIMIT):
            self.close_connection = True
            return
        for _ in _body_pieces(self):
            pass


# ----------------------------------------------------------------------------------------------
# The simulator


class LearnSimulator:
    """A Learn SIS flat-file endpoint on a background thread (`with LearnSimulator() as sim:`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "sis-integration",
        password: str = "sis-password",
        integration: str = "BBLEARN",
        rows_per_second: float = 500.0,
        machine_name: str = "learn-sim-1",
        *,
        tls: ssl.SSLContext | None = None,
        data_integration_id: str = "_123_1",
    ) -> None:
        self.host = host
        self.username = username
        self.password = password
        self.integration = integration
        self.rows_per_second = rows_per_second
        self.machine_name = machine_name
        self.data_integration_id = data_integration_id
        self.faults = Faults()
        self.on_event: Callable[[str], None] | None = None
        self.upload_attempts = 0  # every authenticated upload request, faulted ones included
        self.status_requests = 0  # every authenticated status request
        self._tls = tls
        self._lock = threading.Lock()
        self._uploads: list[Upload] = []
        self._datasets: dict[str, _DataSet] = {}
        self._store = _KeyStore()
        self._stopping = threading.Event()
        self._server = _Server((host, port), self, tls)
        self.port: int = int(self._server.server_address[1])
        scheme = "https" if tls else "http"
        shown_host = "localhost" if tls and host == "127.0.0.1" else host
        self.url = f"{scheme}://{shown_host}:{self.port}"
        self._thread: threading.Thread | None = None

    # Life cycle ---------------------------------------------------------------------------
    def start(self) -> LearnSimulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"learn-sim-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> LearnSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # For tests and the console ------------------------------------------------------------
    @property
    def uploads(self) -> list[Upload]:
        return self.uploads_snapshot()

    def uploads_snapshot(self) -> list[Upload]:
        with self._lock:
            return list(self._uploads)

    def dataset(self, uid: str) -> DataSetInfo:
        """Raises KeyError for a reference code the simulator never issued."""
        with self._lock:
            return self._datasets[uid].info(time.monotonic(), self.rows_per_second)

    def wait_idle(self, timeout: float = 30) -> bool:
        """True once every data set has finished (a stuck one never does)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                now = time.monotonic()
                busy = [d for d in self._datasets.values() if d.processed(now, self.rows_per_second) < d.rows]
            if not busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/webapps/bb-data-integration-flatfile-{self.integration}/endpoint"

    def upload_url(self, slug: str, operation: str = "store") -> str:
        return f"{self.endpoint}/{slug}/{operation}"

    def status_url(self, uid: str) -> str:
        return f"{self.endpoint}/dataSetStatus/{uid}"

    # Request handling ---------------------------------------------------------------------
    def _event(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)

    def _authorized(self, handler: _Handler) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        given = handler.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))

    def _dispatch(self, handler: _Handler, method: str) -> None:
        match = _PATH.match(unquote(urlsplit(handler.path).path))
        if not match or match.group(1) != self.integration:
            handler.drain_or_close()
            handler.reply(404, "Not Found")
            return
        _, slug, tail = match.groups()
        if not self._authorized(handler):
            handler.drain_or_close()
            handler.reply(
                401,
                "Unauthorized: this integration's username and password are required",
                headers={"WWW-Authenticate": 'Basic realm="Blackboard Learn"'},
            )
            return
        if slug == "dataSetStatus" and method in ("GET", "POST"):
            if method == "POST":
                handler.drain_or_close()
            self._status(handler, tail)
        elif slug in REQUIRED and tail in OPERATIONS:
            if method == "POST":
                self._upload(handler, slug, tail)
            else:
                handler.drain_or_close()
                handler.reply(405, "Method Not Allowed: upload with POST", headers={"Allow": "POST"})
        else:
            handler.drain_or_close()
            handler.reply(404, "Not Found")

    def _take_fault(self) -> str:
        """Which fault (if any) this upload gets; counters are used up under the lock."""
        with self._lock:
            self.upload_attempts += 1
            if self.faults.drop_uploads > 0:
                self.faults.drop_uploads -= 1
                return "drop"
            if self.faults.fail_uploads > 0:
                self.faults.fail_uploads -= 1
                return "fail"
            return "no_code" if self.faults.no_code else ""

    def _slow(self) -> None:
        if self.faults.slow_seconds > 0:
            self._stopping.wait(self.faults.slow_seconds)

    def _upload(self, handler: _Handler, slug: str, operation: str) -> None:
        chunked = "chunked" in handler.headers.get("Transfer-Encoding", "").lower()
        if "Content-Length" not in handler.headers and not chunked:
            handler.close_connection = True
            handler.reply(411, "Length Required")
            return
        fault = self._take_fault()
        checker = _RowChecker(slug, self._store)
        digest = hashlib.sha256()
        size = 0
        for piece in _body_pieces(handler):
            digest.update(piece)
            checker.feed(piece)
            size += len(piece)
        checker.close()
        if fault == "drop":
            handler.close_connection = True
            self._event(
                f"upload {slug}/{operation}: {size} bytes read, then the connection was dropped (fault drop-uploads)"
            )
            return
        self._slow()
        if fault == "fail":
            self._event(f"upload {slug}/{operation}: answered 500 (fault fail-uploads)")
            handler.reply(500, _STACK_TRACE)
            return
        if fault == "no_code":
            self._event(f"upload {slug}/{operation}: answered 200 without a reference code (fault no-code)")
            handler.reply(200, _NO_CODE_PAGE, content_type="text/html;charset=UTF-8")
            return
        uid = secrets.token_hex(16)
        self._accept(handler, uid, slug, operation, checker, digest.hexdigest(), size)
        handler.reply(200, SUCCESS_SENTENCE.format(uid=uid))

    def _accept(
        self, handler: _Handler, uid: str, slug: str, operation: str, checker: _RowChecker, sha256: str, size: int
    ) -> None:
        kind = slug if slug in STORED_KEY_COLUMN else None
        if kind:
            self._store.apply(kind, checker.new_keys, forget=operation == "delete")
        now_wall = datetime.now().astimezone()
        upload = Upload(
            slug=slug,
            operation=operation,
            uid=uid,
            sha256=sha256,
            size=size,
            rows=checker.rows,
            content_type=handler.headers.get("Content-Type", ""),
            received_at=now_wall,
            chunked="chunked" in handler.headers.get("Transfer-Encoding", "").lower(),
            errors=checker.error_rows,
            warnings=checker.warning_rows,
        )
        dataset = _DataSet(
            uid=uid,
            slug=slug,
            operation=operation,
            rows=checker.rows,
            error_rows=checker.error_rows,
            warning_rows=checker.warning_rows,
            problems=tuple(checker.problems),
            started=time.monotonic(),
            started_wall=now_wall,
            stuck=self.faults.stuck,
        )
        with self._lock:
            self._uploads.append(upload)
            self._datasets[uid] = dataset
        stuck = " (fault stuck: it will stay queued)" if dataset.stuck else ""
        self._event(
            f"upload {slug}/{operation}: {size} bytes, {checker.rows} rows, "
            f"{checker.error_rows} with errors, {checker.warning_rows} with warnings "
            f"-> reference code {uid}{stuck}"
        )
        for problem in checker.problems[:5]:
            self._event(f"  {problem}")

    def _status(self, handler: _Handler, uid: str) -> None:
        with self._lock:
            self.status_requests += 1
            unavailable = self.faults.status_503 > 0
            if unavailable:
                self.faults.status_503 -= 1
            dataset = self._datasets.get(uid)
        self._slow()
        if unavailable:
            handler.reply(503, "Service Unavailable (fault status-503)", headers={"Retry-After": "1"})
        elif dataset is None:
            handler.reply(404, f"No data set has the reference code {uid}")
        else:
            handler.reply(200, self._status_xml(dataset), content_type="application/xml;charset=UTF-8")

    def _status_xml(self, dataset: _DataSet) -> str:
        now = time.monotonic()
        info = dataset.info(now, self.rows_per_second)
        children = [
            f"<completedCount>{info.completed}</completedCount>",
            f'<dataIntegrationId type="{DATA_INTEGRATION_TYPE}">{escape(self.data_integration_id)}</dataIntegrationId>',
            f"<dataSetUid>{dataset.uid}</dataSetUid>",
            f"<errorCount>{info.errors}</errorCount>",
            f"<lastEntryDate>{_iso(dataset.last_entry(now, self.rows_per_second))}</lastEntryDate>",
            f"<machineName>{escape(self.machine_name)}</machineName>",
            f"<queuedCount>{info.queued}</queuedCount>",
            f"<startDate>{_iso(dataset.started_wall)}</startDate>",
            f"<warningCount>{info.warnings}</warningCount>",
        ]
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f"<dataSetStatus>{''.join(children)}</dataSetStatus>"
        )


# ----------------------------------------------------------------------------------------------
# Command line (`feed-agent simulate`, or `python -m agent.simulator`)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: any free port, printed)")
    parser.add_argument("--username", default="sis-integration", help="the integration's username")
    parser.add_argument("--password", default="sis-password", help="the integration's password")
    parser.add_argument("--integration", default="BBLEARN", help="integration id in the URL (default BBLEARN)")
    parser.add_argument("--rows-per-second", type=float, default=500.0, help="processing speed (default 500)")
    faults = parser.add_argument_group("fault modes (invented, for rehearsing bad days)")
    faults.add_argument("--fail-uploads", type=int, default=0, metavar="N", help="the first N uploads answer 500")
    faults.add_argument("--slow", type=float, default=0.0, metavar="SECONDS", help="delay every answer")
    faults.add_argument("--stuck", action="store_true", help="accepted data sets never leave the queue")
    faults.add_argument("--no-code", action="store_true", help="uploads answer 200 without a reference code")
    faults.add_argument("--status-503", type=int, default=0, metavar="N", help="the first N status requests answer 503")
    faults.add_argument(
        "--drop-uploads",
        type=int,
        default=0,
        metavar="N",
        help="the first N uploads are read, then the connection is closed unanswered",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; prints one line per upload."""
    simulator = LearnSimulator(
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
        integration=args.integration,
        rows_per_second=args.rows_per_second,
    )
    simulator.faults = replace(
        Faults(),
        fail_uploads=args.fail_uploads,
        slow_seconds=args.slow,
        stuck=args.stuck,
        no_code=args.no_code,
        status_503=args.status_503,
        drop_uploads=args.drop_uploads,
    )
    simulator.on_event = lambda message: print(message, flush=True)
    stopping = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signals can only be caught there
        previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    simulator.start()
    try:
        print(
            f"Learn simulator listening on {simulator.url} (integration {simulator.integration}, "
            f"username {simulator.username})",
            flush=True,
        )
        print(f"Faults: {simulator.faults.describe()}. Stop with Ctrl-C.", flush=True)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Learn simulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m agent.simulator", description="Learn flat-file simulator")
    add_arguments(_parser)
    sys.exit(run_from_args(_parser.parse_args()))
