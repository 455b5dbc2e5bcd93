"""Per-job notification URLs and the verdict read from a notification whose shape is not documented."""

from __future__ import annotations

import json

import pytest

from agent.callbacks import job_link, new_token, read_verdict, token_digest, token_in


def test_tokens_are_random_url_safe_and_only_their_digest_is_kept() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) == 43 and token_in("/jobs/" + token) == token
    assert len(token_digest(token)) == 64 and token not in token_digest(token)


def test_links_and_paths_round_trip_behind_a_proxy_prefix() -> None:
    token = new_token()
    assert job_link("https://feeds.example.edu/alumniq/", token) == f"https://feeds.example.edu/alumniq/jobs/{token}"
    assert token_in(f"/alumniq/jobs/{token}") == token
    assert token_in(f"/jobs/{token}?x=1") == token


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/jobs/",
        "/jobs/short",
        "/jobs/" + "a" * 44,
        "/jobs/" + "a" * 42 + "!",
        "/other/" + "a" * 43,
        "jobs/" + "a" * 43,
    ],
)
def test_anything_else_is_not_a_job_path(path: str) -> None:
    assert token_in(path) is None


@pytest.mark.parametrize(
    ("payload", "succeeded", "message"),
    [
        ({"jobId": "1", "success": True, "status": "success", "message": "Job completed"}, True, "Job completed"),
        ({"jobId": "1", "success": False, "message": "Row 12 is bad"}, False, "Row 12 is bad"),
        ({"status": "FAILED"}, False, "FAILED"),
        ({"state": "completed"}, True, "completed"),
        ({"error": "bucket unreadable"}, False, "bucket unreadable"),
        ({"error": False, "message": "done"}, True, "done"),
        ({"error": None}, True, "the job succeeded"),
        ({"jobId": "1"}, False, "the notification did not say whether the job succeeded"),
    ],
)
def test_the_verdict_comes_from_the_common_fields(payload: object, succeeded: bool, message: str) -> None:
    verdict = read_verdict(json.dumps(payload).encode())
    assert (verdict.succeeded, verdict.message) == (succeeded, message)


def test_a_body_that_is_not_json_is_a_failure_quoting_it_short() -> None:
    verdict = read_verdict(b"job   blew\nup " + b"x" * 1000)
    assert not verdict.succeeded and verdict.message.startswith("job blew up x") and len(verdict.message) == 500
    assert read_verdict(b"").message == "the notification had no readable body"
