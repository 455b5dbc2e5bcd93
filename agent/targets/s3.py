"""S3 target (`type = s3`, e.g. Handshake's student sync): PUT a file into a write-only folder.

Why it is shaped like this:

- The folder we are given is **write-only**: any GET, HEAD or LIST answers Access Denied. So this
  module never asks whether the bucket exists, never reads the object back and never lists; the
  only signal of success is the PUT itself. A guard on the boto3 client refuses every operation that
  is not part of a PUT, so not even a library-internal probe (botocore's region lookup) goes out.
- Because nothing can be read back, every PUT carries an integrity checksum (SHA-256); S3 rejects
  the body if it arrived damaged. A single PUT sends the digest the inspection computed from its
  own reads (agent.hashing), so the file is not read a second time just to hash it, and a file
  changed since it was checked is refused by S3; multipart parts are checksummed by botocore.
- Bodies are streamed from the open file and never read whole: small files go up with one
  `put_object` (which answers with the ETag for the receipt); files at or above
  `multipart_threshold_mb` use `upload_file` with a `TransferConfig` (multipart, parts streamed).
- Errors are translated into plain words that say what to fix (wrong keys, wrong prefix, wrong
  region, missing bucket, network), with `retryable` set only where a later attempt can succeed.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
)

from agent import interrupts
from agent.clock import SYSTEM_CLOCK, Clock, utcnow
from agent.errors import TargetError
from agent.hashing import base64_digest
from agent.records import CheckResult, Progress, Receipt, Result, Status, Submission, UploadProgress
from agent.retry import RetryPolicy
from agent.settings import JobTargetSettings, S3TargetSettings
from agent.targets.base import ProgressCallback
from agent.targets.s3abort import MultipartAborts
from agent.targets.s3errors import ReadBlockedError, explain_s3_error
from agent.targets.s3keys import handshake_name_warning, normalized_prefix, render_template
from agent.targets.s3retry import RetryAfterHook

log = logging.getLogger(__name__)

MIB = 1024 * 1024
CHECKSUM_ALGORITHM = "SHA256"
TOTAL_MAX_ATTEMPTS = 3  # botocore "standard" retries: the first try plus two more
# A 429/503 with Retry-After is waited out as asked, at most 2 minutes a time (agent.targets.s3retry).
S3_RETRY = RetryPolicy(attempts=TOTAL_MAX_ATTEMPTS, first_delay=1.0, cap=20.0, retry_after_cap=120.0)
MAX_CONCURRENCY = 4  # parallel multipart parts; each is read from disk as it is sent
HANDSHAKE_REGIONS = " (Handshake: eu-central-1; accounts set up before July 2023: eu-west-2)"
# "test" in the name on purpose: importers that skip such names (Handshake never processes a file
# whose name contains "test" or "sample") leave the canary alone instead of importing it as data.
CANARY_STEM = "feed-agent-canary-test-"

# The only S3 operations a PUT (single or multipart) needs. Everything else is refused before it is
# sent, because the bucket is write-only and a read would only produce a confusing Access Denied.
WRITE_OPERATIONS = frozenset(
    {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"}
)

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


# ----------------------------------------------------------------------------------------------
# The boto3 client


def _refuse_reads(model: Any, **_: Any) -> None:
    """botocore `before-call.s3` hook: the write-only guard described in the module docstring."""
    if model.name not in WRITE_OPERATIONS:
        raise ReadBlockedError(operation=model.name)


_SESSION_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None


def _shared_session() -> boto3.session.Session:
    """One boto3 session for every target: loading the S3 model costs ~0.2 s and memory per session.

    Clients get their keys explicitly, so the session's own credential chain is never consulted.
    """
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.session.Session()
    return _SESSION


def make_s3_client(settings: S3TargetSettings | JobTargetSettings) -> Any:
    """A boto3 S3 client for these settings: explicit keys, standard retries, checksums when supported.

    The keys from the config are passed explicitly, so profile files and `AWS_*` variables of the
    service account are never used for them. With `endpoint_url` (S3-compatible stores, tests)
    path-style addressing is used, since such stores rarely have wildcard DNS for buckets.
    """
    config = BotoConfig(
        region_name=settings.region,
        retries={"mode": "standard", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
        request_checksum_calculation="when_supported",
        connect_timeout=15,
        read_timeout=120,
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    with _SESSION_LOCK:  # boto3 sessions are not thread-safe; the clients they make are
        return _shared_session().client(
            "s3",
            region_name=settings.region,
            endpoint_url=settings.endpoint_url or None,
            aws_access_key_id=settings.access_key_id.reveal(),
            aws_secret_access_key=settings.secret_access_key.reveal(),
            verify=settings.verify_tls,
            config=config,
        )


# ----------------------------------------------------------------------------------------------
# The target


class _Tally:
    """s3transfer's Callback hears bytes per part from several threads; `on_sent` wants the running total."""

    def __init__(self, size: int, on_sent: UploadProgress | None) -> None:
        self.size, self.on_sent, self.sent = size, on_sent, 0
        self._lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        if self.on_sent is None:
            return
        with self._lock:
            self.sent = min(self.size, self.sent + amount)
            self.on_sent(self.sent, self.size)


@dataclass(frozen=True)
class Upload:
    """What one successful PUT left behind: where the object is and the ETag S3 gave it."""

    bucket: str
    key: str
    etag: str
    size: int
    checksum: str = ""


class S3Target:
    """Uploads files into a (write-only) S3 folder; also the upload half of the job target."""

    kind = "s3"

    def __init__(
        self,
        settings: S3TargetSettings | JobTargetSettings,
        *,
        client: Any | None = None,
        retry: RetryPolicy = S3_RETRY,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.retry_after = RetryAfterHook(retry, clock, settings.name)
        self.aborts = MultipartAborts()  # what a failed multipart upload left in the bucket
        self.prefix = normalized_prefix(settings.prefix)
        self.handshake_rules = isinstance(settings, S3TargetSettings)
        self._client = client
        self._hooked = False
        self._completed: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the client's connection pool (botocore keeps sockets open otherwise)."""
        with self._lock:
            if self._client is not None:
                self._client.close()

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use (so `inspect` and offline `check` need no network)."""
        with self._lock:
            if self._client is None:
                self._client = make_s3_client(self.settings)
            if not self._hooked:
                events = self._client.meta.events
                events.register("before-call.s3", _refuse_reads, unique_id="feed-agent-refuse-reads")
                events.register(
                    "after-call.s3.CompleteMultipartUpload",
                    self._remember_multipart_etag,
                    unique_id=f"feed-agent-etag-{id(self)}",
                )
                self.retry_after.register(self._client)
                self.aborts.register(self._client, f"feed-agent-aborts-{id(self)}")
                self._hooked = True
            return self._client

    def _remember_multipart_etag(self, parsed: dict[str, Any], **_: Any) -> None:
        """`upload_file` returns nothing, so the ETag of a multipart upload is caught on the way past."""
        bucket, key, etag = parsed.get("Bucket"), parsed.get("Key"), parsed.get("ETag")
        if bucket and key and etag:
            with self._lock:
                self._completed[(str(bucket), str(key))] = str(etag)

    def explain(self, exc: BaseException, key: str) -> TargetError:
        """This target's plain-words error for a failed PUT of `key`."""
        hint = HANDSHAKE_REGIONS if self.handshake_rules else ""
        s = self.settings
        return explain_s3_error(exc, bucket=s.bucket, key=key, region=s.region, region_hint=hint)

    # -- keys ------------------------------------------------------------------------------------

    def object_name(self, submission: Submission, now: datetime | None = None) -> str:
        """The key without the prefix (what the job API calls the file name)."""
        rendered = render_template(self.settings.key, submission, now or utcnow())
        return rendered.lstrip("/")

    def key_for(self, submission: Submission, now: datetime | None = None) -> str:
        """prefix + key template, e.g. `importer-production-uni/20240102_users.csv`."""
        return self.prefix + self.object_name(submission, now)

    def threshold_bytes(self) -> int:
        return max(5 * MIB, int(self.settings.multipart_threshold_mb * MIB))

    # -- upload ----------------------------------------------------------------------------------

    def upload(self, path: Path, key: str, on_sent: UploadProgress | None = None, sha256: str | None = None) -> Upload:
        """PUT one file at `key` (streamed, checksummed); TargetError in plain words on failure.

        `on_sent` hears the bytes as the parts of a multipart upload go out, and the whole size once a
        single PUT is done."""
        bucket = self.settings.bucket
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise TargetError(f"Cannot read {path}: {exc.strerror or exc}") from None
        extra: dict[str, str] = {"ChecksumAlgorithm": CHECKSUM_ALGORITHM}
        content_type = mimetypes.guess_type(path.name)[0]
        if content_type:
            extra["ContentType"] = content_type
        self.aborts.forget(key)
        try:  # a service stop cuts a blocked PUT short (S3 keeps no body that did not arrive whole)
            with interrupts.cut_to_stop(), interrupts.abortable(through_libraries=True):
                if size < self.threshold_bytes():
                    known = {f"Checksum{CHECKSUM_ALGORITHM}": base64_digest(sha256)} if sha256 else {}
                    etag, checksum = self._put_single(path, bucket, key, {**extra, **known})
                    if on_sent is not None:
                        on_sent(size, size)
                else:
                    etag, checksum = self._put_multipart(path, bucket, key, extra, _Tally(size, on_sent)), ""
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            # Before OSError: several botocore network errors also subclass OSError.
            error = self.explain(exc, key)
            leftover = self.aborts.leftover(bucket, key)  # a multipart upload aborted, or left behind
            if not leftover:
                raise error from None
            message = error.message + leftover
            raise TargetError(message, retryable=error.retryable, http_status=error.http_status) from None
        except OSError as exc:
            raise TargetError(f"Cannot read {path}: {exc.strerror or exc}") from None
        log.info("uploaded %s to s3://%s/%s (%d bytes, ETag %s)", path.name, bucket, key, size, etag or "?")
        return Upload(bucket=bucket, key=key, etag=etag, size=size, checksum=checksum)

    def _put_single(self, path: Path, bucket: str, key: str, extra: dict[str, str]) -> tuple[str, str]:
        """One PUT, body streamed from the open file; S3's answer carries the ETag for the receipt."""
        with path.open("rb") as body:
            answer = self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        return str(answer.get("ETag", "")), str(answer.get(f"Checksum{CHECKSUM_ALGORITHM}", ""))

    def _put_multipart(self, path: Path, bucket: str, key: str, extra: dict[str, str], tally: _Tally) -> str:
        """Multipart PUT via s3transfer: parts read from disk as they are sent, aborted on failure."""
        threshold = self.threshold_bytes()
        transfer = TransferConfig(
            multipart_threshold=threshold, multipart_chunksize=threshold, max_concurrency=MAX_CONCURRENCY
        )
        self.client.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=transfer, Callback=tally)
        with self._lock:
            return self._completed.pop((bucket, key), "")

    # -- Target protocol -------------------------------------------------------------------------

    def submit(self, submission: Submission) -> Receipt:
        """Upload the file; the key is the receipt's reference (the only proof S3 gives us)."""
        try:
            key = self.key_for(submission)
        except ValueError as exc:
            raise TargetError(f"Target {self.name}: key template: {exc}") from None
        warning = handshake_name_warning(key[len(self.prefix) :]) if self.handshake_rules else None
        if warning:
            log.warning("%s", warning)
        done = self.upload(submission.path, key, submission.on_sent, submission.sha256)
        details = {
            "bucket": done.bucket,
            "key": done.key,
            "etag": done.etag,
            "size": str(done.size),
            "rows": str(submission.rows),
        }
        if done.checksum:
            details["checksum_sha256"] = done.checksum
        return Receipt(target=self.name, kind=self.kind, reference=done.key, details=details)

    def status(self, receipt: Receipt) -> Progress:
        """Final at once: a PUT that returned is all S3 will ever tell (the folder cannot be read)."""
        rows = _int(receipt.details.get("rows"))
        return Progress(completed=rows, fields={"key": receipt.reference, "state": "uploaded"})

    def wait(
        self,
        receipt: Receipt,
        expected_rows: int,
        *,
        on_progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
    ) -> Result:
        """SUCCESS at once. `stop` is ignored: the upload already happened, nothing is left to wait for."""
        progress = Progress(completed=expected_rows, fields={"key": receipt.reference, "state": "uploaded"})
        if on_progress is not None:
            on_progress(progress)
        bucket = receipt.details.get("bucket", self.settings.bucket)
        return Result(
            status=Status.SUCCESS, progress=progress, message=f"uploaded to s3://{bucket}/{receipt.reference}"
        )

    def check(self, canary: bool = False) -> list[CheckResult]:
        """Validate the settings offline; with `canary`, PUT one small marker object to prove write access."""
        results = self.settings_checks()
        if not canary:
            results.append(
                CheckResult(
                    self._item("write access"),
                    True,
                    "write-only bucket: nothing can be checked without writing; use --canary to PUT a small, "
                    "clearly named marker object",
                )
            )
            return results
        if not all(r.ok for r in results if not r.item.endswith("file names")):
            results.append(CheckResult(self._item("write access"), False, "not tried: fix the above first"))
            return results
        results.append(self.canary_check())
        return results

    # -- checks ----------------------------------------------------------------------------------

    def _item(self, what: str) -> str:
        return f"target {self.name} ({self.settings.type}): {what}"

    def settings_checks(self) -> list[CheckResult]:
        """The offline part of check(): names, region, template and credentials (no network)."""
        return [self._bucket_check(), self._region_check(), *self._key_checks(), self._credentials_check()]

    def _bucket_check(self) -> CheckResult:
        bucket = self.settings.bucket
        if _BUCKET_NAME.fullmatch(bucket):
            return CheckResult(self._item("bucket"), True, bucket)
        detail = f"'{bucket}' is not a valid bucket name (3-63 lowercase letters, digits, . or -)"
        return CheckResult(self._item("bucket"), False, detail)

    def _region_check(self) -> CheckResult:
        region = self.settings.region
        if _REGION_NAME.fullmatch(region):
            return CheckResult(self._item("region"), True, region)
        detail = f"'{region}' does not look like an AWS region (e.g. eu-central-1)"
        return CheckResult(self._item("region"), False, detail)

    def _key_checks(self) -> list[CheckResult]:
        """The key template renders; for Handshake, the key does not make every file ignored."""
        sample = Submission(path=Path("users.csv"), name="users.csv", object=None, operation="upload", rows=0)
        try:
            example_name = self.object_name(sample)
        except ValueError as exc:
            return [CheckResult(self._item("key template"), False, str(exc))]
        example = f"e.g. users.csv -> s3://{self.settings.bucket}/{self.prefix}{example_name}"
        results = [CheckResult(self._item("key template"), True, example)]
        if self.handshake_rules:
            warning = handshake_name_warning(example_name)  # the name, not the vendor's folder
            detail = warning or 'no "test" or "sample" in the key'
            results.append(CheckResult(self._item("file names"), warning is None, detail))
        return results

    def _credentials_check(self) -> CheckResult:
        s = self.settings
        keys = (("access_key_id", s.access_key_id), ("secret_access_key", s.secret_access_key))
        missing = [name for name, value in keys if not value]
        if missing:
            detail = f"{' and '.join(missing)} empty; set it in .env"
            return CheckResult(self._item("credentials"), False, detail)
        return CheckResult(self._item("credentials"), True, "access key id and secret are set")

    def canary_key(self, now: datetime | None = None) -> str:
        stamp = (now or utcnow()).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return f"{self.prefix}{CANARY_STEM}{stamp}.txt"

    def canary_check(self) -> CheckResult:
        """PUT a tiny object that says what it is, and report whether S3 took it."""
        now = utcnow()
        key = self.canary_key(now)
        text = (
            f"Written by feed-agent (target {self.name}) at {now.isoformat(timespec='seconds')} to check "
            "that its keys may write here. It is not a data file; it can be ignored or deleted.\n"
        )
        item = self._item("write access (canary)")
        try:
            self.client.put_object(
                Bucket=self.settings.bucket,
                Key=key,
                Body=text.encode("utf-8"),
                ContentType="text/plain; charset=utf-8",
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            )
        except (ClientError, BotoCoreError) as exc:
            error = self.explain(exc, key)
            return CheckResult(item, False, error.message)
        return CheckResult(item, True, f"wrote s3://{self.settings.bucket}/{key}")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
