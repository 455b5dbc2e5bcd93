"""Job target (`type = job`, e.g. AlumnIQ's warehouse sync): upload to S3, then ask an API to run a job.

AlumnIQ consumes files that land in its bucket only when told to: after the PUT (done by
:class:`agent.targets.s3.S3Target`, reused as is) we `POST` the job's URL with the API key and the
file name as uploaded. A 200 with a job id means *queued*; the job itself runs later (30-60 minutes
for big files) and AlumnIQ notifies `notify_email` / `notify_webhook` of its end, so a file's status
here is QUEUED. With [webhook] on, the pipeline hands each submission its own notification URL
(`Submission.notify_url`), sent as notifyWebhook; `agent.completions` hears the end.

Two things an admin must be able to tell apart, so every job-call error says it: the upload
failed (nothing reached AlumnIQ), or the upload worked and only the job call failed (the file IS in
the bucket; the job can be started by hand). The API key goes only into the JSON body: never into a
log line, an error, a receipt or a URL.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from agent.clock import SYSTEM_CLOCK, Clock, utcnow
from agent.errors import TargetError
from agent.records import CheckResult, Progress, Receipt, Result, Status, Submission
from agent.retry import RetryPolicy, parse_retry_after, retrying
from agent.settings import JobTargetSettings
from agent.targets.base import ProgressCallback
from agent.targets.s3 import S3Target, Upload
from agent.targets.s3keys import render_template

log = logging.getLogger(__name__)

JOB_RETRY = RetryPolicy(attempts=3, first_delay=2.0, factor=5.0, cap=10.0)  # pauses of 2 s, then 10 s
JOB_ID_FIELDS = ("jobId", "jobID", "id")
MESSAGE_FIELDS = ("message", "error", "errorMessage", "detail", "errors")
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0
UNKNOWN_JOB_HINT = (
    " Check the job setting (default {stem}) and job_url against the job names listed in "
    "AlumnIQ Admin (Tasks, Webhooks)."
)
KEY_REFUSED_HINT = (
    "the API key was refused; AlumnIQ keys last about a year: make a new one in AlumnIQ Admin and put it in .env"
)


class JobTarget:
    """Upload with the S3 code, then queue the consuming job; the receipt is the job id."""

    kind = "job"

    def __init__(
        self,
        settings: JobTargetSettings,
        *,
        s3_client: Any | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy = JOB_RETRY,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.retry = retry
        self.clock = clock
        self.settings = settings
        self.name = settings.name
        self.s3 = S3Target(settings, client=s3_client, clock=clock)
        self.session = session or requests.Session()

    def close(self) -> None:
        self.session.close()
        self.s3.close()

    # -- names -----------------------------------------------------------------------------------

    def job_for(self, submission: Submission, now: datetime | None = None) -> str:
        """The job name from the `job` template (default `{stem}`: warehouse.csv -> warehouse)."""
        return render_template(self.settings.job, submission, now or utcnow())

    def url_for(self, job: str) -> str:
        """`job_url` with `{job}` filled in (quoted, so a job name cannot change the URL's shape)."""
        return self.settings.job_url.replace("{job}", quote(job, safe=""))

    # -- Target protocol -------------------------------------------------------------------------

    def submit(self, submission: Submission) -> Receipt:
        """PUT the file, then POST the job; a failure after the PUT says the file is in the bucket."""
        now = utcnow()
        try:
            filename = self.s3.object_name(submission, now)
            job = self.job_for(submission, now)
        except ValueError as exc:
            raise TargetError(f"Target {self.name}: {exc}") from None
        upload = self.s3.upload(submission.path, self.s3.prefix + filename, submission.on_sent, submission.sha256)
        url = self.url_for(job)
        job_id = self._queue_job(url, job, filename, upload, submission.notify_url)
        log.info("queued %s as job %s (%s) for s3://%s/%s", submission.name, job_id, job, upload.bucket, upload.key)
        details = {
            "bucket": upload.bucket,
            "key": upload.key,
            "etag": upload.etag,
            "filename": filename,
            "job": job,
            "job_url": url,
            "rows": str(submission.rows),
            **self._completion(submission),
        }
        return Receipt(target=self.name, kind=self.kind, reference=job_id, details=details)

    def status(self, receipt: Receipt) -> Progress:
        """Final at once: the job runs at AlumnIQ later and only their notification tells its end."""
        return Progress(completed=_int(receipt.details.get("rows")), fields=self._fields(receipt))

    def wait(
        self,
        receipt: Receipt,
        expected_rows: int,
        *,
        on_progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
    ) -> Result:
        """QUEUED at once with who will hear about the job's end (`stop` is moot: nothing to wait for)."""
        progress = Progress(completed=expected_rows, fields=self._fields(receipt))
        if on_progress is not None:
            on_progress(progress)
        message = self._queued_message(receipt)
        return Result(status=Status.QUEUED, progress=progress, message=message)

    def check(self, canary: bool = False) -> list[CheckResult]:
        """The S3 checks plus the job settings; never POSTs (that would start a job)."""
        return [*self.s3.check(canary=canary), *self.job_checks()]

    # -- the job call ----------------------------------------------------------------------------

    def _queue_job(self, url: str, job: str, filename: str, upload: Upload, notify_url: str | None = None) -> str:
        """POST the job with a few tries on 5xx, 429 and network errors; the job id, or TargetError.

        A retry after a lost answer may queue the job twice; that consumes the same file twice, which
        is what a reprocess does anyway, whereas not retrying would leave the file unconsumed.
        """
        body: dict[str, str] = {"filename": filename}
        if self.settings.notify_email:
            body["notifyEmail"] = self.settings.notify_email
        webhook = notify_url or self.settings.notify_webhook
        if webhook:
            body["notifyWebhook"] = webhook
        in_bucket = (
            f"The file IS in the bucket at s3://{upload.bucket}/{upload.key}; only the job call failed: "
            f"start job '{job}' for {filename} in AlumnIQ Admin, or move the file back into the drop "
            "folder to upload it and call the job again."
        )

        def call() -> str:
            try:
                response = self._post(url, body)
            except requests.RequestException as exc:
                problem = f"the job API at {_origin(url)} could not be reached ({type(exc).__name__})"
                raise TargetError(problem, retryable=True) from None
            if response.status_code < 500 and response.status_code != 429:
                return self._job_id_or_error(response, job, in_bucket)
            raise TargetError(
                f"the job API answered HTTP {response.status_code}: {self._api_message(response)}",
                retryable=True,
                http_status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )

        try:
            return retrying(call, self.retry, what=f"queueing job {job}", clock=self.clock)
        except TargetError as exc:
            if not exc.retryable:
                raise
            raise TargetError(
                f"Job '{job}' was not queued: {exc.message} ({self.retry.attempts} tries). {in_bucket}",
                retryable=True,
            ) from None

    def _post(self, url: str, body: dict[str, str]) -> requests.Response:
        """The one place the API key goes on the wire (JSON body, never the URL)."""
        payload = {"apiKey": self.settings.api_key.reveal(), **body}
        return self.session.post(
            url,
            json=payload,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            verify=self.settings.verify_tls,
            headers={"Accept": "application/json"},
        )

    def _job_id_or_error(self, response: requests.Response, job: str, in_bucket: str) -> str:
        """Read a 2xx/4xx answer: the job id on success, else a final TargetError quoting the API."""
        status = response.status_code
        if status in (401, 403):
            raise TargetError(
                f"Job '{job}' was not queued (HTTP {status}): {KEY_REFUSED_HINT}. {in_bucket}", http_status=status
            )
        if status >= 300:
            said = self._api_message(response)
            hint = UNKNOWN_JOB_HINT if "does not exist" in said.lower() or status == 404 else ""
            message = f"Job '{job}' was refused (HTTP {status}): {said}.{hint} {in_bucket}"
            raise TargetError(message, http_status=status)
        job_id = _job_id(_json(response))
        if job_id is None:
            said = self._api_message(response)
            raise TargetError(
                f"Job '{job}': the API answered HTTP {status} without a job id ({said}), so it is not known "
                f"whether the job was queued; look in AlumnIQ Admin. {in_bucket}",
                http_status=status,
            )
        return job_id

    def _api_message(self, response: requests.Response) -> str:
        """What the API said, short, on one line, with the API key blanked if it was echoed back."""
        said = _said(_json(response))
        if not said:
            said = response.text.strip() or response.reason or "no message"
        said = " ".join(said.split())[:300].rstrip(".")
        secret = self.settings.api_key.reveal()
        return said.replace(secret, "***") if secret else said

    # -- messages and checks ---------------------------------------------------------------------

    def _fields(self, receipt: Receipt) -> dict[str, str]:
        return {
            "job_id": receipt.reference,
            "job": receipt.details.get("job", ""),
            "key": receipt.details.get("key", ""),
            "state": "queued",
        }

    def _completion(self, submission: Submission) -> dict[str, str]:
        """Who hears about the job's end, for the QUEUED report (never the notification URL itself)."""
        s = self.settings
        if submission.notify_url:
            return {"completion": "webhook", "notify_within_hours": f"{s.notify_within_hours:g}"}
        if s.notify_email:
            return {"completion": "email", "notify_email": s.notify_email}
        return {"completion": "webhook-static" if s.notify_webhook else "none"}

    def _queued_message(self, receipt: Receipt) -> str:
        job_id, s = receipt.reference, self.settings
        completion = receipt.details.get("completion", "none")
        if completion == "webhook":
            return f"queued as job {job_id}; AlumnIQ calls feed-agent back when it completes"
        if completion == "email":
            return f"queued as job {job_id}; AlumnIQ notifies {s.notify_email} when it completes"
        if completion == "webhook-static" and s.notify_webhook:
            return f"queued as job {job_id}; AlumnIQ calls {s.notify_webhook} when it completes"
        return f"queued as job {job_id}; nobody will be told when it completes"

    def _item(self, what: str) -> str:
        return f"target {self.name} (job): {what}"

    def job_checks(self) -> list[CheckResult]:
        """Offline: the job URL is a well-formed http(s) URL, the API key is set, notify_email looks right."""
        results = [self._url_check()]
        key_item = self._item("API key")
        if self.settings.api_key:
            results.append(CheckResult(key_item, True, "set (not sent: a test call would start a job)"))
        else:
            results.append(CheckResult(key_item, False, "api_key is empty; set it in .env"))
        email = self.settings.notify_email
        if email is not None and "@" not in email:
            detail = f"'{email}' is not an email address"
            results.append(CheckResult(self._item("notify_email"), False, detail))
        return results

    def _url_check(self) -> CheckResult:
        name = "warehouse.csv"
        sample = Submission(path=Path(name), name=name, object=None, operation="upload", rows=0)
        try:
            url = self.url_for(self.job_for(sample))
        except ValueError as exc:
            return CheckResult(self._item("job"), False, str(exc))
        parts = urlsplit(url)
        template = self.settings.job_url
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return CheckResult(self._item("job URL"), False, f"'{template}' is not an http(s) URL")
        note = "" if "{job}" in template else " (no {job} in job_url: every file goes to this one job)"
        return CheckResult(self._item("job URL"), True, f"e.g. {name} -> POST {url}{note}")


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _said(data: Any) -> str:
    """The API's own words in a JSON answer: a string field first, whatever its name.

    AlumnIQ answers `{"error": true, "message": "Job 'x' does not exist"}`: the flag says *that* it
    failed, the string says *what* failed, so a boolean is never the message. Lists or objects
    (e.g. `errors: [...]`) are quoted as JSON only when no field holds a plain string.
    """
    if not isinstance(data, dict):
        return ""
    present = [data[field] for field in MESSAGE_FIELDS if data.get(field) not in (None, "", [], {})]
    for value in present:
        if isinstance(value, str) and value.strip():
            return value
    for value in present:
        if not isinstance(value, (bool, int, float)):
            return json.dumps(value)
    return ""


def _job_id(data: Any) -> str | None:
    """The job id at the top level or under `data`, as jobId, jobID or id."""
    if not isinstance(data, dict):
        return None
    for container in (data, data.get("data")):
        if isinstance(container, dict):
            for field in JOB_ID_FIELDS:
                value = container.get(field)
                if value not in (None, "") and not isinstance(value, (dict, list, bool)):
                    return str(value)
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
