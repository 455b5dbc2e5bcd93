"""The AlumnIQ-like job API stand-in over real HTTP, with webhook notifications to a real receiver."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests

from agent.simulator import JobApiSimulator
from agent.simulator.jobapi import DAYS_LEFT_HEADER
from tests.support.net import free_port, serving
from tests.support.waiting import wait_for

KEY = "iq-test-key"


@pytest.fixture
def jobs() -> Iterator[JobApiSimulator]:
    with JobApiSimulator(api_key=KEY, jobs=("warehouse", "gifts"), notify_seconds=0.05) as stand_in:
        yield stand_in


@pytest.fixture
def webhook() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """A real HTTP receiver on loopback; each JSON body it gets lands on the queue."""
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    with serving(Receiver) as base:
        yield f"{base}/hooks/alumniq", received


def run(jobs: JobApiSimulator, job: str, body: Any) -> requests.Response:
    return requests.post(jobs.url_for(job), json=body, timeout=30)


def test_a_valid_request_is_queued_with_a_job_id_and_the_key_lifetime_header(jobs):
    response = run(jobs, "warehouse", {"apiKey": KEY, "filename": "warehouse.csv", "notifyEmail": "a@b.edu"})

    assert response.status_code == 200
    answer = response.json()
    assert answer["jobId"] and answer["status"] == "queued" and answer["error"] is False
    assert response.headers[DAYS_LEFT_HEADER] == "300"
    (request,) = jobs.requests
    assert (request.job, request.status, request.job_id) == ("warehouse", 200, answer["jobId"])
    assert request.body["notifyEmail"] == "a@b.edu"
    assert jobs.queued == [answer["jobId"]]
    assert jobs.job_url == f"{jobs.url}/api/v1/warehouse-sync/{{job}}"


@pytest.mark.parametrize(
    ("job", "body", "status", "message"),
    [
        ("nightly", {"apiKey": KEY, "filename": "x.csv"}, 400, "Job 'nightly' does not exist"),
        ("warehouse", {"apiKey": KEY}, 400, "Missing required attribute: filename"),
        ("warehouse", {"apiKey": KEY, "filename": ""}, 400, "Missing required attribute: filename"),
        ("warehouse", {"apiKey": "old-key", "filename": "x.csv"}, 401, "Invalid or expired API key"),
        ("warehouse", ["not", "an", "object"], 400, "The request body must be a JSON object"),
    ],
)
def test_refusals_are_json_with_error_true_and_a_message(jobs, job, body, status, message):
    response = run(jobs, job, body)

    assert response.status_code == status
    assert response.json() == {"error": True, "message": message}
    assert jobs.queued == []
    assert jobs.requests[0].status == status


def test_the_throttle_fault_answers_429_or_503_with_retry_after_then_queues(jobs):
    jobs.throttle(2, 503, retry_after=7)
    body = {"apiKey": KEY, "filename": "w.csv"}

    first, second, third = (run(jobs, "warehouse", body) for _ in range(3))

    assert (first.status_code, first.headers["Retry-After"]) == (503, "7")
    assert second.status_code == 503 and third.status_code == 200 and third.json()["jobId"]
    assert first.json() == {"error": True, "message": "Too many requests; try again later (fault throttle)"}
    jobs.throttle(1, 429, retry_after=None)
    plain = run(jobs, "warehouse", body)
    assert plain.status_code == 429 and "Retry-After" not in plain.headers
    with pytest.raises(ValueError):
        jobs.throttle(1, 500)


def test_other_paths_and_methods_are_refused(jobs):
    assert requests.post(f"{jobs.url}/api/v1/other/warehouse", json={}, timeout=30).status_code == 404
    assert requests.post(jobs.url_for("warehouse") + "/", json={}, timeout=30).status_code == 404
    assert requests.get(jobs.url_for("warehouse"), timeout=30).status_code == 405


def test_success_is_notified_to_the_webhook_with_the_same_job_id(jobs, webhook):
    url, received = webhook

    job_id = run(jobs, "warehouse", {"apiKey": KEY, "filename": "w.csv", "notifyWebhook": url}).json()["jobId"]

    payload = received.get(timeout=30)
    assert payload["jobId"] == job_id
    assert (payload["job"], payload["filename"], payload["success"], payload["status"]) == (
        "warehouse",
        "w.csv",
        True,
        "success",
    )
    assert payload["finishedAt"].endswith("Z")
    assert jobs.wait_for_notifications(1)
    assert jobs.notifications[0].status == 204


def test_failure_carries_the_message_and_the_newer_notification_settings_work(jobs, webhook):
    url, received = webhook
    jobs.set_outcome("gifts", "failure", "Row 12: constituent id missing")

    run(jobs, "gifts", {"apiKey": KEY, "filename": "g.csv", "notificationSettings": {"webhook": url, "emails": []}})

    payload = received.get(timeout=30)
    assert (payload["success"], payload["status"], payload["message"]) == (
        False,
        "failed",
        "Row 12: constituent id missing",
    )


def test_never_sends_no_notification(jobs, webhook):
    url, received = webhook
    jobs.set_outcome("warehouse", "never")
    jobs.set_outcome("gifts", "success")

    run(jobs, "warehouse", {"apiKey": KEY, "filename": "w.csv", "notifyWebhook": url})
    run(jobs, "gifts", {"apiKey": KEY, "filename": "g.csv", "notifyWebhook": url})

    assert received.get(timeout=30)["job"] == "gifts"  # the later job was notified, the earlier never is
    assert jobs.wait_for_notifications(1)
    assert [n.payload["job"] for n in jobs.notifications] == ["gifts"]


def test_an_unreachable_webhook_is_recorded_as_an_error(jobs):
    nowhere = f"http://127.0.0.1:{free_port()}/nowhere"  # nothing listens there

    run(jobs, "warehouse", {"apiKey": KEY, "filename": "w.csv", "notifyWebhook": nowhere})

    assert jobs.wait_for_notifications(1)
    (notice,) = jobs.notifications
    assert notice.status is None and notice.error


def test_unknown_outcomes_are_refused(jobs):
    with pytest.raises(ValueError):
        jobs.set_outcome("warehouse", "maybe")


def test_stop_cancels_pending_notifications(webhook):
    url, _ = webhook
    stand_in = JobApiSimulator(api_key=KEY, notify_seconds=3600).start()
    run(stand_in, "warehouse", {"apiKey": KEY, "filename": "w.csv", "notifyWebhook": url})
    assert stand_in.pending == 1
    stand_in.stop()
    wait_for(lambda: stand_in.pending == 0, "the pending notification to be cancelled")
    assert stand_in.notifications == []
