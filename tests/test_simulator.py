"""The Learn simulator over a real loopback socket: protocol fidelity, row checks and every fault mode.

These tests talk HTTP with plain `requests`, not through the agent's LearnTarget, so a bug shared by
the two cannot hide itself.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from agent.simulator import SUCCESS_SENTENCE, LearnSimulator
from tests.support.learn import (
    COURSE_HEADER,
    MEMBERSHIP_HEADER,
    PEOPLE_HEADER,
    course_rows,
    membership_rows,
    person_rows,
)

SENTENCE = re.compile(
    r"^Success: Feed File Uploaded\.  Use the reference code ([0-9a-f]{32}) "
    r"to track these records in the logs\.$"
)
ISO_MS_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
REPO = Path(__file__).resolve().parent.parent


def feed(header: tuple[str, ...] | list[str], rows: list[tuple[str, ...]], delimiter: str = "|") -> bytes:
    return ("\n".join(delimiter.join(r) for r in [tuple(header), *rows]) + "\n").encode("utf-8")


def post(
    sim: LearnSimulator,
    slug: str,
    body: bytes | Iterator[bytes],
    *,
    operation: str = "store",
    timeout: float | tuple[float, float] = 30,
) -> requests.Response:
    return requests.post(
        sim.upload_url(slug, operation),
        data=body,
        auth=(sim.username, sim.password),
        headers={"Content-Type": "text/plain; charset=utf-8"},
        timeout=timeout,
    )


def uid_of(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    match = SENTENCE.match(response.text)
    assert match, response.text
    return match.group(1)


def upload_and_finish(sim: LearnSimulator, slug: str, body: bytes, operation: str = "store") -> str:
    uid = uid_of(post(sim, slug, body, operation=operation))
    assert sim.wait_idle(20)
    return uid


def status_xml(sim: LearnSimulator, uid: str, method: str = "GET") -> ET.Element:
    response = requests.request(method, sim.status_url(uid), auth=(sim.username, sim.password), timeout=30)
    assert response.status_code == 200, response.text
    return ET.fromstring(response.text)


@pytest.fixture
def slow_sim() -> Iterator[LearnSimulator]:
    sim = LearnSimulator(rows_per_second=20).start()
    yield sim
    sim.stop()


# ------------------------------------------------------------------------------------------------
# Protocol


def test_upload_answers_the_two_space_sentence_with_a_fresh_code_and_records_the_bytes(learn_sim):
    body = feed(PEOPLE_HEADER, person_rows(3))
    first, second = uid_of(post(learn_sim, "person", body)), uid_of(post(learn_sim, "person", body))

    assert first != second
    assert SUCCESS_SENTENCE.format(uid=first).count("Uploaded.  Use") == 1
    upload = learn_sim.uploads_snapshot()[0]
    assert (upload.slug, upload.operation, upload.uid) == ("person", "store", first)
    assert upload.sha256 == hashlib.sha256(body).hexdigest()
    assert (upload.size, upload.rows, upload.chunked) == (len(body), 3, False)
    assert upload.content_type == "text/plain; charset=utf-8"
    assert [u.uid for u in learn_sim.uploads] == [first, second]


@pytest.mark.parametrize("auth", [None, ("sis-integration", "wrong"), ("someone", "sis-password")])
def test_missing_or_wrong_credentials_get_401_with_a_basic_challenge(learn_sim, auth):
    for response in (
        requests.post(learn_sim.upload_url("person"), data=feed(PEOPLE_HEADER, person_rows(1)), auth=auth, timeout=30),
        requests.get(learn_sim.status_url("0" * 32), auth=auth, timeout=30),
    ):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert learn_sim.uploads == []
    assert learn_sim.upload_attempts == 0


@pytest.mark.parametrize(
    "path",
    [
        "/webapps/bb-data-integration-flatfile-OTHER/endpoint/person/store",
        "/webapps/bb-data-integration-flatfile-BBLEARN/endpoint/people/store",
        "/webapps/bb-data-integration-flatfile-BBLEARN/endpoint/person/insert",
        "/webapps/bb-data-integration-flatfile-BBLEARN/endpoint/course/course/store",
        "/somewhere/else",
    ],
)
def test_unknown_integration_slug_or_operation_is_404(learn_sim, path):
    response = requests.post(
        learn_sim.url + path,
        data=b"external_person_key|user_id\n",
        auth=(learn_sim.username, learn_sim.password),
        timeout=30,
    )
    assert response.status_code == 404
    assert learn_sim.uploads == []


@pytest.mark.parametrize("operation", ["store", "refresh", "refreshlegacy", "delete"])
def test_every_operation_is_accepted(learn_sim, operation):
    uid = upload_and_finish(learn_sim, "course", feed(COURSE_HEADER, course_rows(2)), operation)
    assert learn_sim.dataset(uid).operation == operation


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_status_is_xml_with_every_field_in_alphabetical_order(learn_sim, method):
    uid = upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(4)))

    root = status_xml(learn_sim, uid, method)

    assert root.tag == "dataSetStatus"
    tags = [child.tag for child in root]
    assert (
        tags
        == sorted(tags)
        == [
            "completedCount",
            "dataIntegrationId",
            "dataSetUid",
            "errorCount",
            "lastEntryDate",
            "machineName",
            "queuedCount",
            "startDate",
            "warningCount",
        ]
    )
    values = {child.tag: child.text for child in root}
    assert values["dataSetUid"] == uid
    counts = [values[t] for t in ("completedCount", "queuedCount", "errorCount", "warningCount")]
    assert counts == ["4", "0", "0", "0"]
    assert root.find("dataIntegrationId").get("type") == "blackboard.platform.dataintegration.DataIntegration"
    assert re.fullmatch(r"_\d+_1", values["dataIntegrationId"])
    assert values["machineName"] == "learn-sim-1"
    assert ISO_MS_OFFSET.match(values["startDate"]) and ISO_MS_OFFSET.match(values["lastEntryDate"])


def test_unknown_reference_code_is_404(learn_sim):
    response = requests.get(learn_sim.status_url("f" * 32), auth=(learn_sim.username, learn_sim.password), timeout=30)
    assert response.status_code == 404
    assert "f" * 32 in response.text


def test_processing_is_asynchronous_at_the_configured_rate(slow_sim):
    uid = uid_of(post(slow_sim, "person", feed(PEOPLE_HEADER, person_rows(40))))

    first = {c.tag: int(c.text) for c in status_xml(slow_sim, uid) if c.tag.endswith("Count")}
    assert first["queuedCount"] > 0
    assert first["queuedCount"] + first["completedCount"] == 40

    assert slow_sim.wait_idle(30)
    done = slow_sim.dataset(uid)
    assert (done.queued, done.completed, done.finished) == (0, 40, True)


def test_chunked_and_large_uploads_are_streamed_and_hashed(learn_sim):
    rows = person_rows(40000)  # about 2 MiB, sent as many chunks
    body = feed(PEOPLE_HEADER, rows)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 50_000):
            yield body[start : start + 50_000]

    uid = uid_of(post(learn_sim, "person", pieces()))  # a generator: Transfer-Encoding: chunked
    upload = learn_sim.uploads[-1]
    assert upload.chunked
    assert (upload.uid, upload.size, upload.rows) == (uid, len(body), 40000)
    assert upload.sha256 == hashlib.sha256(body).hexdigest()


def test_stop_ends_keep_alive_connections():
    sim = LearnSimulator().start()
    with requests.Session() as session:
        session.auth = (sim.username, sim.password)
        assert session.get(sim.status_url("0" * 32), timeout=30).status_code == 404
        sim.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(sim.status_url("0" * 32), timeout=30)


def test_tls_simulator_serves_https(learn_tls_sim):
    response = requests.get(learn_tls_sim.status_url("0" * 32), verify=learn_tls_sim.ca_bundle, timeout=30)
    assert learn_tls_sim.url.startswith("https://localhost:")
    assert response.status_code == 401


# ------------------------------------------------------------------------------------------------
# Headers and rows


@pytest.mark.parametrize(
    ("delimiter", "bom", "upper"), [("|", False, False), (",", True, True), ("\t", True, False), ("|", True, True)]
)
def test_headers_are_parsed_case_insensitively_with_any_delimiter_and_bom(learn_sim, delimiter, bom, upper):
    header = [h.upper() if upper else h for h in PEOPLE_HEADER]
    body = (b"\xef\xbb\xbf" if bom else b"") + feed(header, person_rows(5), delimiter).replace(b"\n", b"\r\n")

    uid = upload_and_finish(learn_sim, "person", body)

    info = learn_sim.dataset(uid)
    assert (info.rows, info.completed, info.errors, info.warnings) == (5, 5, 0, 0), info.problems


def test_rows_missing_required_values_are_errors_and_blank_lines_do_not_count(learn_sim):
    good = person_rows(3)
    no_user_id = ("P9", "SIS", "First", "Last", "", "x@example.edu")
    too_many = ("P8", "SIS", "First", "Last", "u8", "a@b.c", "extra")
    body = feed(PEOPLE_HEADER, [*good, no_user_id, too_many]) + b"\n\n"

    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", body))

    assert (info.rows, info.completed, info.errors) == (5, 3, 2)
    assert any("user_id" in p for p in info.problems)
    assert any("7 fields" in p for p in info.problems)


def test_a_header_without_a_required_column_fails_every_row(learn_sim):
    header = ("external_person_key", "firstname", "user_id")  # no lastname
    body = feed(header, [("P1", "A", "u1"), ("P2", "B", "u2")])

    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", body))

    assert (info.errors, info.completed) == (2, 0)
    assert "lastname" in info.problems[0]


def test_available_ind_other_than_y_or_n_is_a_warning(learn_sim):
    header = (*PEOPLE_HEADER, "available_ind")
    rows = [(*person_rows(3)[0], "Y"), (*person_rows(3)[1], "n"), (*person_rows(3)[2], "yes")]

    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", feed(header, rows)))

    assert (info.completed, info.warnings, info.errors) == (2, 1, 0)
    assert "available_ind 'yes'" in info.problems[0]


def test_memberships_naming_unknown_people_or_courses_fail_until_those_are_stored(learn_sim):
    memberships = feed(MEMBERSHIP_HEADER, membership_rows(4, courses=2))

    wrong_order = learn_sim.dataset(upload_and_finish(learn_sim, "membership", memberships))
    assert (wrong_order.errors, wrong_order.completed) == (4, 0)
    assert "does not exist" in wrong_order.problems[0]

    upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(4)))
    upload_and_finish(learn_sim, "course", feed(COURSE_HEADER, course_rows(2)))
    right_order = learn_sim.dataset(upload_and_finish(learn_sim, "membership", memberships))
    assert (right_order.errors, right_order.completed) == (0, 4), right_order.problems

    upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)), "delete")
    after_delete = learn_sim.dataset(upload_and_finish(learn_sim, "membership", memberships))
    assert (after_delete.errors, after_delete.completed) == (1, 3)


def test_organization_memberships_need_stored_organizations(learn_sim):
    org_header = ("external_organization_key", "organization_id", "organization_name")
    orgs = feed(org_header, [("O1", "ORG1", "Chess")])
    members = feed(("external_organization_key", "external_person_key"), [("O1", "P00001")])
    upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)))

    assert learn_sim.dataset(upload_and_finish(learn_sim, "organizationmembership", members)).errors == 1
    upload_and_finish(learn_sim, "organization", orgs)
    assert learn_sim.dataset(upload_and_finish(learn_sim, "organizationmembership", members)).errors == 0


def test_rows_with_errors_are_not_remembered(learn_sim):
    bad_person = ("P00001", "SIS", "", "Last", "user1", "u@example.edu")  # no firstname
    upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, [bad_person]))
    upload_and_finish(learn_sim, "course", feed(COURSE_HEADER, course_rows(1)))

    memberships = feed(MEMBERSHIP_HEADER, membership_rows(1))
    info = learn_sim.dataset(upload_and_finish(learn_sim, "membership", memberships))
    assert info.errors == 1


# ------------------------------------------------------------------------------------------------
# Fault modes


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
    counts = {c.tag: c.text for c in status_xml(learn_sim, stuck_uid)}
    assert (counts["queuedCount"], counts["completedCount"]) == ("3", "0")
    assert learn_sim.dataset(stuck_uid).stuck

    learn_sim.faults.stuck = False
    fresh = uid_of(post(learn_sim, "course", feed(COURSE_HEADER, course_rows(2))))
    assert learn_sim.dataset(stuck_uid).queued == 3
    deadline = time.monotonic() + 20
    while not learn_sim.dataset(fresh).finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert learn_sim.dataset(fresh).completed == 2


def test_fault_no_code_answers_200_without_a_reference_code(learn_sim):
    learn_sim.faults.no_code = True

    response = post(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)))

    assert response.status_code == 200
    assert not re.search(r"[0-9a-f]{32}", response.text)
    assert learn_sim.uploads == []


def test_fault_status_503_answers_503_for_the_first_n_status_requests(learn_sim):
    uid = upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)))
    learn_sim.faults.status_503 = 2
    auth = (learn_sim.username, learn_sim.password)

    codes = [requests.get(learn_sim.status_url(uid), auth=auth, timeout=30).status_code for _ in range(3)]

    assert codes == [503, 503, 200]
    assert learn_sim.status_requests == 3


def test_fault_drop_uploads_closes_the_connection_without_an_answer(learn_sim):
    learn_sim.faults.drop_uploads = 1
    body = feed(PEOPLE_HEADER, person_rows(2))

    with pytest.raises(requests.ConnectionError):
        post(learn_sim, "person", body)
    assert learn_sim.uploads == []

    uid_of(post(learn_sim, "person", body))
    assert learn_sim.upload_attempts == 2
    assert learn_sim.faults.drop_uploads == 0


# ------------------------------------------------------------------------------------------------
# Independence and command line


def test_simulator_imports_nothing_from_the_agent():
    tree = ast.parse((REPO / "agent" / "simulator.py").read_text(encoding="utf-8"))
    modules = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    modules += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert modules
    assert not [m for m in modules if m == "agent" or m.startswith("agent.")]


def test_command_line_prints_the_url_serves_with_faults_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "agent.simulator",
        "--port",
        "0",
        "--integration",
        "BB5bfc25366f037",
        "--username",
        "u1",
        "--password",
        "p1",
        "--fail-uploads",
        "1",
        "--rows-per-second",
        "1000",
    ]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first, second = process.stdout.readline(), process.stdout.readline()
        assert "fail_uploads=1" in second
        match = re.match(
            r"Learn simulator listening on (http://127\.0\.0\.1:(\d+)) "
            r"\(integration BB5bfc25366f037, username u1\)$",
            first.strip(),
        )
        assert match, first
        assert int(match.group(2)) > 0
        url = f"{match.group(1)}/webapps/bb-data-integration-flatfile-BB5bfc25366f037/endpoint/person/store"
        body = feed(PEOPLE_HEADER, person_rows(1))
        assert requests.post(url, data=body, auth=("u1", "p1"), timeout=30).status_code == 500
        assert SENTENCE.match(requests.post(url, data=body, auth=("u1", "p1"), timeout=30).text)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "answered 500" in out and "reference code" in out
    assert out.rstrip().endswith("Learn simulator stopped")
