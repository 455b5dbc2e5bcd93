"""Every answer path leaves on a socket with TCP_NODELAY (read back from the socket, not timed)."""

from __future__ import annotations

import requests

from agent.simulator import JobApiSimulator, LearnSimulator
from tests.simulator.client import feed, get_log, post, token, uid_of
from tests.support.learn import PEOPLE_HEADER, person_rows


def exercise_every_learn_answer(sim: LearnSimulator) -> None:
    auth = (sim.username, sim.password)
    body = feed(PEOPLE_HEADER, person_rows(2))
    uid = uid_of(post(sim, "person", body))  # 200
    requests.post(sim.upload_url("person"), data=body, auth=("x", "y"), timeout=30)  # 401
    requests.post(sim.upload_url("people"), data=body, auth=auth, timeout=30)  # 404
    requests.get(sim.upload_url("person"), auth=auth, timeout=30)  # 405
    post(sim, "person", b"")  # 400
    for fault in ("fail_uploads", "throttle_uploads"):  # 500, 429
        setattr(sim.faults, fault, 1)
        post(sim, "person", body)
    sim.faults.html_page = True
    post(sim, "person", body)  # 200 sign-in page
    sim.faults.html_page = False
    requests.get(sim.status_url(uid), auth=auth, timeout=30)  # 200 (or all zero)
    requests.get(sim.status_url("0" * 32), auth=auth, timeout=30)  # 404
    sim.faults.status_failures = 1
    requests.get(sim.status_url(uid), auth=auth, timeout=30)  # 503
    requests.post(sim.token_url, data={"grant_type": "client_credentials"}, timeout=30)  # 401
    requests.post(sim.token_url, data={}, auth=(sim.rest_key, sim.rest_secret), timeout=30)  # 400
    bearer = token(sim)  # 200
    get_log(sim, uid, bearer)  # 423 (still processing)
    assert sim.wait_idle(20)
    get_log(sim, uid, bearer)  # 200
    get_log(sim, uid, "nope")  # 401
    get_log(sim, "0" * 32, bearer)  # 404
    get_log(sim, uid, bearer, level="x")  # 400
    sim.faults.rest_throttle = 1
    get_log(sim, uid, bearer)  # 429
    sim.faults.rest_forbidden = True
    get_log(sim, uid, bearer)  # 403


def test_every_learn_answer_path_sets_tcp_nodelay(learn_sim):
    exercise_every_learn_answer(learn_sim)

    replies = learn_sim.replies
    assert {r.status for r in replies} >= {200, 400, 401, 403, 404, 405, 423, 429, 500, 503}
    assert [r for r in replies if not r.nodelay] == []


def test_tls_answers_set_tcp_nodelay_too(learn_tls_sim):
    response = requests.get(learn_tls_sim.status_url("0" * 32), verify=learn_tls_sim.ca_bundle, timeout=30)

    assert response.status_code == 401
    assert [(r.status, r.nodelay) for r in learn_tls_sim.replies] == [(401, True)]


def test_job_api_answers_set_tcp_nodelay():
    with JobApiSimulator(api_key="k") as jobs:
        for body in ({"apiKey": "k", "filename": "w.csv"}, {"apiKey": "bad"}, {"apiKey": "k"}):
            requests.post(jobs.url_for("warehouse"), json=body, timeout=30)
        requests.get(jobs.url_for("warehouse"), timeout=30)

        assert [(r.status, r.nodelay) for r in jobs.replies] == [(200, True), (401, True), (400, True), (405, True)]
