"""The batch pipeline against the Learn simulator over loopback: order, holds, guard, recovery."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from agent.journal import Journal
from agent.pipeline import BatchContext
from agent.records import Status
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
        assert "80 rows" in held.message and "100 rows" in held.message and "--force" in held.message
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

    def flaky(path: Path, forced: str | None = None, delimiter: str | None = None, **how):  # type: ignore[no-untyped-def]
        if path.name == "courses.txt":
            raise MemoryError("simulated")
        return real(path, forced, delimiter, **how)

    monkeypatch.setattr(agent.profiles, "inspect_file", flaky)
    drop = config.route().watch
    people = write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(2))
    courses = write_flatfile(drop / "courses.txt", COURSE_HEADER, course_rows(1))
    pipeline = fast_pipeline(config, journal, reporter)
    batch = pipeline.process(config.route(), claim_all(pipeline, config, [people, courses]))
    statuses = {f.name: f.status for f in batch.files}
    assert statuses == {"users.txt": Status.SUCCESS, "courses.txt": Status.REJECTED}
    assert "could not read the file" in (config.agent.failed_dir / "courses.txt.reason.txt").read_text(encoding="utf-8")


_OPENED: list[str] = []  # files opened while a test listens (an audit hook cannot be removed)
_LISTENING: list[bool] = []


def _note_open(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _LISTENING and isinstance(args[0], (str, Path)):
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
