"""Job target (AlumnIQ): the upload goes to moto with IAM enforced, the job call to a stand-in server.

The stand-in (`tests.support.s3.job_api`) answers like the documented API: 400 for an unknown job or
a missing filename, 401 for a bad key, 200 with a jobId, and it records every request, so the
tests can check exactly what went on the wire (and that the API key went nowhere else).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from agent.errors import TargetError
from agent.records import Progress, Status, Submission
from agent.retry import RetryPolicy
from agent.settings import Secret
from agent.simulator import JobApiSimulator
from agent.targets.jobapi import JOB_RETRY, JobTarget
from tests.support.clock import FakeClock
from tests.support.net import free_port
from tests.support.s3 import JobApiStandIn, WriteOnlyBucket, record_requests


@pytest.fixture
def write_only_prefix() -> str:
    """AlumnIQ's production folder (overrides the default `incoming/` of the S3 fixture)."""
    return "production/warehouse/"


def warehouse_file(tmp_path: Path, name: str = "warehouse.csv") -> Path:
    path = tmp_path / name
    path.write_text("constituent_id,email\n1,ada@example.edu\n2,alan@example.edu\n", encoding="utf-8")
    return path


def make_submission(path: Path, rows: int = 2) -> Submission:
    return Submission(path=path, name=path.name, object=None, operation="upload", rows=rows)


def make_target(bucket: WriteOnlyBucket, api: JobApiStandIn, **overrides: Any) -> JobTarget:
    settings = replace(bucket.job_settings(api.job_url, api.api_key), **overrides)
    target = JobTarget(settings)
    target.clock = FakeClock()  # keep the retry tests quick; the count stays the same
    return target


def test_upload_then_job_call_gives_a_job_receipt(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    path = warehouse_file(tmp_path)
    target = make_target(
        write_only_s3,
        job_api,
        notify_email="sis-admins@example.edu",
        notify_webhook="https://hooks.example.edu/alumniq",
    )
    sent = record_requests(target.s3.client)

    receipt = target.submit(make_submission(path))

    assert write_only_s3.read("production/warehouse/warehouse.csv") == path.read_bytes()
    assert {r.method for r in sent} == {"PUT"}
    [call] = job_api.calls
    assert call.path == "/api/v1/warehouse-sync/warehouse" and call.job == "warehouse"
    assert call.body == {
        "apiKey": job_api.api_key,
        "filename": "warehouse.csv",
        "notifyEmail": "sis-admins@example.edu",
        "notifyWebhook": "https://hooks.example.edu/alumniq",
    }
    assert receipt.kind == "job" and receipt.reference == job_api.queued[0]
    assert receipt.details["bucket"] == write_only_s3.bucket
    assert receipt.details["key"] == "production/warehouse/warehouse.csv"
    assert receipt.details["job"] == "warehouse"
    assert receipt.details["job_url"] == f"{job_api.base_url}/api/v1/warehouse-sync/warehouse"
    assert job_api.api_key not in receipt.to_json()


def test_notify_fields_are_left_out_when_not_configured(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    make_target(write_only_s3, job_api).submit(make_submission(warehouse_file(tmp_path)))
    assert job_api.calls[0].body == {"apiKey": job_api.api_key, "filename": "warehouse.csv"}


def test_wait_is_queued_at_once_and_names_who_is_notified(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    target = make_target(write_only_s3, job_api, notify_email="sis-admins@example.edu")
    receipt = target.submit(make_submission(warehouse_file(tmp_path), rows=2))
    seen: list[Progress] = []

    result = target.wait(receipt, 2, on_progress=seen.append)

    assert result.status is Status.QUEUED  # the job runs later: SUCCESS only when AlumnIQ says so
    assert receipt.details["completion"] == "email"
    assert result.message == (
        f"queued as job {receipt.reference}; AlumnIQ notifies sis-admins@example.edu when it completes"
    )
    assert result.progress is not None and result.progress.completed == 2
    assert [p.fields["job_id"] for p in seen] == [receipt.reference]
    assert target.status(receipt).fields["state"] == "queued"


def test_a_submission_with_its_own_notification_url_sends_it_and_keeps_it_out_of_the_receipt(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    target = make_target(write_only_s3, job_api, notify_email="sis-admins@example.edu", notify_within_hours=2.5)
    own_url = "https://agent.example.edu/jobs/" + "t" * 43
    submission = replace(make_submission(warehouse_file(tmp_path)), notify_url=own_url)

    receipt = target.submit(submission)
    result = target.wait(receipt, 2)

    assert job_api.calls[0].body["notifyWebhook"] == own_url
    assert job_api.calls[0].body["notifyEmail"] == "sis-admins@example.edu"
    assert own_url not in receipt.to_json()  # the URL is a capability: only its digest is kept (journal)
    assert receipt.details["completion"] == "webhook" and receipt.details["notify_within_hours"] == "2.5"
    assert result.status is Status.QUEUED
    assert result.message == f"queued as job {receipt.reference}; AlumnIQ calls feed-agent back when it completes"


def test_without_any_notification_the_queued_message_says_nobody_hears(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    target = make_target(write_only_s3, job_api)
    receipt = target.submit(make_submission(warehouse_file(tmp_path)))
    assert receipt.details["completion"] == "none"
    assert target.wait(receipt, 2).message.endswith("nobody will be told when it completes")


@pytest.mark.parametrize(
    "answer",
    [{"jobID": "J-17"}, {"id": "J-17"}, {"data": {"jobId": "J-17"}}, {"data": {"id": 17}}],
    ids=["jobID", "id", "data.jobId", "data.id-number"],
)
def test_job_id_is_found_in_each_documented_shape(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path, answer: dict[str, object]
) -> None:
    job_api.script(200, answer)
    receipt = make_target(write_only_s3, job_api).submit(make_submission(warehouse_file(tmp_path)))
    assert receipt.reference in ("J-17", "17")


def test_unknown_job_is_refused_quoting_the_api_and_saying_the_file_is_in_the_bucket(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    target = make_target(write_only_s3, job_api, job="alumni-{stem}")
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(warehouse_file(tmp_path)))
    error = caught.value
    assert "Job 'alumni-warehouse' does not exist" in error.message
    assert "The file IS in the bucket at s3://drop-bucket/production/warehouse/warehouse.csv" in error.message
    assert "only the job call failed" in error.message
    assert not error.retryable and error.http_status == 400
    assert write_only_s3.object_keys() == ["production/warehouse/warehouse.csv"]
    assert job_api.api_key not in str(error)


def test_the_message_string_wins_over_the_error_flag_as_alumniq_answers(
    write_only_s3: WriteOnlyBucket, tmp_path: Path
) -> None:
    """Issue 13.9: the product's AlumnIQ simulator answers {"error": true, "message": ...}; the report
    quoted "true". The message string is the API's words."""
    with JobApiSimulator(api_key="iq-key-0123456789", jobs=("gifts",)) as alumniq:
        settings = write_only_s3.job_settings(alumniq.job_url, alumniq.api_key)
        target = JobTarget(settings, clock=FakeClock())
        with pytest.raises(TargetError) as caught:
            target.submit(make_submission(warehouse_file(tmp_path)))
        target.close()
    message = caught.value.message
    assert "refused (HTTP 400): Job 'warehouse' does not exist." in message
    assert ": true" not in message and alumniq.requests[0].status == 400


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"error": True, "message": "Quota exceeded"}, "Quota exceeded"),
        ({"message": "", "error": "Bad filename"}, "Bad filename"),
        ({"error": True, "errors": ["filename too long"]}, '["filename too long"]'),
        ({"error": True}, '{"error": true}'),
    ],
)
def test_a_string_field_is_preferred_over_a_boolean_flag_in_every_shape(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path, answer: dict[str, object], said: str
) -> None:
    job_api.script(422, answer)
    with pytest.raises(TargetError) as caught:
        make_target(write_only_s3, job_api).submit(make_submission(warehouse_file(tmp_path)))
    assert f"refused (HTTP 422): {said}." in caught.value.message


def test_missing_filename_answer_is_quoted(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    """The stand-in says this for a body without filename (checked first); the target quotes it."""
    refused = requests.post(job_api.job_url.format(job="warehouse"), json={"apiKey": job_api.api_key}, timeout=10)
    assert refused.status_code == 400
    job_api.script(400, refused.json())

    with pytest.raises(TargetError) as caught:
        make_target(write_only_s3, job_api).submit(make_submission(warehouse_file(tmp_path)))
    assert "Missing required attribute: filename" in caught.value.message
    assert "IS in the bucket" in caught.value.message


def test_refused_api_key_gives_the_renewal_hint(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    wrong = "iq-expired-key-0123456789"
    target = make_target(write_only_s3, job_api, api_key=Secret(wrong))
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(warehouse_file(tmp_path)))
    error = caught.value
    assert "the API key was refused; AlumnIQ keys last about a year" in error.message
    assert "AlumnIQ Admin" in error.message and "IS in the bucket" in error.message
    assert error.http_status == 401 and not error.retryable
    assert wrong not in str(error)
    assert job_api.calls[0].body["apiKey"] == wrong


def test_server_errors_are_retried_then_succeed(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    job_api.script(429, {"error": "too many requests"})
    job_api.script(500, {"error": "oops"})
    receipt = make_target(write_only_s3, job_api).submit(make_submission(warehouse_file(tmp_path)))
    assert len(job_api.calls) == 3
    assert receipt.reference == job_api.queued[0]


@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_on_the_job_call_is_waited_as_asked(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path, status: int
) -> None:
    """Issue 13.6: the job POST meets 429/503 with Retry-After 7; the pause is 7 s (not the 2 s back-off)."""
    job_api.throttle(status, "7")
    target = make_target(write_only_s3, job_api)
    receipt = target.submit(make_submission(warehouse_file(tmp_path)))
    assert target.clock.sleeps == [7.0]  # type: ignore[attr-defined]
    assert len(job_api.calls) == 2 and receipt.reference == job_api.queued[0]


def test_the_products_job_api_simulator_throttling_is_waited_out_as_asked(
    write_only_s3: WriteOnlyBucket, tmp_path: Path
) -> None:
    """The same through `feed-agent simulate --job-api --job-throttle`'s stand-in: 503, Retry-After 9."""
    with JobApiSimulator(api_key="iq-key-0123456789") as alumniq:
        alumniq.throttle(1, 503, retry_after=9)
        clock = FakeClock()
        target = JobTarget(write_only_s3.job_settings(alumniq.job_url, alumniq.api_key), clock=clock)
        receipt = target.submit(make_submission(warehouse_file(tmp_path)))
        target.close()
    assert clock.sleeps == [9.0]
    assert [r.status for r in alumniq.requests] == [503, 200] and receipt.reference == alumniq.queued[0]


def test_a_retry_after_beyond_the_cap_waits_only_the_cap(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    job_api.throttle(503, "86400")
    job_api.throttle(429, "Wed, 21 Oct 2099 07:28:00 GMT")  # an HTTP date far ahead
    target = make_target(write_only_s3, job_api)
    target.submit(make_submission(warehouse_file(tmp_path)))
    assert target.clock.sleeps == [JOB_RETRY.retry_after_cap] * 2 == [300.0, 300.0]  # type: ignore[attr-defined]
    assert len(job_api.queued) == 1


def test_persistent_server_errors_are_retryable_and_say_the_file_is_uploaded(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    for _ in range(3):
        job_api.script(502, {"message": "bad gateway"})
    with pytest.raises(TargetError) as caught:
        make_target(write_only_s3, job_api).submit(make_submission(warehouse_file(tmp_path)))
    assert caught.value.retryable
    assert "HTTP 502" in caught.value.message and "bad gateway" in caught.value.message
    assert "IS in the bucket" in caught.value.message
    assert len(job_api.calls) == 3 and job_api.queued == []


def test_unreachable_job_api_is_retryable_and_says_the_file_is_uploaded(
    write_only_s3: WriteOnlyBucket, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v1/warehouse-sync/{{job}}"
    target = JobTarget(write_only_s3.job_settings(url, "iq-key-never-shown-123"))
    target.retry = RetryPolicy(attempts=2)
    target.clock = FakeClock()
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(warehouse_file(tmp_path)))
    assert caught.value.retryable and "could not be reached" in caught.value.message
    assert "IS in the bucket" in caught.value.message
    assert write_only_s3.object_keys() == ["production/warehouse/warehouse.csv"]


def test_failed_upload_never_calls_the_job(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    target = make_target(write_only_s3, job_api, prefix="qa/warehouse/")  # the writer may not write there
    with pytest.raises(TargetError) as caught:
        target.submit(make_submission(warehouse_file(tmp_path)))
    assert "Access Denied" in caught.value.message and "IS in the bucket" not in caught.value.message
    assert job_api.calls == []


def test_200_without_a_job_id_is_not_taken_for_success(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    job_api.script(200, {"status": "ok"})
    with pytest.raises(TargetError) as caught:
        make_target(write_only_s3, job_api).submit(make_submission(warehouse_file(tmp_path)))
    assert "without a job id" in caught.value.message and "IS in the bucket" in caught.value.message


def test_an_echoed_api_key_is_blanked_in_the_quoted_message(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path
) -> None:
    job_api.script(400, {"error": f"bad request body: apiKey={job_api.api_key}"})
    with pytest.raises(TargetError) as caught:
        make_target(write_only_s3, job_api).submit(make_submission(warehouse_file(tmp_path)))
    assert job_api.api_key not in caught.value.message and "apiKey=***" in caught.value.message


def test_the_api_key_never_reaches_the_logs(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    job_api.script(500, {"error": "oops"})
    make_target(write_only_s3, job_api).submit(make_submission(warehouse_file(tmp_path)))
    assert "retrying in" in caplog.text and "queued warehouse.csv as job" in caplog.text
    assert job_api.api_key not in caplog.text
    assert write_only_s3.writer.secret_access_key not in caplog.text


def test_check_is_offline_and_never_starts_a_job(write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn) -> None:
    target = make_target(write_only_s3, job_api)
    sent = record_requests(target.s3.client)

    results = target.check()

    assert all(r.ok for r in results), results
    assert sent == [] and job_api.calls == []
    details = " | ".join(r.detail for r in results)
    assert "use --canary" in details
    assert f"POST {job_api.base_url}/api/v1/warehouse-sync/warehouse" in details
    assert not any("file names" in r.item for r in results)  # the Handshake rule is not AlumnIQ's


def test_check_with_canary_writes_to_s3_but_still_no_job(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn
) -> None:
    results = make_target(write_only_s3, job_api).check(canary=True)
    assert all(r.ok for r in results), results
    assert [k.rsplit("/", 1)[0] for k in write_only_s3.object_keys()] == ["production/warehouse"]
    assert job_api.calls == []


@pytest.mark.parametrize("job_url", ["ftp://example.edu/{job}", "https:///api/{job}", "warehouse"])
def test_check_rejects_a_malformed_job_url(
    write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, job_url: str
) -> None:
    results = make_target(write_only_s3, job_api, job_url=job_url, api_key=Secret("")).check()
    failed = {r.item.split(": ", 1)[1]: r.detail for r in results if not r.ok}
    assert job_url in failed["job URL"]
    assert "api_key is empty" in failed["API key"]
    assert job_api.calls == []
