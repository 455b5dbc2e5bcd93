"""The batch pipeline against the Learn simulator over loopback: order, holds, guard, recovery."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path

import pytest

from agent.batchitem import BatchContext
from agent.config import load_config
from agent.journal import Journal
from agent.pipeline import Pipeline
from agent.records import Status
from agent.settings import Config
from agent.simulator import LearnSimulator
from tests.support.agentconf import load
from tests.support.learn import (
    COURSE_HEADER,
    MEMBERSHIP_HEADER,
    PEOPLE_HEADER,
    course_rows,
    membership_rows,
    person_rows,
    write_flatfile,
)
from tests.support.pipeline import claim_all, drop_standard_files, fast_pipeline
from tests.support.recording import RecordingReporter
from tests.support.s3 import Keys, WriteOnlyBucket
from tests.support.s3proxy import S3FaultProxy


def test_batch_is_sent_in_dependency_order_and_archived(pipeline_env, learn_sim: LearnSimulator) -> None:
    config, journal, reporter = pipeline_env
    files = drop_standard_files(config.route().watch)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files.values()}
    pipeline = fast_pipeline(config, journal, reporter)
    ids = claim_all(pipeline, config, [files["memberships"], files["courses"], files["people"]])

    batch = pipeline.process(config.route(), ids)

    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["person", "course", "membership"]
    assert [u.sha256 for u in learn_sim.uploads_snapshot()] == [
        digests["users.txt"],
        digests["courses.txt"],
        digests["enrol.txt"],
    ]
    assert [f.status for f in batch.files] == [Status.SUCCESS] * 3
    assert all(f.progress is not None and f.progress.errors == 0 for f in batch.files)
    archived = sorted(p.name for p in config.agent.archive_dir.iterdir())
    assert len(archived) == 3 and all(".2" in name for name in archived)  # NAME.<stamp>.txt
    assert not any(config.route().watch.iterdir()) and not any(config.agent.processing_dir.iterdir())
    assert reporter.batches == [batch] and len(reporter.files) == 3
    records = {journal.file(i).name: journal.file(i) for i in ids}
    assert records["users.txt"].state == "archived" and records["users.txt"].reference
    assert records["users.txt"].sha256 == digests["users.txt"]


def test_a_failed_file_holds_only_the_files_that_depend_on_it(pipeline_env, learn_sim: LearnSimulator) -> None:
    """People failed: memberships (which name people) wait; courses (which name no people) go out."""
    config, journal, reporter = pipeline_env
    files = drop_standard_files(config.route().watch)
    pipeline = fast_pipeline(config, journal, reporter)
    ids = claim_all(pipeline, config, list(files.values()))
    learn_sim.faults.fail_uploads = 2  # both attempts for the first file (people) get HTTP 500

    batch = pipeline.process(config.route(), ids)

    by_name = {f.name: f for f in batch.files}
    assert by_name["users.txt"].status is Status.FAILED
    assert "500" in by_name["users.txt"].message
    assert by_name["courses.txt"].status is Status.SUCCESS
    assert by_name["enrol.txt"].status is Status.HELD and by_name["enrol.txt"].held_by == "users.txt"
    assert "users.txt" in (config.agent.failed_dir / "enrol.txt.reason.txt").read_text(encoding="utf-8")
    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["course"]
    assert not batch.ok


def test_a_200_sign_in_page_fails_the_file_and_holds_its_dependents(pipeline_env, learn_sim: LearnSimulator) -> None:
    """Issue 13.2: a sign-in page with a 32-hex nonce is no receipt: FAILED, nothing polled, dependents held."""
    config, journal, reporter = pipeline_env
    files = drop_standard_files(config.route().watch)
    pipeline = fast_pipeline(config, journal, reporter)
    ids = claim_all(pipeline, config, [files["people"], files["memberships"]])
    learn_sim.faults.html_page = True

    batch = pipeline.process(config.route(), ids)

    by_name = {f.name: f for f in batch.files}
    assert by_name["users.txt"].status is Status.FAILED
    assert "a web page (HTML), not an upload receipt" in by_name["users.txt"].message
    assert by_name["enrol.txt"].status is Status.HELD
    assert (config.agent.failed_dir / "users.txt").exists()
    assert learn_sim.status_requests == 0 and learn_sim.uploads_snapshot() == []


def test_an_answer_lost_after_the_whole_body_is_unconfirmed_never_resent_and_holds_dependents(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    """Issue 13.3: the upload's last byte went out, Learn's answer never came: UNCONFIRMED, one data set."""
    config = load(tmp_path, learn_sim.url, target_extra="read_timeout_seconds = 1\n")
    files = drop_standard_files(config.route().watch)
    reporter = RecordingReporter()
    with Journal(config.agent.journal_path) as journal:
        pipeline = fast_pipeline(config, journal, reporter)
        ids = claim_all(pipeline, config, [files["people"], files["courses"], files["memberships"]])
        learn_sim.faults.withhold_answers = 1

        batch = pipeline.process(config.route(), ids)

        people = journal.file(ids[0])
    by_name = {f.name: f for f in batch.files}
    assert by_name["users.txt"].status is Status.UNCONFIRMED and by_name["enrol.txt"].status is Status.HELD
    assert by_name["courses.txt"].status is Status.SUCCESS and not batch.ok
    assert "may have accepted it, so it was not sent again" in by_name["users.txt"].message
    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["person", "course"]  # the person file once
    assert people.state == "unconfirmed" and people.sent_at is not None and people.reference is None
    assert by_name["users.txt"].sent_at == people.sent_at
    assert Path(people.current_path or "") == config.agent.failed_dir / "users.txt"
    reason = (config.agent.failed_dir / "users.txt.reason.txt").read_text(encoding="utf-8")
    assert "Do not move it back yet" in reason and "Fix the problem, then move" not in reason


def test_a_file_with_another_delimiter_than_the_integrations_is_rejected_naming_both(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    """Issue 13.1: the delimiter belongs to the integration (default pipe); a comma file is refused unsent."""
    config = load(tmp_path, learn_sim.url)
    assert config.targets["learn"].delimiter == "pipe"  # type: ignore[union-attr]
    with Journal(config.agent.journal_path) as journal:
        drop = config.route().watch
        comma = write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(2), delimiter=",")
        pipeline = fast_pipeline(config, journal, RecordingReporter())
        batch = pipeline.process(config.route(), claim_all(pipeline, config, [comma]))
    assert batch.files[0].status is Status.REJECTED
    reason = (config.agent.failed_dir / "users.txt.reason.txt").read_text(encoding="utf-8")
    assert "separated by comma" in reason and "expects pipe" in reason
    assert learn_sim.uploads_snapshot() == []


def test_a_colon_integration_takes_colon_files(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, target_extra="delimiter = colon")
    with Journal(config.agent.journal_path) as journal:
        colon = write_flatfile(config.route().watch / "courses.txt", COURSE_HEADER, course_rows(2), delimiter=":")
        pipeline = fast_pipeline(config, journal, RecordingReporter())
        batch = pipeline.process(config.route(), claim_all(pipeline, config, [colon]))
    assert batch.files[0].status is not Status.REJECTED, batch.files[0].message
    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["course"]


ACCENTED_PEOPLE = [("P-José", "SIS", "José", "Ñúñez", "jnunez", "jn@example.edu"), *person_rows(1)]


@pytest.mark.parametrize(("encoding", "mark"), [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_with_its_mark_is_sent_byte_for_byte_and_learn_reads_the_accents(
    tmp_path: Path, learn_sim: LearnSimulator, encoding: str, mark: bytes
) -> None:
    """Issue 13.8: UTF-16 with a BOM is accepted, sent as is (no UTF-8 BOM added), and read right."""
    config = load(tmp_path, learn_sim.url)
    text = "\r\n".join("|".join(row) for row in [PEOPLE_HEADER, *ACCENTED_PEOPLE]) + "\r\n"
    path = config.route().watch / "users.txt"
    path.write_bytes(mark + text.encode(encoding))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with Journal(config.agent.journal_path) as journal:
        pipeline = fast_pipeline(config, journal, RecordingReporter())
        batch = pipeline.process(config.route(), claim_all(pipeline, config, [path]))
    assert batch.files[0].status is Status.SUCCESS, batch.files[0].message
    [upload] = learn_sim.uploads_snapshot()
    assert (upload.sha256, upload.encoding, upload.rows, upload.errors) == (digest, encoding, 2, 0)
    assert learn_sim.store.knows("person", "P-José")


def test_a_latin1_route_sends_latin1_files_without_a_bom_and_learn_reads_the_accents(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    """Issue 13.8: `encoding = latin-1`: checked as Latin-1 and sent as is, so Learn reads ISO-8859-1."""
    config = load(tmp_path, learn_sim.url, route_extra="encoding = latin-1")
    text = "\n".join("|".join(row) for row in [PEOPLE_HEADER, *ACCENTED_PEOPLE]) + "\n"
    path = config.route().watch / "users.txt"
    path.write_bytes(text.encode("latin-1"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with Journal(config.agent.journal_path) as journal:
        pipeline = fast_pipeline(config, journal, RecordingReporter())
        batch = pipeline.process(config.route(), claim_all(pipeline, config, [path]))
    assert batch.files[0].status is Status.SUCCESS, batch.files[0].message
    [upload] = learn_sim.uploads_snapshot()
    assert (upload.sha256, upload.encoding, upload.errors) == (digest, "iso-8859-1", 0)
    assert learn_sim.store.knows("person", "P-José")


def test_an_undeclared_latin1_file_is_still_rejected_with_the_line_and_the_byte(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    config = load(tmp_path, learn_sim.url)
    path = config.route().watch / "users.txt"
    path.write_bytes(("\n".join("|".join(row) for row in [PEOPLE_HEADER, *ACCENTED_PEOPLE]) + "\n").encode("latin-1"))
    with Journal(config.agent.journal_path) as journal:
        pipeline = fast_pipeline(config, journal, RecordingReporter())
        batch = pipeline.process(config.route(), claim_all(pipeline, config, [path]))
    assert batch.files[0].status is Status.REJECTED
    assert "not UTF-8 text (line 2 has the byte 0xE9" in batch.files[0].message
    assert learn_sim.uploads_snapshot() == []


def test_on_failure_continue_sends_dependents_anyway(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, on_failure="continue")
    reporter = RecordingReporter()
    with Journal(config.agent.journal_path) as journal:
        files = drop_standard_files(config.route().watch)
        pipeline = fast_pipeline(config, journal, reporter)
        ids = claim_all(pipeline, config, list(files.values()))
        learn_sim.faults.fail_uploads = 2
        batch = pipeline.process(config.route(), ids)
    statuses = {f.name: f.status for f in batch.files}
    assert statuses["users.txt"] is Status.FAILED
    assert statuses["courses.txt"] is Status.SUCCESS
    assert statuses["enrol.txt"] is Status.ERRORS  # its people never reached Learn
    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["course", "membership"]


def test_rejected_file_goes_to_failed_with_reason_and_holds_dependents(pipeline_env, learn_sim: LearnSimulator) -> None:
    config, journal, reporter = pipeline_env
    drop = config.route().watch
    people = drop / "users.txt"
    people.write_bytes(b"external_person_key|firstname|lastname|user_id\nP1|Ren\xe9|X|rx\n")  # Latin-1
    unknown = drop / "notes.txt"
    unknown.write_text("hello|world\n1|2\n", encoding="utf-8")
    members = write_flatfile(drop / "enrol.txt", MEMBERSHIP_HEADER, membership_rows(2))
    pipeline = fast_pipeline(config, journal, reporter)
    ids = claim_all(pipeline, config, [people, unknown, members])

    batch = pipeline.process(config.route(), ids)

    statuses = {f.name: f.status for f in batch.files}
    assert statuses == {"users.txt": Status.REJECTED, "notes.txt": Status.REJECTED, "enrol.txt": Status.HELD}
    assert "UTF-8" in (config.agent.failed_dir / "users.txt.reason.txt").read_text(encoding="utf-8")
    assert "unrecognized header" in (config.agent.failed_dir / "notes.txt.reason.txt").read_text(encoding="utf-8")
    assert learn_sim.uploads_snapshot() == []


def test_record_errors_are_reported_but_do_not_hold(pipeline_env, learn_sim: LearnSimulator) -> None:
    config, journal, reporter = pipeline_env
    drop = config.route().watch
    members = write_flatfile(drop / "enrol.txt", MEMBERSHIP_HEADER, membership_rows(3))  # nobody exists yet
    courses = write_flatfile(drop / "zcourses.txt", COURSE_HEADER, course_rows(1))
    pipeline = fast_pipeline(config, journal, reporter)
    # memberships alone in a batch, then courses: the memberships name unknown people
    first = pipeline.process(config.route(), claim_all(pipeline, config, [members]))
    second = pipeline.process(config.route(), claim_all(pipeline, config, [courses]))
    assert first.files[0].status is Status.ERRORS and first.files[0].progress.errors == 3  # type: ignore[union-attr]
    assert first.files[0].final_path.parent == config.agent.archive_dir  # type: ignore[union-attr]
    assert second.files[0].status is Status.SUCCESS


def test_refresh_guard_holds_a_shrunken_refresh_until_forced(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, operation="refresh")
    reporter = RecordingReporter()
    drop = config.route().watch
    with Journal(config.agent.journal_path) as journal:
        pipeline = fast_pipeline(config, journal, reporter)
        full = write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(100))
        assert pipeline.process(config.route(), claim_all(pipeline, config, [full])).files[0].status is Status.SUCCESS

        short = write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(80))
        held = pipeline.process(config.route(), claim_all(pipeline, config, [short])).files[0]
        assert held.status is Status.HELD
        assert "80 rows" in held.message and "100 rows" in held.message
        assert held.message.endswith(f"{held.final_path} --route sis --operation refresh --force")
        assert len(learn_sim.uploads_snapshot()) == 1

        ok = write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(95))  # within 10 %
        assert pipeline.process(config.route(), claim_all(pipeline, config, [ok])).files[0].status is Status.SUCCESS

        held_path = held.final_path
        assert held_path is not None and held_path.exists()
        forced = pipeline.process(config.route(), claim_all(pipeline, config, [held_path]), BatchContext(force=True))
        assert forced.files[0].status is Status.SUCCESS
        assert len(learn_sim.uploads_snapshot()) == 3


def test_stuck_processing_ends_timed_out_and_is_archived(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, timeout_minutes=0.01)  # 0.6 s
    reporter = RecordingReporter()
    learn_sim.faults.stuck = True
    with Journal(config.agent.journal_path) as journal:
        people = write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(3))
        pipeline = fast_pipeline(config, journal, reporter)
        outcome = pipeline.process(config.route(), claim_all(pipeline, config, [people])).files[0]
    assert outcome.status is Status.TIMED_OUT
    assert outcome.receipt is not None
    assert outcome.final_path is not None and outcome.final_path.parent == config.agent.archive_dir


def test_long_processing_sends_one_still_processing_notice(tmp_path: Path) -> None:
    with LearnSimulator(rows_per_second=10.0) as sim:  # 12 rows: over a second
        config = load(tmp_path, sim.url, target_extra="long_run_minutes = 0.005")  # 0.3 s
        reporter = RecordingReporter()
        with Journal(config.agent.journal_path) as journal:
            people = write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(12))
            pipeline = fast_pipeline(config, journal, reporter)
            (file_id,) = claim_all(pipeline, config, [people])
            outcome = pipeline.process(config.route(), [file_id]).files[0]
            assert journal.file(file_id).long_run_alerted
    assert outcome.status is Status.SUCCESS
    assert [name for name, _ in reporter.long_runs] == ["users.txt"]


def test_a_file_that_breaks_inspection_is_set_aside_and_the_rest_go_on(
    pipeline_env, learn_sim: LearnSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected fault: the inspection raises for one file (a bug or an I/O error must not block a batch)."""
    import agent.profiles

    config, journal, reporter = pipeline_env
    real = agent.profiles.inspect_file

    def flaky(path: Path, *args: object, **how: object):  # type: ignore[no-untyped-def]
        if path.name == "courses.txt":
            raise MemoryError("simulated")
        return real(path, *args, **how)

    monkeypatch.setattr(agent.profiles, "inspect_file", flaky)
    drop = config.route().watch
    people = write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(2))
    courses = write_flatfile(drop / "courses.txt", COURSE_HEADER, course_rows(1))
    pipeline = fast_pipeline(config, journal, reporter)
    batch = pipeline.process(config.route(), claim_all(pipeline, config, [people, courses]))
    statuses = {f.name: f.status for f in batch.files}
    assert statuses == {"users.txt": Status.SUCCESS, "courses.txt": Status.REJECTED}
    assert "could not read the file" in (config.agent.failed_dir / "courses.txt.reason.txt").read_text(encoding="utf-8")


def s3_config(tmp_path: Path, bucket: WriteOnlyBucket, keys: Keys, endpoint: str) -> Config:
    """A route `handshake` to an S3 target on `endpoint` (moto, or a proxy in front of it), key = {name}."""
    (tmp_path / "drop").mkdir()
    (tmp_path / ".env").write_text(f"HS_SECRET={keys.secret_access_key}\n", encoding="utf-8")
    ini = tmp_path / "agent.ini"
    ini.write_text(
        f"[agent]\nwork_dir = var\nenv_file = .env\n[route:handshake]\nwatch = drop\ntarget = handshake\n"
        f"[target:handshake]\ntype = s3\nbucket = {bucket.bucket}\nprefix = {bucket.prefix}\n"
        f"region = {bucket.region}\nendpoint_url = {endpoint}\nkey = {{name}}\nmultipart_threshold_mb = 5\n"
        f"access_key_id = {keys.access_key_id}\nsecret_access_key = ${{HS_SECRET}}\n"
        "[email]\ntransport = file\nto = admins@example.edu\n",
        encoding="utf-8",
    )
    return load_config(ini, environ={})


def test_s3_files_log_what_happens_to_them_never_not_sendable(
    tmp_path: Path, write_only_s3: WriteOnlyBucket, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13.12: a clean S3 file logs "ready to send", a bad one "REJECTED before sending"."""
    config = s3_config(tmp_path, write_only_s3, write_only_s3.writer, write_only_s3.endpoint)
    route = config.route("handshake")
    good = route.watch / "users.csv"
    good.write_text("email,first_name\nada@example.edu,Ada\n", encoding="utf-8")
    bad = route.watch / "majors.csv"
    bad.write_text("email,major\nada@example.edu\n", encoding="utf-8")
    caplog.set_level(logging.INFO, logger="agent.pipeline")
    with Journal(config.agent.journal_path) as journal:
        pipeline = Pipeline(config, journal, RecordingReporter())
        batch = pipeline.process(route, [pipeline.claim(route, good), pipeline.claim(route, bad)])  # type: ignore[list-item]
    assert sorted(f.status.value for f in batch.files) == ["REJECTED", "SUCCESS"]
    assert "not sendable" not in caplog.text
    assert "users.csv is a file for s3, 1 rows: ready to send to handshake" in caplog.text
    assert "majors.csv is REJECTED before sending to handshake: 1 row does not have" in caplog.text
    assert write_only_s3.object_keys() == ["incoming/users.csv"]


def test_a_multipart_upload_left_behind_by_a_put_only_key_is_named_in_the_report(
    tmp_path: Path, write_only_s3: WriteOnlyBucket, s3_fault_proxy: S3FaultProxy
) -> None:
    """Issue 13.11: part 2 fails on every try; the key may not abort; the report names the leftover."""
    config = s3_config(tmp_path, write_only_s3, write_only_s3.put_only_keys(), s3_fault_proxy.url)
    s3_fault_proxy.fail(500, "InternalError", operation="part", part_number=2, times=1000)
    route = config.route("handshake")
    big = route.watch / "users.csv"
    big.write_bytes(b"email\n" + b"a@example.edu\n" * (800 * 1024))  # about 11 MiB: three parts
    reporter = RecordingReporter()
    with Journal(config.agent.journal_path) as journal:
        pipeline = Pipeline(config, journal, reporter)
        batch = pipeline.process(route, [pipeline.claim(route, big)])  # type: ignore[list-item]
    [outcome] = batch.files
    leftovers = write_only_s3.incomplete_uploads()
    assert outcome.status is Status.FAILED and leftovers
    assert f"multipart upload {leftovers[-1][1]} of s3://{write_only_s3.bucket}/incoming/users.csv" in outcome.message
    assert "s3:AbortMultipartUpload" in outcome.message and "AbortIncompleteMultipartUpload" in outcome.message
    assert reporter.files[0].message == outcome.message


_OPENED: list[str] = []  # files opened while a test listens (an audit hook cannot be removed)
_LISTENING: list[bool] = []


def _note_open(event: str, args: tuple[object, ...]) -> None:
    # Not the non-blocking open that asks the kernel whether a writer still holds the file
    # (agent.writecheck.open_for_writing): it reads no byte.
    if event != "open" or not _LISTENING:
        return
    probe = len(args) > 2 and isinstance(args[2], int) and bool(args[2] & os.O_NONBLOCK)
    if isinstance(args[0], (str, Path)) and not probe:
        _OPENED.append(str(args[0]))


sys.addaudithook(_note_open)


def test_a_file_is_read_once_to_check_and_hash_it_and_once_to_send_it(pipeline_env, learn_sim: LearnSimulator) -> None:
    config, journal, reporter = pipeline_env
    path = write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(6))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    pipeline = fast_pipeline(config, journal, reporter)
    [file_id] = claim_all(pipeline, config, [path])
    _OPENED.clear()
    _LISTENING.append(True)
    try:
        batch = pipeline.process(config.route(), [file_id])
    finally:
        _LISTENING.clear()

    assert batch.files[0].status is Status.SUCCESS
    processing = str(config.agent.processing_dir)
    opened = [name for name in _OPENED if name.startswith(processing)]
    assert len(opened) == 2, opened  # the inspection (which also hashed it), then the upload
    assert journal.file(file_id).sha256 == digest == learn_sim.uploads_snapshot()[0].sha256
