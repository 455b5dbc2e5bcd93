"""S3 target against moto's real server with IAM enforced: a writer that may only PUT under one prefix.

What matters for a write-only Handshake folder: the writer never sends HEAD/GET/LIST, small and
multipart uploads arrive intact (read back with the admin user), every PUT carries a checksum, and
each failure an admin can cause (wrong secret, unknown key, wrong prefix, missing bucket, no network,
wrong region) comes back as a plain-words TargetError without secrets.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import os
import signal
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from botocore.stub import Stubber

from agent import interrupts
from agent.errors import StopRequested, TargetError
from agent.records import Progress, Status, Submission
from agent.settings import S3TargetSettings, Secret
from agent.targets.s3 import S3Target
from agent.targets.s3errors import ReadBlockedError
from agent.targets.s3keys import handshake_name_warning
from tests.support.net import free_port, serving
from tests.support.s3 import SentRequest, WriteOnlyBucket, record_requests
from tests.support.waiting import wait_for

MIB = 1024 * 1024


def make_submission(path: Path, name: str | None = None, rows: int = 2) -> Submission:
    return Submission(path=path, name=name or path.name, object=None, operation="upload", rows=rows)


def write_csv(tmp_path: Path, name: str = "users.csv") -> Path:
    path = tmp_path / name
    path.write_text("email,first_name\nada@example.edu,Ada\nalan@example.edu,Alan\n", encoding="utf-8")
    return path


def write_random(path: Path, size: int) -> str:
    """Random bytes of `size`, written in 1 MiB pieces; returns the SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        left = size
        while left:
            piece = os.urandom(min(MIB, left))
            digest.update(piece)
            handle.write(piece)
            left -= len(piece)
    return digest.hexdigest()


def methods(sent: list[SentRequest]) -> set[str]:
    return {request.method for request in sent}


# ----------------------------------------------------------------------------------------------
# Templates and names (pure)


def test_key_for_uses_prefix_and_default_date_template(write_only_s3: WriteOnlyBucket, tmp_path: Path) -> None:
    target = S3Target(write_only_s3.settings(prefix="incoming"))
    when = datetime(2024, 1, 2, 3, 4, tzinfo=timezone.utc)
    assert target.key_for(make_submission(tmp_path / "users.csv"), when) == "incoming/20240102_users.csv"


# ----------------------------------------------------------------------------------------------
# Uploads through IAM


def test_small_file_is_one_checksummed_put_and_arrives_intact(write_only_s3: WriteOnlyBucket, tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    target = S3Target(write_only_s3.settings())
    sent = record_requests(target.client)

    receipt = target.submit(make_submission(path, rows=2))

    assert receipt.kind == "s3" and receipt.target == "handshake"
    assert receipt.reference.startswith("incoming/") and receipt.reference.endswith("_users.csv")
    assert write_only_s3.read(receipt.reference) == path.read_bytes()
    assert receipt.details["bucket"] == write_only_s3.bucket
    assert receipt.details["key"] == receipt.reference
    assert receipt.details["etag"] == write_only_s3.etag(receipt.reference)
    assert [r.method for r in sent] == ["PUT"]
    headers = {k.lower(): v for k, v in sent[0].headers.items()}
    assert headers["x-amz-sdk-checksum-algorithm"] == "SHA256"
    assert headers["x-amz-checksum-sha256"] == receipt.details["checksum_sha256"]


def test_the_inspections_digest_is_sent_as_the_checksum_not_recomputed(
    write_only_s3: WriteOnlyBucket, tmp_path: Path
) -> None:
    path = write_csv(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    target = S3Target(write_only_s3.settings())
    sent = record_requests(target.client)

    receipt = target.submit(dataclasses.replace(make_submission(path), sha256=digest))

    assert write_only_s3.read(receipt.reference) == path.read_bytes()
    headers = {k.lower(): v for k, v in sent[0].headers.items()}
    assert headers["x-amz-checksum-sha256"] == base64.b64encode(bytes.fromhex(digest)).decode()
    assert receipt.details["checksum_sha256"] == headers["x-amz-checksum-sha256"]
    # The file changed after it was checked: the checksum sent is still the checked file's, so S3
    # (which verifies it; our stand-in does not) refuses the body instead of storing unchecked bytes.
    path.write_text("email,first_name\nmallory@example.edu,Mallory\n", encoding="utf-8")
    target.submit(dataclasses.replace(make_submission(path, name="again.csv"), sha256=digest))
    headers = {k.lower(): v for k, v in sent[1].headers.items()}
    assert headers["x-amz-checksum-sha256"] == base64.b64encode(bytes.fromhex(digest)).decode()


def test_large_file_goes_multipart_with_only_put_and_post(write_only_s3: WriteOnlyBucket, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    expected_sha = write_random(path, 12 * MIB)
    target = S3Target(write_only_s3.settings(multipart_threshold_mb=5.0))
    sent = record_requests(target.client)

    receipt = target.submit(make_submission(path, rows=100_000))

    assert methods(sent) <= {"PUT", "POST"}
    assert sum("partNumber=" in r.url for r in sent) == 3  # 5 + 5 + 2 MiB
    assert any(r.method == "POST" and r.url.endswith("?uploads") for r in sent)
    assert hashlib.sha256(write_only_s3.read(receipt.reference)).hexdigest() == expected_sha
    assert receipt.details["etag"] == write_only_s3.etag(receipt.reference)
    assert receipt.details["etag"].strip('"').endswith("-3")
    assert receipt.details["size"] == str(12 * MIB)


def test_upload_progress_is_heard_part_by_part_and_for_a_single_put(
    write_only_s3: WriteOnlyBucket, tmp_path: Path
) -> None:
    big, small = tmp_path / "users.csv", write_csv(tmp_path, "small.csv")
    write_random(big, 12 * MIB)
    target = S3Target(write_only_s3.settings(multipart_threshold_mb=5.0))
    heard: list[tuple[int, int]] = []
    target.submit(dataclasses.replace(make_submission(big), on_sent=lambda sent, total: heard.append((sent, total))))
    assert len(heard) >= 3 and heard[-1] == (12 * MIB, 12 * MIB)
    assert [sent for sent, _ in heard] == sorted(sent for sent, _ in heard)  # a running total
    heard.clear()
    target.submit(dataclasses.replace(make_submission(small), on_sent=lambda sent, total: heard.append((sent, total))))
    assert heard == [(small.stat().st_size, small.stat().st_size)]


def test_wait_and_status_are_final_at_once(write_only_s3: WriteOnlyBucket, tmp_path: Path) -> None:
    target = S3Target(write_only_s3.settings())
    receipt = target.submit(make_submission(write_csv(tmp_path), rows=2))
    seen: list[Progress] = []
    stop = threading.Event()
    stop.set()  # nothing to wait for: a stopping daemon still gets the finished result

    result = target.wait(receipt, 2, on_progress=seen.append, stop=stop)

    assert result.status is Status.SUCCESS
    assert result.progress is not None and result.progress.completed == 2
    assert receipt.reference in result.message
    assert [p.completed for p in seen] == [2]
    assert target.status(receipt).completed == 2


def test_reads_are_refused_before_they_leave_the_machine(write_only_s3: WriteOnlyBucket) -> None:
    """The guard stops even botocore's own region probe (HeadBucket) from being sent."""
    target = S3Target(write_only_s3.settings())
    sent = record_requests(target.client)

    for read in (
        lambda: target.client.head_bucket(Bucket=write_only_s3.bucket),
        lambda: target.client.list_objects_v2(Bucket=write_only_s3.bucket),
    ):
        with pytest.raises(ReadBlockedError):
            read()
    assert sent == []
    message = target.explain(ReadBlockedError(operation="HeadBucket"), "incoming/x.csv").message
    assert "region" in message and "eu-central-1" in message


# ----------------------------------------------------------------------------------------------
# Failures an admin can cause, in plain words


def test_wrong_secret_says_the_secret_is_wrong(write_only_s3: WriteOnlyBucket, tmp_path: Path) -> None:
    wrong = "wrong-secret-" + "x" * 20
    target = S3Target(write_only_s3.settings(secret_access_key=Secret(wrong)))
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(write_csv(tmp_path)))
    error = caught.value
    assert "secret access key is wrong" in error.message
    assert not error.retryable and error.http_status == 403
    assert wrong not in str(error) and write_only_s3.writer.access_key_id not in str(error)


def test_unknown_access_key_says_so(write_only_s3: WriteOnlyBucket, tmp_path: Path) -> None:
    target = S3Target(write_only_s3.settings(access_key_id=Secret("AKIAUNKNOWN000000000")))
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(write_csv(tmp_path)))
    assert "does not know this access key id" in caught.value.message
    assert not caught.value.retryable


@pytest.mark.parametrize("size", [100, 6 * MIB], ids=["single-put", "multipart"])
def test_wrong_prefix_is_access_denied_naming_the_prefix(
    write_only_s3: WriteOnlyBucket, tmp_path: Path, size: int
) -> None:
    """Multipart too: upload_file wraps the ClientError in S3UploadFailedError, which is unwrapped."""
    path = tmp_path / "users.csv"
    write_random(path, size)
    target = S3Target(write_only_s3.settings(prefix="other/"))
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(path))
    message = caught.value.message
    assert "Access Denied" in message and "prefix" in message and "other/" in message
    assert "S3UploadFailedError" not in message and "Failed to upload" not in message
    assert not caught.value.retryable


def test_missing_bucket_for_the_writer_is_access_denied_mentioning_the_bucket(
    write_only_s3: WriteOnlyBucket, tmp_path: Path
) -> None:
    """IAM is checked before the bucket, so a PUT-only user cannot even learn that it is missing."""
    target = S3Target(write_only_s3.settings(bucket="no-such-bucket"))
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(write_csv(tmp_path)))
    assert "Access Denied" in caught.value.message and "no-such-bucket" in caught.value.message


def test_missing_bucket_with_full_rights_says_it_does_not_exist(write_only_s3: WriteOnlyBucket, tmp_path: Path) -> None:
    target = S3Target(write_only_s3.settings(keys=write_only_s3.admin, bucket="no-such-bucket"))
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(write_csv(tmp_path)))
    assert "bucket 'no-such-bucket' does not exist" in caught.value.message
    assert caught.value.http_status == 404


def test_unreachable_endpoint_is_retryable(write_only_s3: WriteOnlyBucket, tmp_path: Path) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    target = S3Target(write_only_s3.settings(endpoint_url=nobody_listens))
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(write_csv(tmp_path)))
    assert caught.value.retryable
    assert "could not be reached" in caught.value.message


def test_unreadable_file_is_a_plain_error(write_only_s3: WriteOnlyBucket, tmp_path: Path) -> None:
    target = S3Target(write_only_s3.settings())
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(tmp_path / "gone.csv"))
    assert "Cannot read" in caught.value.message and "gone.csv" in caught.value.message


@pytest.mark.parametrize(
    ("code", "error_fields", "headers"),
    [
        ("AuthorizationHeaderMalformed", {"Region": "eu-west-2"}, {}),
        (
            "PermanentRedirect",
            {"Endpoint": "drop-bucket.s3.eu-west-2.amazonaws.com"},
            {"x-amz-bucket-region": "eu-west-2"},
        ),
        ("IllegalLocationConstraintException", {}, {}),
    ],
)
def test_wrong_region_is_explained(
    write_only_s3: WriteOnlyBucket,
    tmp_path: Path,
    code: str,
    error_fields: dict[str, str],
    headers: dict[str, str],
) -> None:
    """Stubbed on purpose: moto ignores the region of a PUT (measured: an eu-west-1 client writes
    into a us-east-1 bucket with 200), so real S3's wrong-region answers cannot be produced here.
    botocore's Stubber returns those exact error responses through the real client and our mapping.
    """
    target = S3Target(write_only_s3.settings(region="eu-central-1"))
    with Stubber(target.client) as stub:
        stub.add_client_error(
            "put_object",
            service_error_code=code,
            service_message="wrong region",
            http_status_code=400,
            service_error_meta=error_fields,
            response_meta={"HTTPHeaders": headers},
        )
        with pytest.raises(TargetError) as caught:
            target.submit(make_submission(write_csv(tmp_path)))
    message = caught.value.message
    assert "not eu-central-1" in message and "Set region" in message and code in message
    if error_fields.get("Region") or headers:
        assert "the bucket is in eu-west-2" in message
    assert not caught.value.retryable


def test_logs_and_receipts_never_show_the_secret(
    write_only_s3: WriteOnlyBucket, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent")
    target = S3Target(write_only_s3.settings())
    receipt = target.submit(make_submission(write_csv(tmp_path)))
    secret = write_only_s3.writer.secret_access_key
    assert "uploaded users.csv" in caplog.text
    assert secret not in caplog.text and secret not in receipt.to_json()


# ----------------------------------------------------------------------------------------------
# check()


def test_check_without_canary_is_offline_and_says_how_to_test(write_only_s3: WriteOnlyBucket) -> None:
    target = S3Target(write_only_s3.settings())
    sent = record_requests(target.client)

    results = target.check()

    assert sent == []
    assert all(r.ok for r in results), results
    write_access = [r for r in results if r.item.endswith("write access")]
    assert write_access and "use --canary" in write_access[0].detail
    assert "write-only bucket: nothing can be checked without writing" in write_access[0].detail


def test_check_reports_each_bad_setting(write_only_s3: WriteOnlyBucket) -> None:
    target = S3Target(
        write_only_s3.settings(
            bucket="Bad_Bucket",
            region="moon",
            key="{nope}_{name}",
            secret_access_key=Secret(""),
        )
    )
    sent = record_requests(target.client)

    failed = {r.item.split(": ", 1)[1]: r.detail for r in target.check(canary=True) if not r.ok}

    assert sent == []
    assert "Bad_Bucket" in failed["bucket"]
    assert "moon" in failed["region"]
    assert "{nope}" in failed["key template"]
    assert "secret_access_key" in failed["credentials"]
    assert "not tried" in failed["write access"]


def test_check_flags_a_key_handshake_would_ignore(write_only_s3: WriteOnlyBucket) -> None:
    results = S3Target(write_only_s3.settings(key="test_{name}")).check()
    flagged = [r for r in results if r.item.endswith("file names")]
    assert flagged and not flagged[0].ok and "test" in flagged[0].detail


def test_check_judges_the_file_name_not_the_vendors_folder(write_only_s3: WriteOnlyBucket) -> None:
    results = S3Target(write_only_s3.settings(prefix="importer-production-contest-university/")).check()
    assert all(r.ok for r in results), results


def test_submit_warns_when_handshake_would_ignore_the_name(
    write_only_s3: WriteOnlyBucket, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agent")
    target = S3Target(write_only_s3.settings())
    receipt = target.submit(make_submission(write_csv(tmp_path, "sample_users.csv")))
    assert write_only_s3.read(receipt.reference) == (tmp_path / "sample_users.csv").read_bytes()
    assert "never processes" in caplog.text and "sample_users.csv" in caplog.text


def test_canary_puts_a_clearly_named_object(write_only_s3: WriteOnlyBucket) -> None:
    target = S3Target(write_only_s3.settings())
    sent = record_requests(target.client)

    results = target.check(canary=True)

    canary = [r for r in results if "canary" in r.item]
    assert canary and canary[0].ok, results
    assert methods(sent) == {"PUT"} and len(sent) == 1
    [key] = write_only_s3.object_keys()
    assert key.startswith("incoming/feed-agent-canary-test-") and key.endswith("Z.txt")
    assert handshake_name_warning(key.rsplit("/", 1)[1]) is not None  # an importer that skips "test" skips it
    assert key in canary[0].detail
    assert "not a data file" in write_only_s3.read(key).decode()


def test_canary_with_a_wrong_prefix_reports_the_plain_error(write_only_s3: WriteOnlyBucket) -> None:
    results = S3Target(write_only_s3.settings(prefix="elsewhere/")).check(canary=True)
    canary = [r for r in results if "canary" in r.item]
    assert canary and not canary[0].ok
    assert "Access Denied" in canary[0].detail and "elsewhere/" in canary[0].detail
    assert write_only_s3.object_keys() == []


def test_a_stop_signal_cuts_a_slow_put_short(tmp_path: Path) -> None:
    """SIGTERM during a PUT to an endpoint that reads slowly: the upload is abandoned at once (S3 keeps
    nothing of a body that did not arrive whole); botocore neither swallows the stop nor starts over."""
    received: list[int] = []

    class SlowEndpoint(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # answers botocore's Expect: 100-continue

        def do_PUT(self) -> None:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                piece = self.rfile.read(min(left, 64 * 1024))
                if not piece:
                    return  # the client left
                received.append(len(piece))
                left -= len(piece)
                time.sleep(0.05)  # about 1.3 MB/s: a slow link
            self.send_response(200)
            self.send_header("ETag", '"done"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    path = tmp_path / "students.csv"
    path.write_bytes(b"id,name\n" + b"1,someone\n" * 2_000_000)  # 20 MB: a long upload at that pace
    with serving(SlowEndpoint) as url:
        settings = S3TargetSettings(
            name="handshake",
            bucket="bucket",
            access_key_id=Secret("AKIAEXAMPLEEXAMPLE00"),
            secret_access_key=Secret("not-a-real-secret"),
            endpoint_url=url,
            multipart_threshold_mb=100.0,  # one PUT
        )
        target = S3Target(settings)
        submission = Submission(path=path, name=path.name, object=None, operation="upload", rows=2_000_000)

        def signal_when_under_way() -> None:
            wait_for(lambda: sum(received) > 1024 * 1024, what="the upload under way")
            os.kill(os.getpid(), signal.SIGTERM)

        sender = threading.Thread(target=signal_when_under_way)
        sender.start()
        try:
            with interrupts.stop_on_signals(threading.Event()), pytest.raises(StopRequested):
                target.submit(submission)
        finally:
            sender.join(30)
            target.close()
    assert 0 < sum(received) < path.stat().st_size
