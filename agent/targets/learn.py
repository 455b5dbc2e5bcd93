"""Blackboard Learn's SIS "Snapshot Flat File" endpoint: post a file, follow its data set, check access.

Protocol facts are in `shared/reference/learn-snapshot-flatfile.md`. The choices that matter:
- the body is streamed from disk (a 1 GiB file must not become 1 GiB of RAM), with a Content-Length
  so Learn sees an ordinary upload rather than a chunked one;
- the reference code is the 32-hex token anywhere in a 200 answer, because the sentence around it is
  localized; a 200 without one is a failure (Blackboard's own script says so);
- network trouble, 429 and 5xx are retried with capped exponential backoff; 401/403/404 are final
  and explained, since retrying a wrong password only locks accounts;
- status XML is parsed only after refusing DTDs and entities, so a hostile or broken proxy cannot
  make the agent expand entities.
"""

from __future__ import annotations

import logging
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import requests.adapters

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import StopRequested, TargetError
from agent.records import CheckResult, Progress, Receipt, Result, Status, Submission
from agent.retry import RetryPolicy, retrying
from agent.settings import LearnTargetSettings
from agent.targets.base import ProgressCallback

log = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"
OPERATIONS = ("store", "refresh", "refreshlegacy", "delete")
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0
UPLOAD_RETRY = RetryPolicy(attempts=5, first_delay=1.0, cap=60.0)
MAX_POLL_FAILURES = 5  # tolerated in a row; the next one ends the wait as FAILED
UNCHANGED_POLLS_FOR_DONE = 3  # queued 0 and counts still for this many polls: Learn is done
CHECK_UID = "0" * 32  # a data set that cannot exist, for check()
PIECE = 64 * 1024
SEND_BLOCK = 256 * 1024  # bytes per socket write; urllib3's 16 KiB default costs ~20% on big files

_REFERENCE = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])")
_DANGEROUS_XML = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_COUNTS = {"queued": "queuedCount", "completed": "completedCount", "warnings": "warningCount", "errors": "errorCount"}


def extract_reference(body: str) -> str | None:
    """The reference code (uid) in an upload answer, in any language; lowercase, or None."""
    match = _REFERENCE.search(body)
    return match.group(0).lower() if match else None


def parse_status(body: str) -> Progress:
    """A dataSetStatus document as Progress, every field kept. Raises TargetError if unusable."""
    if _DANGEROUS_XML.search(body):
        raise TargetError(
            "Learn's status answer contains a DOCTYPE or ENTITY declaration; it was not parsed "
            "(a proxy or server answering in Learn's place?)",
            retryable=True,
        )
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise TargetError(
            f"Learn's status answer is not XML ({exc}); it began: {_start(body)}", retryable=True
        ) from None
    if _local(root.tag) != "dataSetStatus":
        raise TargetError(
            f"Learn's status answer is <{_local(root.tag)}>, not <dataSetStatus>; it began: {_start(body)}",
            retryable=True,
        )
    fields: dict[str, str] = {}
    for child in root:
        tag = _local(child.tag)
        fields[tag] = (child.text or "").strip()
        for attribute, value in child.attrib.items():
            fields[f"{tag}@{_local(attribute)}"] = value
    counts: dict[str, int] = {}
    for name, tag in _COUNTS.items():
        try:
            # A missing warning or error count reads as none reported; queued and completed are required.
            counts[name] = int(fields.get(tag, "0") if name in ("warnings", "errors") else fields[tag])
        except (KeyError, ValueError):
            raise TargetError(
                f"Learn's status answer has no usable {tag}; it began: {_start(body)}", retryable=True
            ) from None
    return Progress(
        queued=counts["queued"],
        completed=counts["completed"],
        warnings=counts["warnings"],
        errors=counts["errors"],
        fields=fields,
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _start(text: str, limit: int = 200) -> str:
    """The start of an answer on one line, quoted, for messages."""
    flat = " ".join(text.split())
    return repr(flat[:limit] + ("…" if len(flat) > limit else ""))


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class StreamedBody:
    """A file (optionally behind a BOM) that requests streams with a Content-Length.

    requests treats an object with `read` and `__iter__` as a stream and uses `__len__` for the
    Content-Length header, so the file goes out in pieces and never as one bytes object.
    """

    def __init__(self, path: Path, prefix: bytes = b"") -> None:
        self._prefix = prefix
        self._file: BinaryIO = path.open("rb")
        self._length = len(prefix) + path.stat().st_size
        self.sent = 0

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            head, self._prefix = self._prefix, b""
            rest = self._file.read(size - len(head)) if size > len(head) else b""
            data = head + rest
        else:
            data = self._file.read(size if size and size > 0 else PIECE)
        self.sent += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            piece = self.read(PIECE)
            if not piece:
                return
            yield piece

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> StreamedBody:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class _LargeBlockAdapter(requests.adapters.HTTPAdapter):
    """Sends request bodies in 256 KiB writes instead of 16 KiB ones (fewer syscalls, same memory)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", SEND_BLOCK)
        super().init_poolmanager(*args, **kwargs)


def _new_session() -> requests.Session:
    session = requests.Session()
    adapter = _LargeBlockAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class LearnTarget:
    """One [target:NAME] of type learn."""

    kind = "learn"

    def __init__(
        self,
        settings: LearnTargetSettings,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy = UPLOAD_RETRY,
        clock: Clock = SYSTEM_CLOCK,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.session = session or _new_session()
        self.retry = retry
        self.timeout = timeout
        self.clock = clock
        base = _without_credentials(settings.url.rstrip("/"))
        integration = quote(settings.integration, safe="")
        self.endpoint = f"{base}/webapps/bb-data-integration-flatfile-{integration}/endpoint"

    # URLs and small helpers ------------------------------------------------------------------
    def upload_url(self, slug: str, operation: str) -> str:
        return f"{self.endpoint}/{quote(slug, safe='')}/{quote(operation, safe='')}"

    def status_url(self, uid: str) -> str:
        return f"{self.endpoint}/dataSetStatus/{quote(uid, safe='')}"

    @property
    def _auth(self) -> tuple[str, str]:
        return (self.settings.username.reveal(), self.settings.password.reveal())

    def _scrub(self, text: str) -> str:
        """Belt and braces: no message may carry the password, whatever a library put in it."""
        secret = self.settings.password.reveal()
        return text.replace(secret, "***") if secret else text

    def _refused(self, status: int) -> str:
        return (
            f"Learn refused the username/password of integration {self.settings.integration} "
            f"(HTTP {status}): check username and password of [target:{self.name}] (usually in .env)"
        )

    def _no_endpoint(self, url: str) -> str:
        return f"no such endpoint: check url and integration of [target:{self.name}] (HTTP 404 from {url})"

    def _network_problem(self, exc: requests.RequestException, url: str) -> str:
        if isinstance(exc, requests.exceptions.SSLError):
            return self._scrub(
                f"the TLS certificate of {url} was not accepted ({exc}); set verify_tls = <CA bundle path> "
                f"for a private CA"
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return f"Learn at {url} did not answer in time ({exc.__class__.__name__})"
        if isinstance(exc, requests.exceptions.ConnectionError):
            return self._scrub(f"could not reach Learn at {url}: {_root_cause(exc)}; check url, DNS and firewall")
        return self._scrub(f"request to {url} failed: {exc}")

    # submit ----------------------------------------------------------------------------------
    def _bom_for(self, submission: Submission) -> bytes:
        mode = self.settings.add_bom
        if mode == "yes" and not submission.has_bom:
            return BOM
        if mode == "auto" and submission.non_ascii and not submission.has_bom:
            return BOM
        return b""

    def submit(self, submission: Submission) -> Receipt:
        """Post the file; retried on network trouble, 429 and 5xx. Raises TargetError."""
        if submission.object is None:
            raise ValueError("a Learn submission needs the object slug (Submission.object is None)")
        if submission.operation not in OPERATIONS:
            raise ValueError(f"unknown Learn operation {submission.operation!r}; use one of {OPERATIONS}")
        url = self.upload_url(submission.object, submission.operation)
        prefix = self._bom_for(submission)
        attempts: list[int] = []

        def post() -> tuple[str, int]:
            attempts.append(1)
            return self._post_once(submission, url, prefix)

        try:
            uid, sent = retrying(post, self.retry, what=f"posting {submission.name} to Learn", clock=self.clock)
        except TargetError as exc:
            if not exc.retryable:
                raise
            raise TargetError(
                f"Learn did not accept {submission.name} after {len(attempts)} attempts; last problem: {exc.message}",
                retryable=True,
            ) from None
        log.debug(
            "Learn accepted %s as %s/%s: reference code %s",
            submission.name,
            submission.object,
            submission.operation,
            uid,
        )
        details = {
            "slug": submission.object,
            "operation": submission.operation,
            "endpoint": url,
            "bytes_sent": str(sent),
            "attempts": str(len(attempts)),
            "bom_added": "yes" if prefix else "no",
        }
        return Receipt(target=self.name, kind=self.kind, reference=uid, details=details)

    def _post_once(self, submission: Submission, url: str, prefix: bytes) -> tuple[str, int]:
        """One POST; returns (reference code, bytes sent) or raises TargetError (retryable or not)."""
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        with StreamedBody(submission.path, prefix) as body:
            try:
                response = self.session.post(
                    url,
                    data=body,
                    headers=headers,
                    auth=self._auth,
                    timeout=self.timeout,
                    verify=self.settings.verify_tls,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise TargetError(self._network_problem(exc, url), retryable=True) from None
            sent = body.sent
        with response:
            text = _read_start(response)
        code = response.status_code
        if code == 200:
            uid = extract_reference(text)
            if uid is None:
                raise TargetError(
                    f"Learn answered HTTP 200 for {submission.name} but without a reference "
                    f"code, so the upload cannot be tracked; the answer began: {_start(text)}",
                    http_status=200,
                )
            return uid, sent
        if code in (401, 403):
            raise TargetError(self._refused(code), http_status=code)
        if code == 404:
            raise TargetError(self._no_endpoint(url), http_status=404)
        if code == 429 or code >= 500:
            raise TargetError(
                f"Learn answered HTTP {code}; the answer began: {_start(text)}", retryable=True, http_status=code
            )
        if 300 <= code < 400:
            where = response.headers.get("Location", "?")
            raise TargetError(
                f"Learn redirected the upload (HTTP {code}) to {_without_credentials(where)}: "
                f"set url of [target:{self.name}] to the final address",
                http_status=code,
            )
        raise TargetError(
            f"Learn rejected {submission.name} (HTTP {code}); the answer began: {_start(text)}", http_status=code
        )

    # status / wait ---------------------------------------------------------------------------
    def status(self, receipt: Receipt) -> Progress:
        """One dataSetStatus reading. Raises TargetError (retryable unless 401/403)."""
        url = self.status_url(receipt.reference)
        try:
            response = self.session.get(url, auth=self._auth, timeout=self.timeout, verify=self.settings.verify_tls)
        except requests.RequestException as exc:
            raise TargetError(self._network_problem(exc, url), retryable=True) from None
        with response:
            text = _read_start(response, limit=1024 * 1024)
        code = response.status_code
        if code in (401, 403):
            raise TargetError(self._refused(code), http_status=code)
        if code != 200:
            raise TargetError(
                f"Learn answered HTTP {code} for the status of {receipt.reference}; the answer began: {_start(text)}",
                retryable=True,
                http_status=code,
            )
        return parse_status(text)

    def wait(
        self,
        receipt: Receipt,
        expected_rows: int,
        *,
        on_progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
    ) -> Result:
        """Poll until Learn is done with the data set, the timeout passes, or polling keeps failing."""
        return _Follower(self, receipt, expected_rows, on_progress, stop).run()

    def _pause(self, seconds: float, stop: threading.Event | None) -> None:
        if self.clock.sleep(seconds, stop):
            raise StopRequested()

    # check -----------------------------------------------------------------------------------
    def check(self, canary: bool = False) -> list[CheckResult]:
        """Reach Learn without posting data: endpoint first (no credentials), then the credentials.

        `canary` is moot here: Learn can be checked without writing anything."""
        item = f"target {self.name} (Learn)"
        url = self.status_url(CHECK_UID)
        base = self.settings.url.rstrip("/")
        try:
            anonymous = self.session.get(url, timeout=self.timeout, verify=self.settings.verify_tls)
            anonymous.close()
            if anonymous.status_code == 404:
                return [CheckResult(item, False, self._no_endpoint(url))]
            signed = self.session.get(url, auth=self._auth, timeout=self.timeout, verify=self.settings.verify_tls)
            signed.close()
        except requests.RequestException as exc:
            return [CheckResult(item, False, self._network_problem(exc, base))]
        if signed.status_code in (401, 403):
            return [CheckResult(item, False, self._refused(signed.status_code))]
        return [
            CheckResult(
                item,
                True,
                f"reached Learn at {_without_credentials(base)}, integration "
                f"{self.settings.integration}, credentials accepted",
            )
        ]


class _Follower:
    """The state of one wait(): poll pacing, failure tolerance, the done rule, the timeout."""

    def __init__(
        self,
        target: LearnTarget,
        receipt: Receipt,
        expected_rows: int,
        on_progress: ProgressCallback | None,
        stop: threading.Event | None,
    ) -> None:
        self.target = target
        self.receipt = receipt
        self.expected_rows = expected_rows
        self.on_progress = on_progress
        self.stop = stop
        settings = target.settings
        self.delay = max(0.0, settings.poll_initial_seconds)
        self.max_delay = max(self.delay, settings.poll_max_seconds)
        self.deadline = target.clock.monotonic() + settings.timeout_minutes * 60.0
        self.last: Progress | None = None
        self.unchanged = 0
        self.failures = 0

    def run(self) -> Result:
        while True:
            self._check_stop()
            remaining = self.deadline - self.target.clock.monotonic()
            if remaining <= 0:
                return self._timed_out()
            if self.last is not None or self.failures:
                # The first reading is taken at once: a small set is often done before any pause
                # would end, and the done rule below never trusts an early empty reading.
                self.target._pause(min(self.delay, remaining), self.stop)
                self._check_stop()
                self.delay = min(self.max_delay, max(self.delay * 2, 0.001))
            try:
                progress = self.target.status(self.receipt)
            except TargetError as exc:
                final = self._poll_failed(exc)
                if final is not None:
                    return final
                continue
            self.failures = 0
            if self.on_progress is not None:
                self.on_progress(progress)
            if self._done(progress):
                return _finished(progress, self.receipt)

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise StopRequested()

    def _done(self, progress: Progress) -> bool:
        if self.last is not None and progress.counts() == self.last.counts():
            self.unchanged += 1
        else:
            self.unchanged = 0
        self.last = progress
        if progress.queued != 0:
            return False
        if progress.processed >= self.expected_rows:
            return True
        # Counts that stopped moving end the wait, but only once Learn has processed something: a data
        # set that still reads all zeros may simply not have started.
        return progress.processed > 0 and self.unchanged >= UNCHANGED_POLLS_FOR_DONE

    def _poll_failed(self, exc: TargetError) -> Result | None:
        reference = self.receipt.reference
        if exc.http_status in (401, 403):
            return Result(
                Status.FAILED,
                self.last,
                f"The upload was accepted (reference code {reference}), "
                f"but its status could not be read: {exc.message}",
            )
        self.failures += 1
        log.warning("status of %s could not be read (%d in a row): %s", reference, self.failures, exc.message)
        if self.failures > MAX_POLL_FAILURES:
            return Result(
                Status.FAILED,
                self.last,
                f"The upload itself was accepted (reference code {reference}), but its status "
                f"could not be read {self.failures} times in a row; last problem: {exc.message}. "
                f"Look the reference code up in Learn's SIS framework logs before sending the "
                f"file again.",
            )
        return None

    def _timed_out(self) -> Result:
        minutes = self.target.settings.timeout_minutes
        where = ""
        if self.last is not None:
            q, c, w, e = self.last.counts()
            where = f" (last reading: {q} queued, {c} completed, {w} warnings, {e} errors)"
        return Result(
            Status.TIMED_OUT,
            self.last,
            f"Learn was still processing reference code {self.receipt.reference} after {minutes:g} "
            f"minutes{where}. The upload was accepted; follow it in Learn's SIS framework logs.",
        )


def _finished(progress: Progress, receipt: Receipt) -> Result:
    counts = (
        f"{progress.completed} completed, {progress.warnings} with warnings, "
        f"{progress.errors} with errors (reference code {receipt.reference})"
    )
    if progress.errors > 0:
        return Result(
            Status.ERRORS,
            progress,
            f"Learn processed the file with record errors: {counts}. The details are in Learn's "
            f"SIS framework logs under the reference code.",
        )
    if progress.warnings > 0:
        return Result(Status.WARNINGS, progress, f"Learn processed the file with warnings: {counts}.")
    return Result(Status.SUCCESS, progress, "")


def _read_start(response: requests.Response, limit: int = 64 * 1024) -> str:
    """At most `limit` bytes of an answer as text: enough for a code or a message, never a flood."""
    data = bytearray()
    try:
        for piece in response.iter_content(8192):
            data += piece
            if len(data) >= limit:
                break
    except requests.RequestException:
        pass
    return bytes(data[:limit]).decode(response.encoding or "utf-8", errors="replace")


def _root_cause(exc: BaseException) -> str:
    """The telling part of a connection error, e.g. 'Connection refused', not a pool's life story."""
    text = str(exc)
    reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text) or re.search(r"(\w+\('[^']+'\))", text)
    return reason.group(1).strip() if reason else _start(text)
