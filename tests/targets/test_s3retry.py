"""S3's Retry-After on 429/503, through a real proxy in front of moto (IAM on): waited as asked, capped.

botocore alone ignores a plain `Retry-After` and retries at once; the hook waits on the target's
clock (a FakeClock here, so the pauses are recorded, never slept) and leaves the count of attempts
to botocore (3 in all).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import TargetError
from agent.records import Submission
from agent.targets.s3 import S3_RETRY, S3Target
from tests.support.clock import FakeClock
from tests.support.s3 import WriteOnlyBucket
from tests.support.s3proxy import S3FaultProxy

MIB = 1024 * 1024


def submission(path: Path) -> Submission:
    return Submission(path=path, name=path.name, object=None, operation="upload", rows=2)


def through_proxy(bucket: WriteOnlyBucket, proxy: S3FaultProxy, clock: FakeClock) -> S3Target:
    return S3Target(bucket.settings(endpoint_url=proxy.url, key="{name}"), clock=clock)


def test_a_503_slow_down_with_retry_after_is_waited_out_then_the_put_succeeds(
    write_only_s3: WriteOnlyBucket, s3_fault_proxy: S3FaultProxy, tmp_path: Path
) -> None:
    clock = FakeClock()
    path = tmp_path / "users.csv"
    path.write_text("email\nada@example.edu\n", encoding="utf-8")
    s3_fault_proxy.fail(503, "SlowDown", operation="put", headers={"Retry-After": "7"})

    receipt = through_proxy(write_only_s3, s3_fault_proxy, clock).submit(submission(path))

    assert clock.sleeps == [7.0]
    assert s3_fault_proxy.statuses("put") == [503, 200]
    assert write_only_s3.read(receipt.reference) == path.read_bytes()


def test_a_429_asking_for_an_hour_waits_only_the_cap(
    write_only_s3: WriteOnlyBucket, s3_fault_proxy: S3FaultProxy, tmp_path: Path
) -> None:
    clock = FakeClock()
    path = tmp_path / "users.csv"
    path.write_text("email\nada@example.edu\n", encoding="utf-8")
    s3_fault_proxy.fail(429, "TooManyRequests", operation="put", headers={"Retry-After": "3600"})

    through_proxy(write_only_s3, s3_fault_proxy, clock).submit(submission(path))

    assert clock.sleeps == [S3_RETRY.retry_after_cap] == [120.0]
    assert s3_fault_proxy.statuses("put") == [429, 200]


def test_a_throttled_part_is_sent_again_alone_after_its_retry_after(
    write_only_s3: WriteOnlyBucket, s3_fault_proxy: S3FaultProxy, tmp_path: Path
) -> None:
    clock = FakeClock()
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * (11 * MIB))  # three parts at the 5 MiB threshold
    s3_fault_proxy.fail(503, "SlowDown", operation="part", headers={"Retry-After": "4"})

    receipt = through_proxy(write_only_s3, s3_fault_proxy, clock).submit(submission(path))

    assert clock.sleeps == [4.0]
    assert sorted(s3_fault_proxy.statuses("part")) == [200, 200, 200, 503]
    assert s3_fault_proxy.statuses("create") == [200]  # the upload was not started over
    assert write_only_s3.read(receipt.reference) == path.read_bytes()


def test_throttled_on_every_attempt_fails_retryable_after_botocores_three_tries(
    write_only_s3: WriteOnlyBucket, s3_fault_proxy: S3FaultProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = tmp_path / "users.csv"
    path.write_text("email\nada@example.edu\n", encoding="utf-8")
    s3_fault_proxy.fail(503, "SlowDown", operation="put", times=10, headers={"Retry-After": "5"})

    with pytest.raises(TargetError) as caught:
        through_proxy(write_only_s3, s3_fault_proxy, clock).submit(submission(path))

    assert caught.value.retryable
    assert clock.sleeps == [5.0, 5.0]
    assert s3_fault_proxy.statuses("put") == [503, 503, 503]
    assert "retrying in 5.0 s" in caplog.text and "Retry-After" not in caught.value.message


def test_without_retry_after_botocore_keeps_its_own_back_off(
    write_only_s3: WriteOnlyBucket, s3_fault_proxy: S3FaultProxy, tmp_path: Path
) -> None:
    clock = FakeClock()
    path = tmp_path / "users.csv"
    path.write_text("email\nada@example.edu\n", encoding="utf-8")
    s3_fault_proxy.fail(503, "SlowDown", operation="put")

    through_proxy(write_only_s3, s3_fault_proxy, clock).submit(submission(path))

    assert clock.sleeps == []
    assert s3_fault_proxy.statuses("put") == [503, 200]
