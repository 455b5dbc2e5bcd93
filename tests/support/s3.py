"""pytest fixtures: s3. A real S3 (moto's server) with IAM enforced, and a stand-in for a job API.

- `moto_endpoint` (session): a `ThreadedMotoServer` on 127.0.0.1 (free port), its access log
  silenced. One per session because starting Flask per test is slow; state is wiped per test.
- `write_only_s3` -> :class:`WriteOnlyBucket`: fresh state, a bucket, a **writer** user allowed only
  `s3:PutObject` + `s3:AbortMultipartUpload` on `<bucket>/<prefix>*` (like a Handshake or AlumnIQ
  folder) and an **admin** user (everything) for reading back; IAM enforcement is switched on
  before the test runs and off after. Override the `write_only_prefix` fixture to change the folder.
- `job_api` -> :class:`JobApiStandIn`: a ThreadingHTTPServer on port 0 that behaves like AlumnIQ's
  job endpoint (checks apiKey, 400 for an unknown job or a missing filename, 401 for a bad key,
  200 with a jobId) and records every request; `script()` queues canned answers (5xx, other shapes),
  `throttle()` a 429/503 with Retry-After.
- `record_requests(client)`: every HTTP request a boto3 client sends, via botocore's `before-send`.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from agent.settings import JobTargetSettings, S3TargetSettings, Secret
from tests.support.net import free_port, reply, serving

MOTO_REGION = "eu-central-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3/IAM server on loopback for the whole session (IAM not enforced until asked)."""
    werkzeug = logging.getLogger("werkzeug")
    old_level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)  # moto's per-request access log goes to stderr otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        inner = getattr(server, "_server", None)
        if inner is not None:
            inner.server_close()  # stop() shuts the loop down but leaves the socket open
        werkzeug.setLevel(old_level)


_SESSION: list[boto3.session.Session] = []


def _test_session() -> boto3.session.Session:
    """One boto3 session for all test-side clients: each new session reloads the service models."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str


@dataclass
class WriteOnlyBucket:
    """A bucket whose `writer` may only PUT under `prefix`; `admin` may do anything (for checking)."""

    endpoint: str
    bucket: str
    prefix: str
    writer: Keys
    admin: Keys
    region: str = MOTO_REGION

    _admin: Any = None

    def client(self, keys: Keys) -> Any:
        return _test_session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
        )

    def admin_client(self) -> Any:
        """The admin's client (made once per test: building a client is the slow part here)."""
        if self._admin is None:
            self._admin = self.client(self.admin)
        return self._admin

    def read(self, key: str) -> bytes:
        """The object's bytes, read with the admin user (the writer cannot read)."""
        body: bytes = self.admin_client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def object_keys(self) -> list[str]:
        listing = self.admin_client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def etag(self, key: str) -> str:
        return str(self.admin_client().head_object(Bucket=self.bucket, Key=key)["ETag"])

    def put_only_keys(self) -> Keys:
        """A second writer allowed only s3:PutObject (no s3:AbortMultipartUpload), like many vendor keys."""
        iam = _test_session().client(
            "iam",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.admin.access_key_id,
            aws_secret_access_key=self.admin.secret_access_key,
        )
        return _make_user(iam, "put-only", _policy("s3:PutObject", f"arn:aws:s3:::{self.bucket}/{self.prefix}*"))

    def incomplete_uploads(self) -> list[tuple[str, str]]:
        """(key, UploadId) of every multipart upload started and neither completed nor aborted."""
        listing = self.admin_client().list_multipart_uploads(Bucket=self.bucket)
        return [(item["Key"], item["UploadId"]) for item in listing.get("Uploads", [])]

    def settings(self, keys: Keys | None = None, **overrides: Any) -> S3TargetSettings:
        """S3 target settings for the writer (or `keys`), with a 5 MiB multipart threshold."""
        used = keys or self.writer
        base = S3TargetSettings(
            name="handshake",
            bucket=self.bucket,
            prefix=self.prefix,
            region=self.region,
            access_key_id=Secret(used.access_key_id),
            secret_access_key=Secret(used.secret_access_key),
            endpoint_url=self.endpoint,
            multipart_threshold_mb=5.0,
        )
        return replace(base, **overrides)

    def job_settings(self, job_url: str, api_key: str, **overrides: Any) -> JobTargetSettings:
        base = JobTargetSettings(
            name="alumniq",
            bucket=self.bucket,
            prefix=self.prefix,
            region=self.region,
            access_key_id=Secret(self.writer.access_key_id),
            secret_access_key=Secret(self.writer.secret_access_key),
            endpoint_url=self.endpoint,
            multipart_threshold_mb=5.0,
            job_url=job_url,
            api_key=Secret(api_key),
        )
        return replace(base, **overrides)


def _policy(action: str | list[str], resource: str) -> str:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _make_user(iam: Any, name: str, policy: str) -> Keys:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


def _set_auth(endpoint: str, value: bytes) -> None:
    """`0`: check every request from now on; `inf`: accept anything (moto's default)."""
    requests.post(f"{endpoint}/moto-api/reset-auth", data=value, timeout=30).raise_for_status()


@pytest.fixture
def write_only_prefix() -> str:
    """The folder the writer may PUT into; override in a test module for another layout."""
    return "incoming/"


@pytest.fixture
def write_only_s3(moto_endpoint: str, write_only_prefix: str) -> Iterator[WriteOnlyBucket]:
    """Fresh moto state: a bucket, a PUT-only writer for one prefix, an admin; IAM enforced."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    _set_auth(moto_endpoint, b"inf")
    session, bucket = _test_session(), "drop-bucket"
    session.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name=MOTO_REGION,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    ).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    iam = session.client(
        "iam",
        endpoint_url=moto_endpoint,
        region_name=MOTO_REGION,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    writer = _make_user(
        iam,
        "writer",
        _policy(["s3:PutObject", "s3:AbortMultipartUpload"], f"arn:aws:s3:::{bucket}/{write_only_prefix}*"),
    )
    admin = _make_user(iam, "admin", _policy("*", "*"))
    _set_auth(moto_endpoint, b"0")
    try:
        yield WriteOnlyBucket(
            endpoint=moto_endpoint, bucket=bucket, prefix=write_only_prefix, writer=writer, admin=admin
        )
    finally:
        _set_auth(moto_endpoint, b"inf")


@dataclass(frozen=True)
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]


def record_requests(client: Any) -> list[SentRequest]:
    """Append every request this boto3 client sends (after signing, before the wire) to a list."""
    sent: list[SentRequest] = []

    def remember(request: Any, **_: Any) -> None:
        headers = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()}
        sent.append(SentRequest(request.method, request.url, headers))

    client.meta.events.register("before-send.s3", remember)
    return sent


# ----------------------------------------------------------------------------------------------
# Job API stand-in


@dataclass(frozen=True)
class JobCall:
    """One request the stand-in received."""

    method: str
    path: str
    job: str
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class JobApiStandIn:
    """An AlumnIQ-like job endpoint on loopback: `{base}/api/v1/warehouse-sync/{job}`."""

    base_url: str
    api_key: str
    jobs: set[str] = field(default_factory=lambda: {"warehouse"})
    calls: list[JobCall] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    _script: deque[tuple[int, Any, dict[str, str]]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def job_url(self) -> str:
        return f"{self.base_url}/api/v1/warehouse-sync/{{job}}"

    def script(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Answer the next request with this status, JSON body and headers (e.g. a 429 with Retry-After)."""
        with self._lock:
            self._script.append((status, body, dict(headers or {})))

    def throttle(self, status: int, retry_after: str) -> None:
        """The fault mode: the next request is answered 429 or 503 with `Retry-After: retry_after`."""
        self.script(status, {"error": True, "message": "Too many requests"}, {"Retry-After": retry_after})

    def answer(self, call: JobCall) -> tuple[int, Any, dict[str, str]]:
        """What the real API would say (after any scripted answers are used up), with extra headers."""
        with self._lock:
            self.calls.append(call)
            if self._script:
                return self._script.popleft()
            return (*self._documented_answer(call), {})

    def _documented_answer(self, call: JobCall) -> tuple[int, Any]:
        """The documented answers: 401 bad key, 400 unknown job or no filename, 200 with a jobId (lock held)."""
        body = call.body if isinstance(call.body, dict) else {}
        if body.get("apiKey") != self.api_key:
            return 401, {"error": True, "message": "Invalid or expired API key"}
        if call.job not in self.jobs:
            return 400, {"error": True, "message": f"Job '{call.job}' does not exist"}
        if not body.get("filename"):
            return 400, {"error": True, "message": "Missing required attribute: filename"}
        job_id = f"job-{len(self.queued) + 1:04d}-{secrets.token_hex(4)}"
        self.queued.append(job_id)
        return 200, {"jobId": job_id, "status": "queued"}


def _job_handler(stand_in: JobApiStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw or b"null")
            except ValueError:
                body = None
            path = urlsplit(self.path).path
            call = JobCall(
                "POST", path, unquote(path.rstrip("/").rsplit("/", 1)[-1]), dict(self.headers.items()), body, raw
            )
            status, answer, headers = stand_in.answer(call)
            payload = json.dumps(answer).encode()
            reply(
                self,
                status,
                payload,
                [("Date", self.date_time_string()), ("Content-Type", "application/json"), *headers.items()],
            )

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

    return Handler


@pytest.fixture
def job_api() -> Iterator[JobApiStandIn]:
    """The job API stand-in, on a free loopback port (port 0), stopped after the test."""
    stand_in = JobApiStandIn(base_url="", api_key="iq-" + secrets.token_hex(16))
    with serving(_job_handler(stand_in)) as base:
        stand_in.base_url = base
        yield stand_in
