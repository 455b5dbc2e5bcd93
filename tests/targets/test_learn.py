"""LearnTarget against the Learn simulator (and, for answers the simulator never gives, a scripted
server), always over real loopback sockets."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from agent.clock import utcnow
from agent.errors import DeliveryUnknown, StopRequested, TargetError
from agent.records import Receipt, Status, Submission
from agent.retry import RetryPolicy
from agent.simulator import LearnSimulator
from agent.targets.learn import LearnTarget, extract_reference
from tests.support.clock import FakeClock
from tests.support.learn import (
    COURSE_HEADER,
    MEMBERSHIP_HEADER,
    PEOPLE_HEADER,
    course_rows,
    learn_settings,
    membership_rows,
    person_rows,
    write_flatfile,
)
from tests.support.net import free_port, serving

PASSWORD = "Pa55-w0rd-that-must-never-leak"


_OPENED: list[LearnTarget] = []


def new_target(*args: Any, **kwargs: Any) -> LearnTarget:
    """A LearnTarget that is closed when the test ends (its session holds sockets)."""
    target = LearnTarget(*args, **kwargs)
    _OPENED.append(target)
    return target


@pytest.fixture(autouse=True)
def _close_targets() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


@pytest.fixture
def sim() -> Iterator[LearnSimulator]:
    """A simulator with a distinctive password, so leak checks can grep for it."""
    simulator = LearnSimulator(rows_per_second=2000, start_delay=0, password=PASSWORD).start()
    yield simulator
    simulator.stop()


def fast_retry(attempts: int = 5) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, first_delay=0.01)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pauses(clock: FakeClock) -> list[float]:
    return clock.sleeps


@pytest.fixture
def target(sim: LearnSimulator, clock: FakeClock) -> LearnTarget:
    return new_target(learn_settings(sim), retry=fast_retry(), clock=clock)


def people_file(tmp_path: Path, count: int = 3, **kwargs: object) -> Path:
    return write_flatfile(tmp_path / "people.txt", PEOPLE_HEADER, person_rows(count), **kwargs)  # type: ignore[arg-type]


def submission(path: Path, slug: str | None = "person", rows: int = 3, **kwargs: object) -> Submission:
    return Submission(path=path, name=path.name, object=slug, operation="store", rows=rows, **kwargs)  # type: ignore[arg-type]


def assert_no_leak(text: str) -> None:
    assert PASSWORD not in text


# ------------------------------------------------------------------------------------------------
# A scripted server for answers the simulator never gives (429, localized text, hostile XML).


@dataclass
class Scripted:
    answers: list[tuple[Any, ...]]  # (code, body) or (code, body, headers)
    requests: list[tuple[str, str, bool]] = field(default_factory=list)  # method, path, had Authorization
    url: str = ""


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    script = Scripted(answers=[])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            while length > 0:
                length -= len(self.rfile.read(min(length, 65536)))
            script.requests.append((self.command, self.path, "Authorization" in self.headers))
            code, body, *extra = script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
            data = body.encode("utf-8")
            self.send_response(code)
            for name, value in (extra[0] if extra else {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = answer

    with serving(Handler) as base:
        script.url = base
        yield script


def status_body(queued: int, completed: int, warnings: int = 0, errors: int = 0) -> str:
    return (
        f"<dataSetStatus><completedCount>{completed}</completedCount><dataSetUid>{'a' * 32}</dataSetUid>"
        f"<errorCount>{errors}</errorCount><queuedCount>{queued}</queuedCount>"
        f"<warningCount>{warnings}</warningCount></dataSetStatus>"
    )


def scripted_target(script: Scripted, **overrides: object) -> LearnTarget:
    endpoint = SimpleNamespace(url=script.url, integration="BBLEARN", username="u", password=PASSWORD)
    return new_target(learn_settings(endpoint, **overrides), retry=fast_retry(), clock=FakeClock())


def receipt_for(uid: str, *, submitted_ago: timedelta = timedelta()) -> Receipt:
    return Receipt(target="learn", kind="learn", reference=uid, submitted_at=utcnow() - submitted_ago)


# ------------------------------------------------------------------------------------------------
# submit


def test_submit_streams_the_file_with_a_content_length_and_returns_the_reference_code(sim, target, tmp_path):
    path = people_file(tmp_path, 25)

    receipt = target.submit(submission(path, rows=25))

    upload = sim.uploads[-1]
    assert receipt.reference == upload.uid and len(receipt.reference) == 32
    assert (receipt.target, receipt.kind) == ("learn", "learn")
    assert upload.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (upload.slug, upload.operation, upload.rows, upload.chunked) == ("person", "store", 25, False)
    assert upload.content_type == "text/plain; charset=utf-8"
    assert receipt.details["endpoint"] == sim.upload_url("person", "store")
    assert receipt.details["bytes_sent"] == str(path.stat().st_size)
    assert (receipt.details["slug"], receipt.details["operation"]) == ("person", "store")


def test_endpoint_in_the_receipt_never_carries_credentials(sim, tmp_path):
    url = sim.url.replace("http://", f"http://{sim.username}:{PASSWORD}@")
    target = new_target(learn_settings(sim, url=url))
    receipt = target.submit(submission(people_file(tmp_path)))
    assert receipt.details["endpoint"] == sim.upload_url("person", "store")


@pytest.mark.parametrize(
    ("add_bom", "non_ascii", "has_bom", "expect_bom"),
    [
        ("auto", True, False, True),
        ("auto", False, False, False),
        ("auto", True, True, False),
        ("yes", False, False, True),
        ("yes", True, True, False),
        ("no", True, False, False),
    ],
)
def test_bom_is_added_as_configured(sim, tmp_path, add_bom, non_ascii, has_bom, expect_bom):
    path = people_file(tmp_path, 2, bom=has_bom)
    target = new_target(learn_settings(sim, add_bom=add_bom))

    receipt = target.submit(submission(path, rows=2, non_ascii=non_ascii, has_bom=has_bom))

    sent = (b"\xef\xbb\xbf" if expect_bom else b"") + path.read_bytes()
    assert sim.uploads[-1].sha256 == hashlib.sha256(sent).hexdigest()
    assert receipt.details["bytes_sent"] == str(len(sent))
    assert sim.uploads[-1].rows == 2


@pytest.mark.parametrize("add_bom", ["auto", "yes"])
@pytest.mark.parametrize(("encoding", "mark"), [("latin-1", b""), ("utf-16-le", b"\xff\xfe")])
def test_a_latin1_or_utf16_file_is_sent_as_it_is_never_behind_a_utf8_bom(sim, tmp_path, add_bom, encoding, mark):
    """Issue 13.8: a UTF-8 BOM would make Learn read Latin-1 as UTF-8, or UTF-16 as garbage."""
    text = "|".join(PEOPLE_HEADER) + "\n" + "|".join(("P9", "SIS", "Zoë", "Ñúñez", "zoe", "z@x.edu")) + "\n"
    raw = mark + text.encode(encoding)
    path = tmp_path / "people.txt"
    path.write_bytes(raw)
    target = new_target(learn_settings(sim, add_bom=add_bom))

    target.submit(submission(path, rows=1, non_ascii=True, has_bom=bool(mark), encoding=encoding))

    assert sim.uploads[-1].sha256 == hashlib.sha256(raw).hexdigest()
    assert sim.uploads[-1].encoding == ("iso-8859-1" if encoding == "latin-1" else encoding)
    assert sim.store.knows("person", "P9") and sim.uploads[-1].errors == 0


def test_a_submission_without_a_slug_is_a_programming_error(target, tmp_path):
    with pytest.raises(ValueError, match="slug"):
        target.submit(submission(people_file(tmp_path), slug=None))


def test_server_errors_are_retried_with_exponential_backoff(sim, target, pauses, tmp_path):
    sim.faults.fail_uploads = 3

    receipt = target.submit(submission(people_file(tmp_path)))

    assert receipt.details["attempts"] == "4"
    assert pauses == [0.01, 0.02, 0.04]
    assert sim.upload_attempts == 4 and len(sim.uploads) == 1


def test_retries_stop_after_max_attempts_with_the_last_problem(sim, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sim.faults.fail_uploads = 10
    target = new_target(learn_settings(sim), retry=fast_retry(3), clock=FakeClock())

    with pytest.raises(TargetError) as caught:
        target.submit(submission(people_file(tmp_path)))

    assert caught.value.retryable
    assert "after 3 attempts" in caught.value.message and "HTTP 500" in caught.value.message
    assert sim.upload_attempts == 3
    assert_no_leak(str(caught.value))
    assert_no_leak(caplog.text)


class Hooks:
    """Counts the calls of a Submission's hooks."""

    def __init__(self) -> None:
        self.last_byte = 0
        self.refused = 0
        self.digests: list[str] = []

    def on_last_byte(self, sha256: str) -> None:
        self.last_byte += 1
        self.digests.append(sha256)

    def on_refused(self) -> None:
        self.refused += 1

    def submission(self, path: Path, **kwargs: object) -> Submission:
        return submission(path, before_last_byte=self.on_last_byte, refused=self.on_refused, **kwargs)


def test_a_connection_dropped_after_the_whole_body_is_never_sent_again(sim, target, tmp_path):
    """Issue 13: Learn read the whole file, so it may have queued it; a second copy would be a second data set."""
    sim.faults.drop_uploads = 1
    hooks = Hooks()
    with pytest.raises(DeliveryUnknown) as caught:
        target.submit(hooks.submission(people_file(tmp_path)))
    assert not caught.value.retryable
    assert "the whole of people.txt was sent" in caught.value.message
    assert "may have accepted it, so it was not sent again" in caught.value.message
    assert sim.upload_attempts == 1
    assert (hooks.last_byte, hooks.refused) == (1, 0)
    # the hook is told the digest of the file's bytes as they went out (the journal keeps it with SENT)
    assert hooks.digests == [hashlib.sha256(people_file(tmp_path).read_bytes()).hexdigest()]


def test_a_read_timeout_after_the_whole_body_is_never_sent_again(sim, tmp_path):
    sim.faults.slow_seconds = 5.0
    target = new_target(learn_settings(sim, read_timeout_seconds=0.2), retry=fast_retry(3), clock=FakeClock())
    hooks = Hooks()
    with pytest.raises(DeliveryUnknown) as caught:
        target.submit(hooks.submission(people_file(tmp_path)))
    assert "no answer within 0.2 seconds (read_timeout_seconds of [target:learn])" in caught.value.message
    assert sim.upload_attempts == 1 and hooks.last_byte == 1
    assert_no_leak(caught.value.message)


def test_a_connection_that_never_opens_is_retried(tmp_path):
    """Nothing reached Learn: trying again cannot make a second data set."""
    endpoint = SimpleNamespace(url=f"http://127.0.0.1:{free_port()}", integration="BBLEARN", username="u", password="p")
    clock = FakeClock()
    hooks = Hooks()
    target = new_target(learn_settings(endpoint), retry=fast_retry(3), clock=clock)
    with pytest.raises(TargetError) as caught:
        target.submit(hooks.submission(people_file(tmp_path)))
    assert caught.value.retryable and not isinstance(caught.value, DeliveryUnknown)
    assert "after 3 attempts" in caught.value.message and len(clock.sleeps) == 2
    assert hooks.last_byte == 0


def test_a_stop_during_the_pause_between_attempts_ends_the_upload(sim, tmp_path):
    sim.faults.fail_uploads = 5
    stop = threading.Event()
    hooks = Hooks()

    def refused_then_stop() -> None:
        hooks.on_refused()
        stop.set()  # as if SIGTERM came while Learn answered 500

    target = new_target(learn_settings(sim), retry=fast_retry(5), clock=FakeClock())
    with pytest.raises(StopRequested):
        target.submit(submission(people_file(tmp_path), refused=refused_then_stop, stop=stop))
    assert sim.upload_attempts == 1 and hooks.refused == 1


def test_a_slow_but_answering_learn_is_fine(sim, target, tmp_path):
    sim.faults.slow_seconds = 0.3
    assert target.submit(submission(people_file(tmp_path))).reference == sim.uploads[-1].uid


def test_a_200_without_a_reference_code_fails_at_once_quoting_the_answer(sim, target, tmp_path):
    sim.faults.no_code = True
    with pytest.raises(TargetError) as caught:
        target.submit(submission(people_file(tmp_path)))
    assert not caught.value.retryable and caught.value.http_status == 200
    assert "not taken as accepted" in caught.value.message and "Processing error" in caught.value.message
    assert sim.upload_attempts == 1


def test_a_200_sign_in_page_with_a_32_hex_nonce_is_not_a_receipt(sim, target, tmp_path):
    """Issue 13.2: an SSO page in front of Learn answers 200 with a nonce; it was taken as accepted, then polled."""
    sim.faults.html_page = True
    with pytest.raises(TargetError) as caught:
        target.submit(submission(people_file(tmp_path)))
    message = caught.value.message
    assert not caught.value.retryable and caught.value.http_status == 200
    assert "a web page (HTML), not an upload receipt" in message
    assert "its first line: '<!DOCTYPE html>'" in message
    assert sim.uploads == [] and sim.status_requests == 0


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("<!doctype html><p>ref 0123456789abcdef0123456789abcdef</p>", "a web page (HTML)"),
        (f"codes {'a' * 32} and {'b' * 32}\nsecond line", "with 2 candidate reference codes"),
        ("Erfolg: Datei hochgeladen.\nkein Code", "without a reference code"),
    ],
)
def test_a_200_that_is_html_or_holds_no_single_code_fails_quoting_its_first_line(scripted, tmp_path, body, why):
    scripted.answers = [(200, body)]
    with pytest.raises(TargetError) as caught:
        scripted_target(scripted).submit(submission(people_file(tmp_path)))
    assert why in caught.value.message and not caught.value.retryable
    assert f"its first line: {body.splitlines()[0][:200]!r}"[:40] in caught.value.message
    assert "second line" not in caught.value.message and "kein Code" not in caught.value.message
    assert len(scripted.requests) == 1


def test_a_wrong_password_is_final_and_explained_without_leaking(sim, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    target = new_target(learn_settings(sim, password=PASSWORD + "-typo"), clock=FakeClock())

    with pytest.raises(TargetError) as caught:
        target.submit(submission(people_file(tmp_path)))

    assert caught.value.message.startswith("Learn refused the username/password of integration BBLEARN (HTTP 401)")
    assert not caught.value.retryable and caught.value.http_status == 401
    assert sim.uploads == []
    assert_no_leak(str(caught.value))
    assert_no_leak(caplog.text)


@pytest.mark.parametrize("override", [{"integration": "BB5bfc25366f037"}, {"url_suffix": "/learn"}])
def test_a_wrong_integration_or_url_is_no_such_endpoint(sim, tmp_path, override):
    settings = (
        learn_settings(sim, url=sim.url + "/learn") if "url_suffix" in override else learn_settings(sim, **override)
    )
    with pytest.raises(TargetError) as caught:
        new_target(settings, clock=FakeClock()).submit(submission(people_file(tmp_path)))
    assert "no such endpoint: check url and integration" in caught.value.message
    assert not caught.value.retryable and caught.value.http_status == 404


def test_retry_after_of_429_and_503_is_honoured(scripted, tmp_path):
    code = "a" * 32
    scripted.answers = [(429, "slow down", {"Retry-After": "7"}), (503, "busy", {"Retry-After": "2"}), (200, code)]
    clock = FakeClock()
    hooks = Hooks()
    endpoint = SimpleNamespace(url=scripted.url, integration="BBLEARN", username="u", password=PASSWORD)
    target = new_target(learn_settings(endpoint), retry=RetryPolicy(attempts=5, first_delay=1.0), clock=clock)
    assert target.submit(hooks.submission(people_file(tmp_path))).reference == code
    assert clock.sleeps == [7.0, 2.0]  # never less than asked (the back-off alone would say 1, 2)
    assert (hooks.last_byte, hooks.refused) == (3, 2)


def test_429_is_retried_and_a_localized_sentence_still_yields_the_code(scripted, tmp_path):
    code = "3F2A9C0D5B7E4E1F9A6C8D2B4E0F1A7C"
    scripted.answers = [
        (429, "Too Many Requests"),
        (503, "busy"),
        (200, f"Éxito: archivo cargado. Use el código de referencia {code} para rastrear."),
    ]
    target = scripted_target(scripted)

    receipt = target.submit(submission(people_file(tmp_path)))

    assert receipt.reference == code.lower()
    assert [r[:2] for r in scripted.requests] == [
        ("POST", "/webapps/bb-data-integration-flatfile-BBLEARN/endpoint/person/store")
    ] * 3
    assert all(r[2] for r in scripted.requests)


@pytest.mark.parametrize(
    ("code", "words"), [(403, "Learn refused the username/password"), (413, "rejected"), (302, "redirected")]
)
def test_other_refusals_are_final(scripted, tmp_path, code, words):
    scripted.answers = [(code, "no")]
    with pytest.raises(TargetError) as caught:
        scripted_target(scripted).submit(submission(people_file(tmp_path)))
    assert words in caught.value.message and not caught.value.retryable
    assert len(scripted.requests) == 1


def test_reference_extraction_ignores_the_wording():
    assert extract_reference(
        "Success: Feed File Uploaded.  Use the reference code "
        "0123456789abcdef0123456789abcdef to track these records in the logs."
    ) == ("0123456789abcdef0123456789abcdef")
    upper = "ABCDEF0123456789ABCDEF0123456789"
    assert extract_reference(f"referencia: {upper}.") == upper.lower()
    assert extract_reference("Success: Feed File Uploaded.  Use the reference code to track") is None
    assert extract_reference("0123456789abcdef0123456789abcdef0") is None  # 33 hex digits is not a code
    assert extract_reference(f"{upper} again {upper.lower()}") == upper.lower()  # one code, said twice
    assert extract_reference(f"<p>ok {upper}</p>", "text/html; charset=UTF-8") is None
    assert extract_reference(f"<!-- sso -->\n<div>nonce {upper}</div>", "text/html") is None
    # Learn's plain sentence labelled text/html by a servlet is still a receipt: refusing it would end
    # an accepted upload as FAILED, and an admin moving it back would send it twice.
    sentence = f"Success: Feed File Uploaded.  Use the reference code {upper} to track these records in the logs."
    assert extract_reference(sentence, "text/html;charset=UTF-8") == upper.lower()


# ------------------------------------------------------------------------------------------------
# status and wait


def test_status_keeps_every_field(sim, target, tmp_path):
    receipt = target.submit(submission(people_file(tmp_path)))
    assert sim.wait_idle(20)

    progress = target.status(receipt)

    assert progress.counts() == (0, 3, 0, 0)
    assert progress.fields["dataSetUid"] == receipt.reference
    assert progress.fields["dataIntegrationId"] == "_123_1"
    assert progress.fields["dataIntegrationId@type"] == "blackboard.platform.dataintegration.DataIntegration"
    assert {"machineName", "startDate", "lastEntryDate", "queuedCount"} <= set(progress.fields)


def test_wait_reports_success_with_counts_and_calls_back(sim, target, tmp_path):
    receipt = target.submit(submission(people_file(tmp_path, 40), rows=40))
    seen = []

    result = target.wait(receipt, 40, on_progress=seen.append)

    assert result.status is Status.SUCCESS
    assert result.progress is not None and result.progress.counts() == (0, 40, 0, 0)
    assert seen and seen[-1] == result.progress


@pytest.mark.timeout(60)
def test_wait_estimates_the_time_left_from_the_pace_and_polls_few_times(tmp_path):
    simulator = LearnSimulator(rows_per_second=1000, start_delay=0.3, password=PASSWORD).start()
    try:
        settings = learn_settings(simulator, poll_initial_seconds=0.5, poll_max_seconds=5)
        target = new_target(settings)
        receipt = target.submit(submission(people_file(tmp_path, 2000), rows=2000))
        seen = []

        result = target.wait(receipt, 2000, on_progress=seen.append)

        assert result.status is Status.SUCCESS
        estimates = [p.eta_seconds for p in seen if p.eta_seconds is not None]
        assert estimates and all(0 <= eta <= 2.5 for eta in estimates)  # 2,000 rows at 1,000 rows/s
        # A 0.1 s poller would take about 23; the pace is read from real time, so a loaded machine
        # may cost a poll or three more (it took 8 once under load), never the poller's 23.
        assert simulator.status_requests <= 11
    finally:
        simulator.stop()


def test_wait_reports_warnings(sim, target, tmp_path):
    rows = [(*row, "Maybe") for row in person_rows(2)]
    path = write_flatfile(tmp_path / "p.txt", (*PEOPLE_HEADER, "available_ind"), rows)
    receipt = target.submit(submission(path, rows=2))

    result = target.wait(receipt, 2)

    assert result.status is Status.WARNINGS
    assert result.progress is not None and result.progress.warnings == 2
    assert receipt.reference in result.message


def test_wrong_order_shows_up_as_record_errors(sim, target, tmp_path):
    memberships = write_flatfile(tmp_path / "m.txt", MEMBERSHIP_HEADER, membership_rows(3))
    result = target.wait(target.submit(submission(memberships, slug="membership")), 3)
    assert result.status is Status.ERRORS
    assert result.progress is not None and result.progress.errors == 3
    assert "SIS framework logs" in result.message

    target.wait(target.submit(submission(people_file(tmp_path))), 3)
    target.wait(
        target.submit(
            submission(write_flatfile(tmp_path / "c.txt", COURSE_HEADER, course_rows(1)), slug="course", rows=1)
        ),
        1,
    )
    assert target.wait(target.submit(submission(memberships, slug="membership")), 3).status is Status.SUCCESS


def test_a_stuck_data_set_times_out(sim, tmp_path):
    sim.faults.stuck = True
    target = new_target(learn_settings(sim, timeout_minutes=0.01))
    receipt = target.submit(submission(people_file(tmp_path)))

    result = target.wait(receipt, 3)

    assert result.status is Status.TIMED_OUT
    assert result.progress is not None and result.progress.queued == 3
    assert receipt.reference in result.message and "accepted" in result.message


def test_the_timeout_counts_from_the_start_of_wait(sim, target, tmp_path):
    fresh = target.submit(submission(people_file(tmp_path)))
    old = Receipt(
        target="learn",
        kind="learn",
        reference=fresh.reference,
        details=fresh.details,
        submitted_at=utcnow() - timedelta(hours=3),
    )
    assert target.wait(old, 3).status is Status.SUCCESS


def test_five_status_failures_in_a_row_are_tolerated(sim, target, tmp_path):
    receipt = target.submit(submission(people_file(tmp_path)))
    assert sim.wait_idle(20)  # processed already, so the sixth reading is the last
    sim.faults.status_503 = 5
    assert target.wait(receipt, 3).status is Status.SUCCESS
    assert sim.status_requests == 6


def test_a_status_outage_longer_than_five_polls_is_waited_out(sim, target, clock, tmp_path):
    receipt = target.submit(submission(people_file(tmp_path)))
    assert sim.wait_idle(20)
    sim.faults.status_failures = 20
    sim.faults.retry_after = 1

    assert target.wait(receipt, 3).status is Status.SUCCESS
    assert sim.status_requests == 21
    assert all(pause >= 1 for pause in clock.sleeps[:20])  # Retry-After honoured between failed polls


def test_a_status_outage_until_the_timeout_is_timed_out_with_the_last_reading_and_the_errors(
    sim, target, clock, tmp_path
):
    sim.faults.stuck = True
    receipt = target.submit(submission(people_file(tmp_path)))
    sim.faults.retry_after = None

    def outage_after_first_reading(progress: object) -> None:
        sim.faults.status_failures = 10**6

    result = target.wait(receipt, 3, on_progress=outage_after_first_reading)

    assert result.status is Status.TIMED_OUT
    assert result.progress is not None and result.progress.counts() == (3, 0, 0, 0)
    failed = sim.status_requests - 1
    assert failed > 100  # 30 s of polls paced at most 0.2 s apart
    assert f"{failed} status polls failed" in result.message and "HTTP 503" in result.message
    assert "last reading: 3 queued, 0 completed" in result.message and receipt.reference in result.message
    assert sum(clock.sleeps) == pytest.approx(30, abs=0.01) and max(clock.sleeps) <= 0.2


def test_a_refused_status_request_is_final(sim, target, tmp_path):
    receipt = target.submit(submission(people_file(tmp_path)))
    calls: list[int] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, *args, **kwargs: calls.append(response.status_code))
    wrong = new_target(learn_settings(sim, password="nope"), session=session)

    result = wrong.wait(receipt, 3)

    assert result.status is Status.FAILED and calls == [401]
    assert "refused the username/password" in result.message and receipt.reference in result.message


def test_an_early_zero_queue_is_not_taken_for_done(scripted):
    scripted.answers = [(200, status_body(0, 0)), (200, status_body(2, 1)), (200, status_body(0, 3))]
    result = scripted_target(scripted).wait(receipt_for("a" * 32), 3)
    assert result.status is Status.SUCCESS and result.progress is not None and result.progress.completed == 3
    assert len(scripted.requests) == 3
    assert scripted.requests[0][1].endswith("/endpoint/dataSetStatus/" + "a" * 32)


def test_counts_that_stop_moving_end_the_wait(scripted):
    scripted.answers = [(200, status_body(0, 5, errors=1))]  # fewer than the 10 rows we counted
    result = scripted_target(scripted).wait(receipt_for("a" * 32), 10)
    assert result.status is Status.ERRORS
    assert len(scripted.requests) == 4  # first reading + 3 unchanged


def test_hostile_status_xml_counts_as_a_failed_poll(scripted):
    scripted.answers = [(200, '<!DOCTYPE x [<!ENTITY a "b">]><dataSetStatus/>')]
    result = scripted_target(scripted, timeout_minutes=0.05).wait(receipt_for("a" * 32), 1)
    assert result.status is Status.TIMED_OUT and "DOCTYPE or ENTITY" in result.message
    assert result.progress is None and "could not be read in 0.05 minutes" in result.message
    assert f"{len(scripted.requests)} status polls failed" in result.message


def test_stop_before_waiting_raises_at_once(sim, target, tmp_path):
    receipt = target.submit(submission(people_file(tmp_path)))
    stop = threading.Event()
    stop.set()
    with pytest.raises(StopRequested):
        target.wait(receipt, 3, stop=stop)
    assert sim.status_requests == 0


@pytest.mark.timeout(60)
def test_stop_interrupts_a_long_pause_between_polls(sim, tmp_path):
    sim.faults.stuck = True
    settings = learn_settings(sim, poll_initial_seconds=600, poll_max_seconds=600, timeout_minutes=60)
    target = new_target(settings)
    receipt = target.submit(submission(people_file(tmp_path)))
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    with pytest.raises(StopRequested):
        target.wait(receipt, 3, stop=stop)


def test_stop_set_during_progress_callback_raises(sim, tmp_path):
    sim.faults.stuck = True
    target = new_target(learn_settings(sim))
    receipt = target.submit(submission(people_file(tmp_path)))
    stop = threading.Event()
    with pytest.raises(StopRequested):
        target.wait(receipt, 3, on_progress=lambda _: stop.set(), stop=stop)
    assert sim.status_requests == 1


# ------------------------------------------------------------------------------------------------
# check


def test_check_reaches_learn_without_posting(sim, target):
    [result] = target.check()
    assert result.ok, result.detail
    assert result.detail == f"reached Learn at {sim.url}, integration BBLEARN, credentials accepted"
    assert sim.upload_attempts == 0 and sim.uploads == []


def test_check_explains_a_wrong_password(sim, caplog):
    caplog.set_level(logging.DEBUG)
    [result] = new_target(learn_settings(sim, password="wrong-" + PASSWORD)).check()
    assert not result.ok
    assert result.detail.startswith("Learn refused the username/password of integration BBLEARN (HTTP 401)")
    assert_no_leak(result.detail)
    assert_no_leak(caplog.text)


def test_check_explains_a_wrong_integration(sim):
    [result] = new_target(learn_settings(sim, integration="bb_bb60")).check()
    assert not result.ok and "no such endpoint: check url and integration" in result.detail


def test_check_explains_an_unreachable_server(sim):
    url = f"http://127.0.0.1:{free_port()}"
    [result] = new_target(learn_settings(sim, url=url)).check()
    assert not result.ok
    assert f"could not reach Learn at {url}" in result.detail and "refused" in result.detail.lower()


def test_check_explains_an_untrusted_certificate(learn_tls_sim):
    [result] = new_target(learn_settings(learn_tls_sim)).check()
    assert not result.ok and "set verify_tls = <CA bundle path> for a private CA" in result.detail


def test_a_ca_bundle_path_makes_tls_work(learn_tls_sim, tmp_path):
    target = new_target(learn_settings(learn_tls_sim, verify_tls=learn_tls_sim.ca_bundle))
    [result] = target.check()
    assert result.ok, result.detail
    receipt = target.submit(submission(people_file(tmp_path)))
    assert target.wait(receipt, 3).status is Status.SUCCESS


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_tls_no_skips_verification(learn_tls_sim):
    [result] = new_target(learn_settings(learn_tls_sim, verify_tls=False)).check()
    assert result.ok, result.detail
