"""The flat-file endpoints over a real loopback socket: upload answers, dataSetStatus, paths, auth."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
from collections.abc import Iterator

import pytest
import requests

from agent.simulator import SUCCESS_SENTENCE
from tests.simulator.client import (
    ISO_MS_OFFSET,
    feed,
    post,
    status_response,
    status_xml,
    uid_of,
    upload_and_finish,
)
from tests.support.learn import COURSE_HEADER, PEOPLE_HEADER, course_rows, person_rows

# ------------------------------------------------------------------------------------------------
# Upload


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


def test_401_is_a_tomcat_style_html_page_with_a_realm_and_no_token(learn_sim):
    response = requests.get(learn_sim.status_url("0" * 32), auth=("sis-integration", "wrong"), timeout=30)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Blackboard Learn"'
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<title>HTTP Status 401 – Unauthorized</title>" in response.text
    assert not re.search(r"[0-9a-fA-F]{32}", response.text)


@pytest.mark.parametrize(
    "path",
    [
        "/webapps/bb-data-integration-flatfile-OTHER/endpoint/person/store",
        "/webapps/bb-data-integration-flatfile-BBLEARN/endpoint/people/store",
        "/webapps/bb-data-integration-flatfile-BBLEARN/endpoint/person/insert",
        "/webapps/bb-data-integration-flatfile-BBLEARN/endpoint/course/course/store",
        "/webapps/bb-data-integration-flatfile-BBLEARN/endpoint/person/store/",
        "/somewhere/else",
    ],
)
def test_unknown_integration_slug_operation_or_a_trailing_slash_is_404(learn_sim, path):
    response = requests.post(
        learn_sim.url + path,
        data=b"external_person_key|user_id\n",
        auth=(learn_sim.username, learn_sim.password),
        timeout=30,
    )
    assert response.status_code == 404
    assert learn_sim.uploads == []


def test_status_with_a_trailing_slash_is_404(learn_sim):
    uid = upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)))
    auth = (learn_sim.username, learn_sim.password)

    assert requests.get(learn_sim.status_url(uid) + "/", auth=auth, timeout=30).status_code == 404
    assert requests.get(learn_sim.status_url(uid), auth=auth, timeout=30).status_code == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_an_empty_body_is_400_and_creates_no_data_set(learn_sim, chunked):
    body: bytes | Iterator[bytes] = iter([b""]) if chunked else b""

    response = post(learn_sim, "person", body)

    assert response.status_code == 400
    assert "empty" in response.text
    assert learn_sim.uploads == []


def test_an_upload_without_length_or_chunking_is_411(learn_sim):
    with socket.create_connection(("127.0.0.1", learn_sim.port), timeout=30) as sock:
        path = learn_sim.upload_url("person").removeprefix(learn_sim.url)
        basic = base64.b64encode(f"{learn_sim.username}:{learn_sim.password}".encode()).decode()
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 411 ")


@pytest.mark.parametrize("operation", ["store", "refresh", "refreshlegacy", "delete"])
def test_every_operation_is_accepted(learn_sim, operation):
    uid = upload_and_finish(learn_sim, "course", feed(COURSE_HEADER, course_rows(2)), operation)
    assert learn_sim.dataset(uid).operation == operation


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


# ------------------------------------------------------------------------------------------------
# dataSetStatus


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
    found = [values[t] for t in ("completedCount", "queuedCount", "errorCount", "warningCount")]
    assert found == ["4", "0", "0", "0"]
    assert root.find("dataIntegrationId").get("type") == "blackboard.platform.dataintegration.DataIntegration"
    assert re.fullmatch(r"_\d+_1", values["dataIntegrationId"])
    assert values["machineName"] == "learn-sim-1"
    assert ISO_MS_OFFSET.match(values["startDate"]) and ISO_MS_OFFSET.match(values["lastEntryDate"])


def test_status_puts_one_element_per_line_indented_like_learn(learn_sim):
    uid = upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(2)))

    lines = status_response(learn_sim, uid).text.splitlines()

    assert lines[0].startswith("<?xml ")
    assert lines[1] == "<dataSetStatus>"
    assert lines[-1] == "</dataSetStatus>"
    children = lines[2:-1]
    assert len(children) == 9
    for line in children:
        assert re.fullmatch(r"    <(\w+)( type=\"[\w.]+\")?>[^<]*</\1>", line), line
    assert "    <completedCount>2</completedCount>" in children
    assert f"    <dataSetUid>{uid}</dataSetUid>" in children


def test_unknown_reference_code_is_404(learn_sim):
    response = requests.get(learn_sim.status_url("f" * 32), auth=(learn_sim.username, learn_sim.password), timeout=30)
    assert response.status_code == 404
    assert "f" * 32 in response.text
