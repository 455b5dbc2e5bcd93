"""JobApiSimulator: the product's stand-in for AlumnIQ's job API (`shared/reference/destinations.md`).

`POST {base_path}/{job}` with a JSON body holding `apiKey`, `filename` and optionally `notifyEmail`
and `notifyWebhook` (or the newer `notificationSettings.emails` / `.webhook`):
- 401 `{"error": true, "message": ...}` for a wrong key; 400 for an unknown job ("Job 'x' does not
  exist"), a missing filename or a body that is not a JSON object; 200 with a `jobId` when queued.
- Fault mode (for rehearsals and tests): `throttle(n, status, retry_after)` answers the next n job
  calls 429 or 503 with `Retry-After`, as a busy API does; the agent must wait as asked (capped).
- With a webhook, the stand-in later POSTs a JSON notification there, per the outcome the test or
  demo set for the job: `success`, `failure` (with a message) or `never`.

Invented, because AlumnIQ does not publish them: the order of the checks (key, job, filename), the
`X-API-Key-Days-Remaining` header (AlumnIQ says a response header tells the days left, not its
name), and the notification payload `{"jobId", "job", "filename", "success", "status", "message",
"finishedAt"}`. The agent must not rely on that payload's shape. Emails are recorded, never sent.
Every request and every notification is recorded for assertions.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from agent.simulator.httpd import Handler, Reply, Server

OUTCOMES = ("success", "failure", "never")
DEFAULT_BASE_PATH = "/api/v1/warehouse-sync"
DAYS_LEFT_HEADER = "X-API-Key-Days-Remaining"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # webhooks go direct, never via a proxy


@dataclass(frozen=True)
class JobRequest:
    """One request as received, with the status it was answered."""

    method: str
    path: str
    job: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or None
    raw: bytes
    status: int
    job_id: str | None = None


@dataclass(frozen=True)
class Notification:
    """One webhook delivery attempt: the payload, and the receiver's status or the error."""

    job_id: str
    url: str
    payload: dict[str, Any]
    status: int | None
    error: str = ""


@dataclass(frozen=True)
class Outcome:
    kind: str  # success | failure | never
    message: str = ""


class JobApiSimulator:
    """An AlumnIQ-like job endpoint on a background thread (`with JobApiSimulator() as jobs:`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = "alumniq-api-key",
        jobs: Iterable[str] = ("warehouse",),
        base_path: str = DEFAULT_BASE_PATH,
        notify_seconds: float = 0.2,
        key_days_left: int = 300,
    ) -> None:
        self.api_key = api_key
        self.jobs = set(jobs)
        self.base_path = base_path.rstrip("/")
        self.notify_seconds = notify_seconds
        self.key_days_left = key_days_left
        self.default_outcome = Outcome("success")
        self.on_event: Callable[[str], None] | None = None
        self._outcomes: dict[str, Outcome] = {}
        self._throttle: tuple[int, int, int | None] = (0, 429, None)  # calls left, status, Retry-After
        self._requests: list[JobRequest] = []
        self._notifications: list[Notification] = []
        self._replies: list[Reply] = []
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = Server((host, port), self, software="JobApiSimulator/1.0")
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    # Life cycle ---------------------------------------------------------------------------------
    def start(self) -> JobApiSimulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"job-api-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> JobApiSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Configuration and observation --------------------------------------------------------------
    @property
    def job_url(self) -> str:
        """The URL template with `{job}`, as the agent's job_url setting takes it."""
        return f"{self.url}{self.base_path}/{{job}}"

    def url_for(self, job: str) -> str:
        return f"{self.url}{self.base_path}/{job}"

    def set_outcome(self, job: str, kind: str, message: str = "") -> None:
        """How the job's next runs end: success, failure (with `message`) or never."""
        if kind not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        with self._lock:
            self._outcomes[job] = Outcome(kind, message)

    def throttle(self, count: int, status: int = 429, retry_after: int | None = 1) -> None:
        """The next `count` job calls answer `status` (429 or 503) with `Retry-After` (None: without)."""
        if status not in (429, 503) or count < 0:
            raise ValueError("throttle answers 429 or 503, for zero or more calls")
        with self._lock:
            self._throttle = (count, status, retry_after)

    def _throttled(self) -> tuple[int, dict[str, str]] | None:
        """Uses up one throttled call: (status, headers), or None when none is left."""
        with self._lock:
            left, status, retry_after = self._throttle
            if left <= 0:
                return None
            self._throttle = (left - 1, status, retry_after)
        return status, ({} if retry_after is None else {"Retry-After": str(retry_after)})

    @property
    def requests(self) -> list[JobRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def notifications(self) -> list[Notification]:
        with self._lock:
            return list(self._notifications)

    @property
    def replies(self) -> list[Reply]:
        with self._lock:
            return list(self._replies)

    @property
    def pending(self) -> int:
        """Notifications scheduled and not yet attempted (stop() cancels them)."""
        with self._lock:
            return sum(timer.is_alive() for timer in self._timers)

    @property
    def queued(self) -> list[str]:
        return [r.job_id for r in self.requests if r.job_id]

    def wait_for_notifications(self, count: int, timeout: float = 30) -> bool:
        """True once `count` webhook deliveries have been attempted."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._notifications) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    # Requests -----------------------------------------------------------------------------------
    def record(self, reply: Reply) -> None:
        with self._lock:
            self._replies.append(reply)

    def dispatch(self, handler: Handler, method: str) -> None:
        path = handler.url_path
        prefix = self.base_path + "/"
        job = path[len(prefix) :] if path.startswith(prefix) else ""
        if not job or "/" in job:
            handler.drain_or_close()
            self._answer(handler, method, job, b"", None, 404, {"error": True, "message": f"Nothing at {path}"})
            return
        if method != "POST":
            handler.drain_or_close()
            self._answer(handler, method, job, b"", None, 405, {"error": True, "message": "Use POST to run a job"})
            return
        raw = handler.read_small_body() or b""
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = None
        throttled = self._throttled()
        if throttled is not None:
            status, headers = throttled
            answer = {"error": True, "message": "Too many requests; try again later (fault throttle)"}
            self._answer(handler, method, job, raw, body, status, answer, headers)
            return
        status, answer = self._decide(job, body)
        self._answer(handler, method, job, raw, body, status, answer)

    def _decide(self, job: str, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            return 400, {"error": True, "message": "The request body must be a JSON object"}
        if body.get("apiKey") != self.api_key:
            return 401, {"error": True, "message": "Invalid or expired API key"}
        if job not in self.jobs:
            return 400, {"error": True, "message": f"Job '{job}' does not exist"}
        filename = body.get("filename")
        if not isinstance(filename, str) or not filename:
            return 400, {"error": True, "message": "Missing required attribute: filename"}
        job_id = str(uuid.uuid4())
        answer = {"error": False, "jobId": job_id, "job": job, "filename": filename, "status": "queued"}
        answer["message"] = f"Job '{job}' queued for {filename}"
        return 200, answer

    def _answer(
        self,
        handler: Handler,
        method: str,
        job: str,
        raw: bytes,
        body: Any,
        status: int,
        answer: dict[str, Any],
        extra: dict[str, str] | None = None,
    ) -> None:
        job_id = answer.get("jobId") if status == 200 else None
        headers = {DAYS_LEFT_HEADER: str(self.key_days_left)} if status == 200 else dict(extra or {})
        request = JobRequest(method, handler.url_path, job, dict(handler.headers.items()), body, raw, status, job_id)
        with self._lock:
            self._requests.append(request)
        self._event(f"job API {method} {job or handler.url_path}: {status} {answer.get('message', '')}")
        if job_id:
            self._schedule(job_id, job, body)  # before answering: whoever reads the answer sees it pending
        handler.reply_json(status, answer, headers=headers)

    # Notifications ------------------------------------------------------------------------------
    def _schedule(self, job_id: str, job: str, body: dict[str, Any]) -> None:
        settings = body.get("notificationSettings")
        url = body.get("notifyWebhook") or (settings.get("webhook") if isinstance(settings, dict) else None)
        with self._lock:
            outcome = self._outcomes.get(job, self.default_outcome)
        if not isinstance(url, str) or not url or outcome.kind == "never":
            return
        timer = threading.Timer(self.notify_seconds, self._deliver, args=(job_id, job, body["filename"], url, outcome))
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()

    def _deliver(self, job_id: str, job: str, filename: str, url: str, outcome: Outcome) -> None:
        succeeded = outcome.kind == "success"
        payload = {
            "jobId": job_id,
            "job": job,
            "filename": filename,
            "success": succeeded,
            "status": "success" if succeeded else "failed",
            "message": outcome.message or ("Job completed" if succeeded else "Job failed"),
            "finishedAt": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        status: int | None = None
        error = ""
        try:
            with _OPENER.open(request, timeout=10) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            error = str(exc)
        self._event(f"job API: notified {url} of {job_id} ({payload['status']}): {status or error}")
        with self._changed:
            self._notifications.append(Notification(job_id, url, payload, status, error))
            self._changed.notify_all()

    def _event(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)
