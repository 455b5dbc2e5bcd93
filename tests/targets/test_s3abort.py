"""A multipart upload that fails part-way, through a real proxy in front of moto with IAM on.

s3transfer aborts the upload on failure; a PUT-only key may not (AbortMultipartUpload is its own
IAM action), and then the incomplete upload stays in the bucket. The error (and so the report)
says which of the two happened, with the UploadId and what to grant or configure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import TargetError
from agent.records import Submission
from agent.targets.s3 import S3Target
from tests.support.clock import FakeClock
from tests.support.s3 import WriteOnlyBucket
from tests.support.s3proxy import S3FaultProxy

MIB = 1024 * 1024


def big_file(tmp_path: Path) -> Submission:
    path = tmp_path / "users.csv"
    path.write_bytes(b"email\n" + b"x" * (11 * MIB))  # three parts at the 5 MiB threshold
    return Submission(path=path, name=path.name, object=None, operation="upload", rows=1)


def failing_part_two(proxy: S3FaultProxy) -> None:
    """Part 2 answers 500 on every try (botocore's three), so the whole upload fails mid-way."""
    proxy.fail(500, "InternalError", operation="part", part_number=2, times=3)


def test_a_put_only_key_leaves_the_failed_upload_behind_and_the_error_says_what_to_do(
    write_only_s3: WriteOnlyBucket, s3_fault_proxy: S3FaultProxy, tmp_path: Path
) -> None:
    keys = write_only_s3.put_only_keys()
    target = S3Target(write_only_s3.settings(keys, endpoint_url=s3_fault_proxy.url, key="{name}"), clock=FakeClock())
    failing_part_two(s3_fault_proxy)

    with pytest.raises(TargetError) as caught:
        target.submit(big_file(tmp_path))

    [(key, upload_id)] = write_only_s3.incomplete_uploads()
    message = caught.value.message
    assert key == "incoming/users.csv" and s3_fault_proxy.statuses("abort") == [403]
    assert (
        f"multipart upload {upload_id} of s3://{write_only_s3.bucket}/incoming/users.csv is left incomplete" in message
    )
    assert "S3 refused AbortMultipartUpload (AccessDenied)" in message
    assert "s3:AbortMultipartUpload" in message and "AbortIncompleteMultipartUpload" in message
    assert caught.value.retryable  # a 500: a later try can succeed


def test_a_key_allowed_to_abort_leaves_nothing_and_the_error_says_so(
    write_only_s3: WriteOnlyBucket, s3_fault_proxy: S3FaultProxy, tmp_path: Path
) -> None:
    target = S3Target(write_only_s3.settings(endpoint_url=s3_fault_proxy.url, key="{name}"), clock=FakeClock())
    failing_part_two(s3_fault_proxy)

    with pytest.raises(TargetError) as caught:
        target.submit(big_file(tmp_path))

    assert write_only_s3.incomplete_uploads() == []
    assert s3_fault_proxy.statuses("abort") == [204]
    assert "incomplete multipart upload was aborted, so nothing of it is left" in caught.value.message


def test_a_failed_single_put_says_nothing_about_multipart_uploads(
    write_only_s3: WriteOnlyBucket, s3_fault_proxy: S3FaultProxy, tmp_path: Path
) -> None:
    target = S3Target(write_only_s3.settings(endpoint_url=s3_fault_proxy.url, key="{name}"), clock=FakeClock())
    s3_fault_proxy.fail(403, "AccessDenied", operation="put")
    path = tmp_path / "small.csv"
    path.write_text("email\nada@example.edu\n", encoding="utf-8")

    with pytest.raises(TargetError) as caught:
        target.submit(Submission(path=path, name=path.name, object=None, operation="upload", rows=1))

    assert "multipart" not in caught.value.message and "Access Denied" in caught.value.message
