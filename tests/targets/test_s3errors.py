"""S3 failures in plain words (`agent.targets.s3errors`), mapped from the codes S3 answers."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from agent.targets.s3errors import explain_s3_error


@pytest.mark.parametrize(
    ("code", "status", "retryable", "words"),
    [
        ("SlowDown", 503, True, "SlowDown"),
        ("InternalError", 500, True, "InternalError"),
        ("RequestTimeTooSkewed", 403, False, "clock is wrong"),
        ("EntityTooLarge", 400, False, "EntityTooLarge"),
    ],
)
def test_other_s3_answers_are_mapped_by_status(code: str, status: int, retryable: bool, words: str) -> None:
    """Answers moto cannot be made to give; the mapping is a pure function of the error response."""
    response: Any = {"Error": {"Code": code, "Message": "said"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    error = ClientError(response, "PutObject")
    explained = explain_s3_error(error, bucket="b-ucket", key="in/x.csv", region="eu-central-1")
    assert explained.retryable is retryable and words in explained.message
    assert explained.message.startswith("Upload to s3://b-ucket/in/x.csv failed")
