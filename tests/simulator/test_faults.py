"""Every fault mode, through real HTTP: what the client sees and what the simulated Learn kept."""

from __future__ import annotations

import re
import threading

import pytest
import requests

from agent.simulator import Faults, LearnSimulator
from tests.simulator.client import (
    SENTENCE,
    counts,
    feed,
    post,
    queued_reading,
    status_response,
    uid_of,
    upload_and_finish,
)
from tests.support.learn import COURSE_HEADER, PEOPLE_HEADER, course_rows, person_rows
from tests.support.waiting import wait_for


def test_fault_fail_uploads_answers_500_for_the_first_n(learn_sim):
    learn_sim.faults.fail_uploads = 2
    body = feed(PEOPLE_HEADER, person_rows(1))

    answers = [post(learn_sim, "person", body) for _ in range(3)]

    assert [a.status_code for a in answers] == [500, 500, 200]
    assert "Exception" in answers[0].text
    assert learn_sim.faults.fail_uploads == 0
    assert learn_sim.upload_attempts == 3
    assert len(learn_sim.uploads) == 1


def test_fault_slow_delays_answers(learn_sim):
    learn_sim.faults.slow_seconds = 3.0
    with pytest.raises(requests.ReadTimeout):
        post(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)), timeout=(10, 0.3))
    learn_sim.faults.slow_seconds = 0
    assert post(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1))).status_code == 200


def test_fault_stuck_keeps_data_sets_queued(learn_sim):
    learn_sim.faults.stuck = True
    stuck_uid = uid_of(post(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(3))))

    assert not learn_sim.wait_idle(0.3)
    reading = queued_reading(learn_sim, stuck_uid)
    assert (reading["queuedCount"], reading["completedCount"]) == (3, 0)
    assert learn_sim.dataset(stuck_uid).stuck

    learn_sim.faults.stuck = False
    fresh = uid_of(post(learn_sim, "course", feed(COURSE_HEADER, course_rows(2))))
    assert learn_sim.dataset(stuck_uid).queued == 3
    wait_for(lambda: learn_sim.dataset(fresh).finished, "the fresh data set to finish")
    assert learn_sim.dataset(fresh).completed == 2
    assert counts(learn_sim, stuck_uid)["queuedCount"] == 3


def test_fault_no_code_answers_200_without_a_reference_code(learn_sim):
    learn_sim.faults.no_code = True

    response = post(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)))

    assert response.status_code == 200
    assert not re.search(r"[0-9a-f]{32}", response.text)
    assert learn_sim.uploads == []


def test_fault_html_page_answers_a_sign_in_page_whose_nonce_looks_like_a_code(learn_sim):
    learn_sim.faults.html_page = True

    response = post(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)))

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    nonce = re.search(r'type="hidden" name="csrf_token" value="([0-9a-f]{32})"', response.text)
    assert nonce, response.text
    assert not SENTENCE.match(response.text)
    assert learn_sim.uploads == []
    assert (
        requests.get(
            learn_sim.status_url(nonce.group(1)), auth=(learn_sim.username, learn_sim.password), timeout=30
        ).status_code
        == 404
    )


def test_fault_status_503_answers_503_for_the_first_n_status_requests(learn_sim):
    uid = upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)))
    learn_sim.faults.status_503 = 2
    auth = (learn_sim.username, learn_sim.password)

    codes = [requests.get(learn_sim.status_url(uid), auth=auth, timeout=30).status_code for _ in range(3)]

    assert codes == [503, 503, 200]
    assert learn_sim.status_requests == 3


@pytest.mark.parametrize(
    ("code", "retry_after", "header"), [(503, 1, "1"), (503, 7, "7"), (503, None, None), (500, 7, None)]
)
def test_fault_status_failures_answer_the_chosen_code_with_retry_after_on_503(learn_sim, code, retry_after, header):
    uid = upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)))
    learn_sim.faults.status_failures = 1
    learn_sim.faults.status_failure_code = code
    learn_sim.faults.retry_after = retry_after

    failed, recovered = status_response(learn_sim, uid), status_response(learn_sim, uid)

    assert failed.status_code == code
    assert failed.headers.get("Retry-After") == header
    assert recovered.status_code == 200
    assert learn_sim.faults.status_failures == 0


def test_status_503_is_an_alias_of_status_failures_with_code_503():
    faults = Faults(status_failure_code=500)
    faults.status_503 = 4
    assert (faults.status_failures, faults.status_failure_code, faults.status_503) == (4, 503, 4)


def test_fault_throttle_uploads_answers_429_with_retry_after_and_accepts_nothing(learn_sim):
    learn_sim.faults.throttle_uploads = 2
    learn_sim.faults.retry_after = 5
    body = feed(PEOPLE_HEADER, person_rows(2))

    answers = [post(learn_sim, "person", body) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "5"
    assert len(learn_sim.uploads) == 1
    assert learn_sim.upload_attempts == 3


def test_fault_drop_uploads_closes_the_connection_without_an_answer(learn_sim):
    learn_sim.faults.drop_uploads = 1
    body = feed(PEOPLE_HEADER, person_rows(2))

    with pytest.raises(requests.ConnectionError):
        post(learn_sim, "person", body)
    assert learn_sim.uploads == []

    uid_of(post(learn_sim, "person", body))
    assert learn_sim.upload_attempts == 2
    assert learn_sim.faults.drop_uploads == 0


def test_fault_withhold_answers_accepts_the_upload_but_never_answers(learn_sim):
    learn_sim.faults.withhold_answers = 1
    body = feed(PEOPLE_HEADER, person_rows(3))

    with pytest.raises(requests.ReadTimeout):
        post(learn_sim, "person", body, timeout=(10, 0.5))

    (upload,) = learn_sim.uploads
    assert upload.answered is False
    assert learn_sim.wait_idle(20)
    assert learn_sim.dataset(upload.uid).completed == 3  # processed, like a Learn whose answer was lost
    unanswered = [r for r in learn_sim.replies if not r.answered]
    assert len(unanswered) == 1 and unanswered[0].path.endswith("/person/store")
    assert learn_sim.faults.withhold_answers == 0
    assert uid_of(post(learn_sim, "person", body)) != upload.uid


def test_fault_withhold_seconds_closes_the_held_connection_after_a_while(learn_sim):
    learn_sim.faults.withhold_answers = 1
    learn_sim.faults.withhold_seconds = 0.2

    with pytest.raises(requests.ConnectionError) as raised:
        post(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)), timeout=(10, 60))

    assert not isinstance(raised.value, requests.ReadTimeout)
    assert len(learn_sim.uploads) == 1


def test_stop_releases_a_withheld_connection():
    sim = LearnSimulator().start()
    sim.faults.withhold_answers = 1
    outcome: list[BaseException] = []

    def client() -> None:
        try:
            post(sim, "person", feed(PEOPLE_HEADER, person_rows(1)), timeout=(10, 60))
        except requests.RequestException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    wait_for(lambda: sim.uploads, "the upload to be accepted")
    sim.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert isinstance(outcome[0], requests.ConnectionError)


def test_describe_names_only_the_faults_that_differ_from_a_healthy_server():
    assert Faults().describe() == "none"
    assert (
        Faults(fail_uploads=2, stuck=True, retry_after=None).describe()
        == "fail_uploads=2, stuck=True, retry_after=None"
    )
