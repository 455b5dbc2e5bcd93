"""Blackboard Learn's SIS "Snapshot Flat File" endpoint: post a file, follow its data set, check access.

Protocol facts are in `shared/reference/learn-snapshot-flatfile.md`. The choices that matter:
- the body is streamed from disk (a 1 GiB file must not become 1 GiB of RAM), with a Content-Length
  so Learn sees an ordinary upload rather than a chunked one;
- a receipt is a 200, non-HTML answer holding exactly one 32-hex token, the reference code; the
  sentence around it is localized, so its words are never matched. An SSO or load-balancer sign-in
  page also answers 200 and may carry a 32-hex nonce: HTML, no token or several tokens is a failure
  quoting the first line of what came back (Blackboard's own script fails a 200 without a code);
- an upload is retried only when it provably did not reach Learn: a connection that failed before
  the last byte went out, or an answer of 429 or 5xx (its `Retry-After` honoured). Once the whole
  body went out, a missing answer (read timeout, dropped connection) is `DeliveryUnknown`, never a
  retry: Learn may have queued the data set, and a second copy would be a second data set (issue 13:
  one read timeout became four data sets). 401/403/404 are final and explained, since retrying a
  wrong password only locks accounts;
- status XML is parsed only after refusing DTDs and entities, so a hostile or broken proxy cannot
  make the agent expand entities.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import requests
import requests.adapters

from agent import failpoints, interrupts
from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import DeliveryUnknown, TargetError
from agent.logdigest import collect
from agent.records import CheckResult, Progress, Receipt, RecordLog, Result, Submission
from agent.retry import RetryPolicy, parse_retry_after, retrying
from agent.settings import LearnTargetSettings
from agent.targets.base import ProgressCallback
from agent.targets.http import StreamedBody, new_session, read_start, root_cause, start, without_credentials
from agent.targets.learn_rest import LearnLogClient
from agent.targets.learn_status import Follower, parse_status

log = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"
OPERATIONS = ("store", "refresh", "refreshlegacy", "delete")
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0  # status and check requests; an upload's answer waits read_timeout_seconds
UPLOAD_RETRY = RetryPolicy(attempts=5, first_delay=1.0, cap=60.0)
CHECK_UID = "0" * 32  # a data set that cannot exist, for check()

_REFERENCE = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])")


_HTML_START = re.compile(r"\s*(<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[A-Za-z!/][^<>]*>")


def _web_page(body: str, content_type: str) -> bool:
    """HTML by its first tag, or labelled HTML *and* marked up: a servlet may label Learn's plain sentence
    text/html, and refusing a real receipt would end an accepted upload as FAILED (and re-sent).
    """
    return bool(_HTML_START.match(body)) or ("html" in content_type.lower() and bool(_ANY_TAG.search(body)))


def extract_reference(body: str, content_type: str = "") -> str | None:
    """The reference code (uid) of a receipt, in any language; lowercase, or None when `body` is no receipt.

    A receipt is not a web page (see `_web_page`) and holds exactly one 32-hex token: a sign-in
    page's nonce or a page listing several ids must never be taken for an accepted upload.
    """
    if _web_page(body, content_type):
        return None
    tokens = {token.lower() for token in _REFERENCE.findall(body)}
    return tokens.pop() if len(tokens) == 1 else None


def not_a_receipt(body: str, content_type: str = "") -> str:
    """Why a 200 answer is not a receipt, for the admin: what it was, and its first line."""
    if _web_page(body, content_type):
        what = "a web page (HTML), not an upload receipt (a sign-in page or a proxy in front of Learn?)"
    else:
        count = len({token.lower() for token in _REFERENCE.findall(body)})
        what = "without a reference code" if count == 0 else f"with {count} candidate reference codes, not one"
    return f"{what}; its first line: {first_line(body)}"


def first_line(body: str) -> str:
    """The first non-blank line of an answer, quoted and short."""
    for line in body.splitlines():
        if line.strip():
            return start(line)
    return "(empty)"


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
        timeout: tuple[float, float] | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.session = session or new_session()
        self.retry = retry
        self.timeout = timeout or (CONNECT_TIMEOUT, READ_TIMEOUT)
        self.upload_timeout = timeout or (CONNECT_TIMEOUT, settings.read_timeout_seconds)
        self.clock = clock
        base = without_credentials(settings.url.rstrip("/"))
        integration = quote(settings.integration, safe="")
        self.endpoint = f"{base}/webapps/bb-data-integration-flatfile-{integration}/endpoint"

    def close(self) -> None:
        self.session.close()

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
            return self._scrub(f"could not reach Learn at {url}: {root_cause(exc)}; check url, DNS and firewall")
        return self._scrub(f"request to {url} failed: {exc}")

    # submit ----------------------------------------------------------------------------------
    def _bom_for(self, submission: Submission) -> bytes:
        """A UTF-8 byte-order mark tells Learn "UTF-8": never for a UTF-16 file (it has its own mark)
        or a Latin-1 one (Learn reads a file without a mark as ISO-8859-1, which it is)."""
        if submission.encoding != "utf-8":
            return b""
        mode = self.settings.add_bom
        if mode == "yes" and not submission.has_bom:
            return BOM
        if mode == "auto" and submission.non_ascii and not submission.has_bom:
            return BOM
        return b""

    def submit(self, submission: Submission) -> Receipt:
        """Post the file; retried only when it provably did not arrive (see the module docstring).

        Raises TargetError, or DeliveryUnknown when the whole body went out and no answer came."""
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
            uid, sent = retrying(
                post, self.retry, what=f"posting {submission.name} to Learn", clock=self.clock, stop=submission.stop
            )
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
        before_last = submission.before_last_byte

        def last_piece(sha256: str) -> None:
            if before_last is not None:
                with interrupts.deferred():  # the journal write that decides what a crash means
                    before_last(sha256)

        with StreamedBody(
            submission.path,
            prefix,
            submission.on_sent,
            before_last=last_piece,
            after_last=lambda: failpoints.hit("body-sent"),
        ) as body:
            try:
                with interrupts.abortable():  # a service stop may cut a blocked upload short
                    response = self.session.post(
                        url,
                        data=body,
                        headers=headers,
                        auth=self._auth,
                        timeout=self.upload_timeout,
                        verify=self.settings.verify_tls,
                        allow_redirects=False,
                    )
            except requests.RequestException as exc:
                if body.complete:
                    raise DeliveryUnknown(self._no_answer(submission, exc, url)) from None
                raise TargetError(self._network_problem(exc, url), retryable=True) from None
            sent = body.sent
        with response:
            text = read_start(response)
        code = response.status_code
        if code == 200:
            content_type = response.headers.get("Content-Type", "")
            uid = extract_reference(text, content_type)
            if uid is None:
                raise TargetError(
                    f"Learn answered HTTP 200 for {submission.name} but {not_a_receipt(text, content_type)}; "
                    "the upload is not taken as accepted and cannot be tracked",
                    http_status=200,
                )
            return uid, sent
        if submission.refused is not None:
            submission.refused()  # an answer that is not an acceptance: nothing was queued
        return self._refusal(submission, response, code, text, url)

    def _refusal(self, submission: Submission, response: requests.Response, code: int, text: str, url: str) -> NoReturn:
        """Raise the TargetError that explains a non-200 answer (retryable for 429 and 5xx)."""
        if code in (401, 403):
            raise TargetError(self._refused(code), http_status=code)
        if code == 404:
            raise TargetError(self._no_endpoint(url), http_status=404)
        if code == 429 or code >= 500:
            raise TargetError(
                f"Learn answered HTTP {code}; the answer began: {start(text)}",
                retryable=True,
                http_status=code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if 300 <= code < 400:
            where = response.headers.get("Location", "?")
            raise TargetError(
                f"Learn redirected the upload (HTTP {code}) to {without_credentials(where)}: "
                f"set url of [target:{self.name}] to the final address",
                http_status=code,
            )
        raise TargetError(
            f"Learn rejected {submission.name} (HTTP {code}); the answer began: {start(text)}", http_status=code
        )

    def _no_answer(self, submission: Submission, exc: requests.RequestException, url: str) -> str:
        if isinstance(exc, requests.exceptions.Timeout):
            why = f"no answer within {self.upload_timeout[1]:g} seconds (read_timeout_seconds of [target:{self.name}])"
        else:
            why = f"the connection ended without an answer ({root_cause(exc)})"
        return self._scrub(
            f"the whole of {submission.name} was sent to {without_credentials(url)}, but {why}. Learn may have "
            "accepted it, so it was not sent again"
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
            text = read_start(response, limit=1024 * 1024)
        code = response.status_code
        if code in (401, 403):
            raise TargetError(self._refused(code), http_status=code)
        if code != 200:
            raise TargetError(
                f"Learn answered HTTP {code} for the status of {receipt.reference}; the answer began: {start(text)}",
                retryable=True,
                http_status=code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
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
        return Follower(self.status, self.settings, self.clock, receipt, expected_rows, on_progress, stop).run()

    # record log ------------------------------------------------------------------------------
    def rest_client(self) -> LearnLogClient:
        return LearnLogClient(self.settings, session=self.session, clock=self.clock)

    def record_log(
        self, receipt: Receipt, csv_path: Path, stop: threading.Event | None = None, *, finished: bool = True
    ) -> RecordLog | None:
        """Learn's record-level log over REST, streamed to `csv_path`; None without REST keys."""
        if not self.settings.rest_enabled:
            return None
        entries = self.rest_client().entries(receipt.reference, stop, patient=finished)
        return collect(receipt.reference, entries, csv_path)

    # check -----------------------------------------------------------------------------------
    def _check_rest(self) -> list[CheckResult]:
        """With REST keys: token and entitlement, telling 401, 403 and ready (404) apart."""
        if not self.settings.rest_enabled:
            return []
        ok, detail = self.rest_client().probe()
        return [CheckResult(f"target {self.name} (Learn REST log)", ok, detail)]

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
                f"reached Learn at {without_credentials(base)}, integration "
                f"{self.settings.integration}, credentials accepted",
            ),
            *self._check_rest(),
        ]
