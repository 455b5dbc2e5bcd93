"""Learn REST over real HTTP: the OAuth2 token and the SIS data set log with its paging and refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from agent.simulator import LearnSimulator
from tests.simulator.client import counts, feed, get_log, post, token, uid_of, upload_and_finish
from tests.support.learn import MEMBERSHIP_HEADER, PEOPLE_HEADER, membership_rows, person_rows
from tests.support.waiting import wait_for

CREATED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def mixed_people(count: int) -> bytes:
    """`count` people; every 10th lacks its user_id (error), every 7th has available_ind 'maybe' (warning)."""
    header = (*PEOPLE_HEADER, "available_ind")
    rows = []
    for i, row in enumerate(person_rows(count), start=1):
        values = list(row)
        if i % 10 == 0:
            values[4] = ""
        rows.append((*values, "maybe" if i % 7 == 0 else "Y"))
    return feed(header, rows)


@pytest.fixture
def finished(learn_sim: LearnSimulator) -> str:
    """A finished data set of 250 people: 25 errors, 32 warnings (35 multiples of 7, 3 of them also errors)."""
    return upload_and_finish(learn_sim, "person", mixed_people(250))


def follow(sim: LearnSimulator, uid: str, bearer: str, **params: str) -> Iterator[requests.Response]:
    response = get_log(sim, uid, bearer, **params)
    while True:
        assert response.status_code == 200, response.text
        yield response
        following = response.json().get("paging", {}).get("nextPage")
        if not following:
            return
        response = requests.get(sim.url + following, headers={"Authorization": f"Bearer {bearer}"}, timeout=30)


# ------------------------------------------------------------------------------------------------
# Token


def test_token_for_the_rest_key_and_secret(learn_sim):
    response = requests.post(
        learn_sim.token_url,
        data={"grant_type": "client_credentials"},
        auth=(learn_sim.rest_key, learn_sim.rest_secret),
        timeout=30,
    )

    assert response.status_code == 200
    answer = response.json()
    assert answer["token_type"] == "bearer"
    assert answer["expires_in"] == 3599
    assert len(answer["access_token"]) >= 20


@pytest.mark.parametrize(
    "auth", [None, ("rest-key", "wrong"), ("wrong", "rest-secret"), ("sis-integration", "sis-password")]
)
def test_token_refuses_wrong_or_missing_client_credentials(learn_sim, auth):
    response = requests.post(learn_sim.token_url, data={"grant_type": "client_credentials"}, auth=auth, timeout=30)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("data", "error"), [({}, "invalid_request"), ({"grant_type": "password"}, "unsupported_grant_type")]
)
def test_token_needs_the_client_credentials_grant(learn_sim, data, error):
    response = requests.post(
        learn_sim.token_url, data=data, auth=(learn_sim.rest_key, learn_sim.rest_secret), timeout=30
    )

    assert response.status_code == 400
    assert response.json()["error"] == error


def test_token_path_with_a_trailing_slash_or_get_is_refused(learn_sim):
    auth = (learn_sim.rest_key, learn_sim.rest_secret)
    slash = requests.post(learn_sim.token_url + "/", data={"grant_type": "client_credentials"}, auth=auth, timeout=30)
    get = requests.get(learn_sim.token_url, auth=auth, timeout=30)

    assert (slash.status_code, get.status_code) == (404, 405)


# ------------------------------------------------------------------------------------------------
# Log: levels, paging, fields


def test_the_default_level_is_error_and_matches_the_error_count(learn_sim, finished):
    bearer = token(learn_sim)

    results = [entry for page in follow(learn_sim, finished, bearer) for entry in page.json()["results"]]

    assert len(results) == counts(learn_sim, finished)["errorCount"] == 25
    assert {entry["level"] for entry in results} == {"Error"}
    first = results[0]
    assert set(first) == {"id", "created", "level", "message"}
    assert re.fullmatch(r"_\d+_1", first["id"])
    assert CREATED.match(first["created"])
    assert "P00010" in first["message"] and "user_id" in first["message"]


def test_warning_level_returns_warnings_and_errors_equal_to_the_status_counts(learn_sim, finished):
    bearer = token(learn_sim)
    status = counts(learn_sim, finished)

    results = [e for page in follow(learn_sim, finished, bearer, level="Warning") for e in page.json()["results"]]

    levels = [entry["level"] for entry in results]
    assert levels.count("Warning") == status["warningCount"] == 32
    assert levels.count("Error") == status["errorCount"] == 25
    warning = next(entry for entry in results if entry["level"] == "Warning")
    assert "available_ind 'maybe'" in warning["message"] and "P00007" in warning["message"]


def test_information_and_debug_levels_add_one_entry_per_record_and_a_summary(learn_sim, finished):
    bearer = token(learn_sim)

    information = [
        e for page in follow(learn_sim, finished, bearer, level="Information") for e in page.json()["results"]
    ]
    debug = [e for page in follow(learn_sim, finished, bearer, level="debug") for e in page.json()["results"]]

    assert len(information) == 250 + 2
    assert len(debug) == 250 + 3
    assert "processing started for 250 person records" in information[0]["message"]
    assert "193 records completed, 32 with warnings, 25 with errors" in information[-1]["message"]
    assert information[1]["message"].startswith("Line 2: the person record P00001 was saved")
    assert debug[1]["level"] == "Debug" and "external_person_key" in debug[1]["message"]
    assert len({entry["id"] for entry in debug}) == len(debug)
    assert [e["created"] for e in debug] == sorted(e["created"] for e in debug)


def test_paging_spans_several_pages_and_next_page_keeps_the_other_parameters(learn_sim, finished):
    bearer = token(learn_sim)

    pages = list(follow(learn_sim, finished, bearer, level="Information", fields="id,message"))

    assert [len(p.json()["results"]) for p in pages] == [100, 100, 52]
    assert "paging" not in pages[-1].json()
    following = urlsplit(pages[0].json()["paging"]["nextPage"])
    assert following.path == f"/learn/api/public/v1/logs/sis/dataSets/{finished}"
    assert parse_qs(following.query) == {
        "offset": ["100"],
        "limit": ["100"],
        "level": ["Information"],
        "fields": ["id,message"],
    }
    entries = [e for p in pages for e in p.json()["results"]]
    assert all(set(e) == {"id", "message"} for e in entries)
    expected = learn_sim.log_entries(finished, "Information")
    assert [e["id"] for e in entries] == [e.id for e in expected]


def test_limit_is_capped_at_100_and_offset_pages_from_anywhere(learn_sim, finished):
    bearer = token(learn_sim)

    capped = get_log(learn_sim, finished, bearer, level="Debug", limit=500)
    tail = get_log(learn_sim, finished, bearer, level="Debug", offset=250, limit=10)

    assert len(capped.json()["results"]) == 100
    assert parse_qs(urlsplit(capped.json()["paging"]["nextPage"]).query)["limit"] == ["100"]
    assert len(tail.json()["results"]) == 3 and "paging" not in tail.json()
    assert get_log(learn_sim, finished, bearer, offset=999).json() == {"results": []}


@pytest.mark.parametrize(
    "params",
    [{"level": "Fatal"}, {"offset": "-1"}, {"offset": "x"}, {"limit": "0"}, {"fields": "id,colour"}, {"fields": ","}],
)
def test_bad_parameters_are_400(learn_sim, finished, params):
    response = get_log(learn_sim, finished, token(learn_sim), **params)

    assert response.status_code == 400
    assert response.json()["status"] == 400


# ------------------------------------------------------------------------------------------------
# Log: refusals


def test_missing_unknown_or_expired_tokens_are_401(learn_sim, finished):
    bearer = token(learn_sim)
    assert requests.get(learn_sim.log_url(finished), timeout=30).status_code == 401
    assert get_log(learn_sim, finished, "not-a-token").status_code == 401
    assert get_log(learn_sim, finished, bearer).status_code == 200

    learn_sim.expire_tokens()

    assert get_log(learn_sim, finished, bearer).status_code == 401


def test_a_token_that_expires_mid_paging_gets_401_and_a_new_token_resumes():
    with LearnSimulator(rows_per_second=100_000, token_seconds=2.0) as sim:
        uid = upload_and_finish(sim, "person", mixed_people(250))
        bearer = token(sim)
        first = get_log(sim, uid, bearer, level="Information")
        assert first.status_code == 200
        following = sim.url + first.json()["paging"]["nextPage"]

        answers: list[requests.Response] = []

        def refused() -> bool:
            answers.append(requests.get(following, headers={"Authorization": f"Bearer {bearer}"}, timeout=30))
            return answers[-1].status_code == 401

        wait_for(refused, "the token to expire")
        assert answers[-1].json()["status"] == 401
        resumed = requests.get(following, headers={"Authorization": f"Bearer {token(sim)}"}, timeout=30)
        assert resumed.status_code == 200 and len(resumed.json()["results"]) == 100


def test_unknown_data_set_is_404(learn_sim, finished):
    response = get_log(learn_sim, "0" * 32, token(learn_sim))
    assert response.status_code == 404


def test_log_is_423_while_the_data_set_or_any_other_is_processing_then_200():
    with LearnSimulator(rows_per_second=50, start_delay=0.5) as sim:
        bearer = token(sim)
        early = uid_of(post(sim, "person", feed(PEOPLE_HEADER, person_rows(2))))
        assert get_log(sim, early, bearer).status_code == 423  # not even queued yet

        wait_for(lambda: sim.dataset(early).finished, "the small data set to finish")
        assert get_log(sim, early, bearer).status_code == 200

        late = uid_of(post(sim, "membership", feed(MEMBERSHIP_HEADER, membership_rows(50))))
        locked = get_log(sim, early, bearer)
        assert locked.status_code == 423  # another data set of the integration keeps the log locked
        assert locked.json()["status"] == 423

        assert sim.wait_idle(30)
        assert get_log(sim, late, bearer).status_code == 200
        assert len(get_log(sim, late, bearer).json()["results"]) == 50


def test_fault_log_locked_seconds_keeps_423_after_processing_ends(learn_sim):
    learn_sim.faults.log_locked_seconds = 1.0
    uid = upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(3)))
    bearer = token(learn_sim)

    assert learn_sim.dataset(uid).finished
    assert get_log(learn_sim, uid, bearer).status_code == 423
    wait_for(lambda: get_log(learn_sim, uid, bearer).status_code == 200, "the log to unlock")


def test_stuck_data_sets_keep_the_log_locked(learn_sim, finished):
    learn_sim.faults.stuck = True
    uid_of(post(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1))))

    assert get_log(learn_sim, finished, token(learn_sim)).status_code == 423


def test_fault_rest_forbidden_is_403(learn_sim, finished):
    learn_sim.faults.rest_forbidden = True

    response = get_log(learn_sim, finished, token(learn_sim))

    assert response.status_code == 403
    assert "system.dataintegrations.log.VIEW" in response.json()["message"]


def test_fault_rest_throttle_is_429_with_retry_after_for_the_next_n_calls(learn_sim, finished):
    bearer = token(learn_sim)
    learn_sim.faults.rest_throttle = 2
    learn_sim.faults.retry_after = 3

    answers = [get_log(learn_sim, finished, bearer) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"


def test_rest_throttle_also_counts_token_calls(learn_sim):
    learn_sim.faults.rest_throttle = 1
    auth = (learn_sim.rest_key, learn_sim.rest_secret)

    first = requests.post(learn_sim.token_url, data={"grant_type": "client_credentials"}, auth=auth, timeout=30)

    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    assert token(learn_sim)


def test_log_path_with_a_trailing_slash_is_404(learn_sim, finished):
    response = requests.get(
        learn_sim.log_url(finished) + "/", headers={"Authorization": f"Bearer {token(learn_sim)}"}, timeout=30
    )
    assert response.status_code == 404
