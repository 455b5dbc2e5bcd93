"""S3 target (`type = s3`, e.g. Handshake's student sync): PUT a file into a write-only folder.

Why it is shaped like this:

- The folder we are given is **write-only**: any GET, HEAD or LIST answers Access Denied. So this
  module never asks whether the bucket exists, never reads the object back and never lists; the
  only signal of success is the PUT itself. A guard on the boto3 client refuses every operation that
  is not part of a PUT, so not even a library-internal probe (botocore's region lookup) goes out.
- Because nothing can be read back, every PUT carries an integrity checksum (SHA-256, computed by
  botocore while it streams the file); S3 rejects the body if it arrived damaged.
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
import string
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from agent.clock import utcnow
from agent.config import JobTargetSettings, S3TargetSettings
from agent.errors import TargetError
from agent.records import CheckResult, Progress, Receipt, Result, Status, Submission
from agent.targets.base import ProgressCallback

log = logging.getLogger(__name__)

MIB = 1024 * 1024
KEY_FIELDS = ("name", "stem", "suffix", "object", "date")
DEFAULT_DATE_FORMAT = "%Y%m%d"
CHECKSUM_ALGORITHM = "SHA256"
TOTAL_MAX_ATTEMPTS = 3  # botocore "standard" retries: the first try plus two more
MAX_CONCURRENCY = 4  # parallel multipart parts; each is read from disk as it is sent
HANDSHAKE_IGNORED_WORDS = ("test", "sample")
HANDSHAKE_REGIONS = " (Handshake: eu-central-1; accounts set up before July 2023: eu-west-2)"
CANARY_STEM = "feed-agent-canary-"

# The only S3 operations a PUT (single or multipart) needs. Everything else is refused before it is
# sent, because the bucket is write-only and a read would only produce a confusing Access Denied.
WRITE_OPERATIONS = frozenset(
    {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"}
)

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


# ----------------------------------------------------------------------------------------------
# Key templates


class _UtcDate:
    """`{date}` / `{date:%Y-%m-%d}` in a key template: strftime on the UTC time of the upload.

    UTC so that the same file sent from servers in different time zones (or across a DST change)
    gets the same, predictable name.
    """

    def __init__(self, moment: datetime) -> None:
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
        self.moment = aware.astimezone(timezone.utc)

    def __format__(self, spec: str) -> str:
        return self.moment.strftime(spec or DEFAULT_DATE_FORMAT)


def template_fields(template: str) -> list[str]:
    """The field names a template uses; ValueError (in plain words) for an unknown or malformed one."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        example = "{date:%Y%m%d}_{name}"
        raise ValueError(f"'{template}' is not a valid template ({exc}); use e.g. {example}") from None
    names = [field for _, field, _, _ in parsed if field is not None]
    allowed = ", ".join("{" + f + "}" for f in KEY_FIELDS)
    for field in names:
        if field not in KEY_FIELDS:
            shown = "{}" if field == "" else "{" + field + "}"
            raise ValueError(f"'{template}' uses {shown}, which is not a known field; allowed: {allowed}")
    return names


def render_template(template: str, submission: Submission, now: datetime) -> str:
    """Fill a key (or job) template for one file.

    Fields: `{name}` the arrival name (`users.csv`), `{stem}` (`users`), `{suffix}` (`.csv`, with
    the dot, so `{stem}{suffix}` is the name), `{object}` (Learn slug, empty here) and `{date:FMT}`
    (strftime, UTC; plain `{date}` is `%Y%m%d`). Raises ValueError with a fix-it message.
    """
    template_fields(template)
    path = PurePosixPath(submission.name)
    values = {
        "name": submission.name,
        "stem": path.stem,
        "suffix": path.suffix,
        "object": submission.object or "",
        "date": _UtcDate(now),
    }
    try:
        rendered = template.format_map(values)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"'{template}' cannot be filled in for {submission.name}: {exc}") from None
    if not rendered.strip("/"):
        raise ValueError(f"'{template}' gives an empty name for {submission.name}")
    return rendered


def normalized_prefix(prefix: str) -> str:
    """The folder part of every key: no leading '/', exactly one trailing '/' (or empty).

    Vendors hand out a folder (`importer-production-uni/`, `production/warehouse/`); admins often
    drop the trailing slash, which would otherwise glue the folder and the file name together and
    land outside the folder the keys may write to.
    """
    cleaned = prefix.strip().lstrip("/")
    return cleaned if not cleaned or cleaned.endswith("/") else cleaned + "/"


def handshake_name_warning(name: str) -> str | None:
    """Handshake never processes a file automatically when its name contains "test" or "sample"."""
    lowered = name.lower()
    for word in HANDSHAKE_IGNORED_WORDS:
        if word in lowered:
            return (
                f"'{name}' contains \"{word}\": Handshake never processes files whose name contains "
                '"test" or "sample" automatically; rename the file (or the key template) '
                "if it is real data"
            )
    return None


# ----------------------------------------------------------------------------------------------
# The boto3 client


class ReadBlockedError(BotoCoreError):
    """Raised before sending any S3 operation that is not part of a PUT.

    In this module the only source of such a call is botocore's own region redirect, which probes
    the bucket with HEAD when S3 says "wrong region" without naming the right one.
    """

    fmt = "feed-agent blocked S3 {operation}: the bucket is write-only and is never read"


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
# Errors in plain words


def _client_error(exc: BaseException) -> BaseException:
    """`upload_file` wraps a ClientError in S3UploadFailedError; the original is on `__context__`."""
    if isinstance(exc, S3UploadFailedError):
        inner = exc.__cause__ or exc.__context__
        if isinstance(inner, (ClientError, BotoCoreError)):
            return inner
    return exc


def _bucket_region(error: ClientError) -> str | None:
    """The bucket's real region when S3 tells it (header on redirects, field on signing errors)."""
    headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get("x-amz-bucket-region") or error.response.get("Error", {}).get("Region")
    return str(region) if region else None


REGION_CODES = frozenset(
    {
        "AuthorizationHeaderMalformed",
        "PermanentRedirect",
        "IllegalLocationConstraintException",
        "IllegalLocationConstraint",
        "301",
        "TemporaryRedirect",
    }
)
CLOCK_CODES = frozenset({"RequestTimeTooSkewed", "RequestExpired"})
DAMAGE_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})


def explain_s3_error(exc: BaseException, *, bucket: str, key: str, region: str, region_hint: str = "") -> TargetError:
    """Turn a boto3/botocore exception into a TargetError an admin can act on (never a secret).

    `region_hint` is appended to wrong-region messages (Handshake's known regions, for example).
    """
    where = f"s3://{bucket}/{key}"
    cause = _client_error(exc)
    if isinstance(cause, ClientError):
        return _explain_client_error(cause, where=where, bucket=bucket, key=key, region=region, region_hint=region_hint)
    if isinstance(cause, ReadBlockedError):
        return TargetError(
            f"Upload to {where} failed: S3 says the bucket is not in region {region}, and finding the "
            "right region would need a read the write-only bucket does not allow. Set region to the one "
            f"the vendor gave you{region_hint}."
        )
    if isinstance(cause, SSLError):
        return TargetError(
            f"Upload to {where} failed: the TLS certificate of the S3 endpoint was not trusted ({cause}). "
            "If the store uses a private certificate authority, set verify_tls to the CA bundle's path."
        )
    if isinstance(
        cause, (EndpointConnectionError, BotoConnectionError, ConnectionClosedError, ReadTimeoutError, HTTPClientError)
    ):
        return TargetError(
            f"Upload to {where} failed: the S3 endpoint could not be reached ({cause}). This is usually "
            "temporary (network, proxy or firewall); the file will be sent again.",
            retryable=True,
        )
    if isinstance(cause, (ParamValidationError, InvalidRegionError, NoRegionError)):
        return TargetError(f"Upload to {where} failed: the settings do not make a valid S3 request ({cause}).")
    if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
        return TargetError(f"Upload to {where} failed: access_key_id or secret_access_key is empty; set both in .env.")
    if isinstance(cause, S3UploadFailedError):
        return TargetError(f"Upload to {where} failed: {cause}", retryable=True)
    if isinstance(cause, BotoCoreError):
        return TargetError(f"Upload to {where} failed: {cause}", retryable=True)
    return TargetError(f"Upload to {where} failed: {type(cause).__name__}: {cause}")


def _explain_client_error(
    error: ClientError, *, where: str, bucket: str, key: str, region: str, region_hint: str
) -> TargetError:
    info = error.response.get("Error", {})
    code = str(info.get("Code", ""))
    said = str(info.get("Message", "")).strip() or code
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    folder = key.rsplit("/", 1)[0] + "/" if "/" in key else "(the top of the bucket)"

    def fail(text: str, retryable: bool = False) -> TargetError:
        return TargetError(f"Upload to {where} failed: {text}", retryable=retryable, http_status=status)

    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return fail(
            f"S3 answered Access Denied. The keys were accepted but may not write to {folder} in bucket "
            f"{bucket}: check that prefix is exactly the folder the vendor gave you, that bucket is "
            "spelled right, and that the keys are the current ones (they may have been rotated)."
        )
    if code == "InvalidAccessKeyId":
        return fail(
            "S3 does not know this access key id. Copy access_key_id again from the vendor "
            "(keys may have been rotated or revoked)."
        )
    if code == "SignatureDoesNotMatch":
        return fail(
            "the secret access key is wrong (S3 could not verify the request signature). Copy "
            "secret_access_key again from the vendor, without spaces."
        )
    if code == "NoSuchBucket":
        return fail(f"bucket '{bucket}' does not exist. Check the bucket setting against the vendor's.")
    if code in REGION_CODES:
        actual = _bucket_region(error)
        where_it_is = f"the bucket is in {actual}" if actual else "the bucket is in another region"
        return fail(
            f"{where_it_is}, not {region} (S3 said {code}: {said}). Set region to the bucket's region{region_hint}."
        )
    if code in CLOCK_CODES:
        return fail(f"S3 says this computer's clock is wrong ({said}). Fix the clock (enable NTP).")
    if code == "InvalidBucketName":
        return fail(f"'{bucket}' is not a valid bucket name ({said}).")
    if code in DAMAGE_CODES or code.startswith("InvalidChecksum"):
        return fail(f"the file arrived damaged (S3 said {code}: {said}); send it again.", retryable=True)
    retryable = (isinstance(status, int) and status >= 500) or code in ("SlowDown", "RequestTimeout")
    return fail(f"S3 answered {code or status}: {said}.", retryable=retryable)


# ----------------------------------------------------------------------------------------------
# The target


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

    def __init__(self, settings: S3TargetSettings | JobTargetSettings, *, client: Any | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.prefix = normalized_prefix(settings.prefix)
        self.handshake_rules = isinstance(settings, S3TargetSettings)
        self._client = client
        self._hooked = False
        self._completed: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

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

    def upload(self, path: Path, key: str) -> Upload:
        """PUT one file at `key` (streamed, checksummed); TargetError in plain words on failure."""
        bucket = self.settings.bucket
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise TargetError(f"Cannot read {path}: {exc.strerror or exc}") from None
        extra: dict[str, str] = {"ChecksumAlgorithm": CHECKSUM_ALGORITHM}
        content_type = mimetypes.guess_type(path.name)[0]
        if content_type:
            extra["ContentType"] = content_type
        try:
            if size < self.threshold_bytes():
                etag, checksum = self._put_single(path, bucket, key, extra)
            else:
                etag, checksum = self._put_multipart(path, bucket, key, extra), ""
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            # Before OSError: several botocore network errors also subclass OSError.
            raise self.explain(exc, key) from None
        except OSError as exc:
            raise TargetError(f"Cannot read {path}: {exc.strerror or exc}") from None
        log.info("uploaded %s to s3://%s/%s (%d bytes, ETag %s)", path.name, bucket, key, size, etag or "?")
        return Upload(bucket=bucket, key=key, etag=etag, size=size, checksum=checksum)

    def _put_single(self, path: Path, bucket: str, key: str, extra: dict[str, str]) -> tuple[str, str]:
        """One PUT, body streamed from the open file; S3's answer carries the ETag for the receipt."""
        with path.open("rb") as body:
            answer = self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        return str(answer.get("ETag", "")), str(answer.get(f"Checksum{CHECKSUM_ALGORITHM}", ""))

    def _put_multipart(self, path: Path, bucket: str, key: str, extra: dict[str, str]) -> str:
        """Multipart PUT via s3transfer: parts read from disk as they are sent, aborted on failure."""
        threshold = self.threshold_bytes()
        transfer = TransferConfig(
            multipart_threshold=threshold, multipart_chunksize=threshold, max_concurrency=MAX_CONCURRENCY
        )
        self.client.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=transfer)
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
        done = self.upload(submission.path, key)
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
