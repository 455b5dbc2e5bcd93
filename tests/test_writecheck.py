"""`agent.writecheck`: a writer that only paused never gets half a file reported SUCCESS.

Real files, the Learn simulator over HTTP, the real pipeline (and `watch` with the polling observer,
where no open/close events can hold a paused writer's file back)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from agent.clock import SYSTEM_CLOCK
from agent.errors import StopRequested
from agent.journal import Journal
from agent.records import Status
from agent.settings import Config
from agent.simulator import LearnSimulator
from agent.writecheck import WriteCheck
from tests.support.agentconf import load
from tests.support.clock import FakeClock
from tests.support.learn import PEOPLE_HEADER, person_rows, write_flatfile
from tests.support.pipeline import claim_all, fast_pipeline
from tests.support.recording import RecordingReporter
from tests.support.waiting import wait_for

ROWS = person_rows(3)


def append_rows(path: Path, rows: list[tuple[str, ...]]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines("|".join(row) + "\n" for row in rows)


def processing_file(config: Config) -> Path:
    [path] = list(config.agent.processing_dir.iterdir())
    return path


class WriterGoingOn(FakeClock):
    """A fake clock (waits cost nothing) whose pauses let the writer append rows: one row at the
    first pause, or (`forever`) at every pause."""

    def __init__(self, path: Path, *, forever: bool = False) -> None:
        super().__init__()
        self.path, self.forever = path, forever

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if self.forever or not self.sleeps:
            append_rows(self.path, ROWS[2:])
        return super().sleep(seconds, stop)


def test_a_file_that_grew_after_its_claim_is_sent_whole_once_it_is_still(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    config = load(tmp_path, learn_sim.url)
    reporter = RecordingReporter()
    with Journal(config.agent.journal_path) as journal:
        pipeline = fast_pipeline(config, journal, reporter)
        drop = config.route().watch
        ids = claim_all(pipeline, config, [write_flatfile(drop / "users.txt", PEOPLE_HEADER, ROWS[:1])])
        claimed = processing_file(config)
        append_rows(claimed, ROWS[1:2])  # the writer had only paused: it goes on after the claim…
        clock = WriterGoingOn(claimed)  # …and once more while the agent waits for it to be still
        pipeline.writes = WriteCheck(journal, clock, config.agent.settle_seconds, pipeline.stop)
        batch = pipeline.process(config.route(), ids)
        record = journal.file(ids[0])

    [upload] = learn_sim.uploads_snapshot()
    assert upload.rows == 3  # sent whole, once
    [outcome] = batch.files
    assert (outcome.status, outcome.rows) == (Status.SUCCESS, 3)
    assert outcome.final_path is not None and outcome.final_path.read_bytes() == b"".join(
        ("|".join(line) + "\n").encode() for line in [PEOPLE_HEADER, *ROWS]
    )
    assert (record.claimed_size, record.size, record.rows) == (upload.size, upload.size, 3)
    assert sum(clock.sleeps) >= config.agent.settle_seconds  # it waited until the file was still


def test_a_file_that_changed_while_it_was_sent_is_failed_not_success(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url)
    reporter = RecordingReporter()
    appended: list[bool] = []

    def writer_during_the_upload(sent: int, total: int) -> None:
        if not appended:
            appended.append(True)
            append_rows(processing_file(config), ROWS[1:])

    with Journal(config.agent.journal_path) as journal:
        pipeline = fast_pipeline(config, journal, reporter, upload_progress=writer_during_the_upload)
        drop = config.route().watch
        ids = claim_all(pipeline, config, [write_flatfile(drop / "users.txt", PEOPLE_HEADER, ROWS[:1])])
        batch = pipeline.process(config.route(), ids)

    [upload] = learn_sim.uploads_snapshot()
    assert upload.rows == 1  # what went out before the writer went on
    [outcome] = batch.files
    assert outcome.status is Status.FAILED and outcome.changed_in_flight
    assert outcome.receipt is not None and outcome.final_path is not None
    assert outcome.final_path.parent == config.agent.archive_dir  # delivered (in part): archived
    assert "users.txt changed while it was being sent" in outcome.message
    assert "Learn processed the incomplete copy (it answered SUCCESS)" in outcome.message
    assert reporter.files == [outcome]


def test_watch_reports_a_paused_writers_half_sent_file_as_changed_not_success(tmp_path: Path) -> None:
    """Issue 14.7 where nothing could see the writer: it pauses longer than settle_seconds (the agent
    takes the file and sends it), then goes on through the descriptor it kept. The kernel would name
    such a writer (see the test above) unless it is another user's or on a network share; that
    writer is played here by appending to the claimed file once its first part was sent."""
    from tests.test_strays import emails, watching

    with LearnSimulator(rows_per_second=1000.0, start_delay=2.0) as sim:  # its answer takes 2 s
        config = load(tmp_path, sim.url, settle=0.3, window=0.1)
        config = replace(config, agent=replace(config.agent, observer="polling"))  # settle rule only
        drop = config.route().watch
        with watching(config) as agent:
            write_flatfile(drop / "users.txt", PEOPLE_HEADER, ROWS[:1])  # a first session, closed
            wait_for(sim.uploads_snapshot, what="the paused file sent")
            append_rows(next(config.agent.processing_dir.iterdir()), ROWS[1:])  # the SIS goes on
            wait_for(lambda: agent.batches, what="the batch's end")
        uploads = sim.uploads_snapshot()

    [outcome] = agent.batches[0].files
    assert [u.rows for u in uploads] == [1]
    assert outcome.status is Status.FAILED and outcome.changed_in_flight
    assert outcome.final_path is not None and outcome.final_path.parent == config.agent.archive_dir
    assert outcome.final_path.read_text(encoding="utf-8").count("\n") == 4  # the whole file, archived
    [report] = [m for m in emails(config) if "users.txt" in str(m["Subject"])]
    assert str(report["Subject"]) == "[feed-agent] FAILED users.txt — person/store"
    text = " ".join(str(report.get_body(("plain",)).get_content()).split())  # type: ignore[union-attr]
    assert "The file changed while it was being sent: Learn has an incomplete copy." in text
    assert f"move {outcome.final_path} back into {drop} to send it whole" in text
    assert (
        "What happened: users.txt changed while it was being sent: 117 B went to Learn, but the file now has 213 B"
        in text
    )
    assert "A store only adds and updates records, so sending it again is safe." in text


def test_a_file_that_never_stops_changing_is_held_after_the_hold_limit(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    config = load(tmp_path, learn_sim.url)
    reporter = RecordingReporter()
    with Journal(config.agent.journal_path) as journal:
        pipeline = fast_pipeline(config, journal, reporter)
        drop = config.route().watch
        ids = claim_all(pipeline, config, [write_flatfile(drop / "users.txt", PEOPLE_HEADER, ROWS[:1])])
        claimed = processing_file(config)
        append_rows(claimed, ROWS[1:2])
        clock = WriterGoingOn(claimed, forever=True)
        pipeline.writes = WriteCheck(journal, clock, config.agent.settle_seconds, pipeline.stop)
        batch = pipeline.process(config.route(), ids)

    assert learn_sim.uploads_snapshot() == []
    [outcome] = batch.files
    assert outcome.status is Status.HELD and "kept changing for 5 min" in outcome.message
    assert outcome.final_path is not None and outcome.final_path.parent == config.agent.failed_dir
    assert sum(clock.sleeps) >= 300


def test_a_stop_while_waiting_for_a_writer_leaves_the_file_for_the_next_start(tmp_path: Path) -> None:
    path = write_flatfile(tmp_path / "users.txt", PEOPLE_HEADER, ROWS[:1])
    stop = threading.Event()
    stop.set()
    check = WriteCheck(Journal(tmp_path / "journal.sqlite3"), SYSTEM_CLOCK, 10.0, stop)
    with pytest.raises(StopRequested):
        check._wait_until_still(path, (0, 0))


def test_watch_waits_for_a_paused_writer_that_still_holds_the_file_open(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    """Issue 14.7 with the export still holding the file open during its pause: polling sees no
    opens, so the file is taken; the kernel still knows its writer, and the agent waits for it."""
    from tests.test_strays import watching

    config = load(tmp_path, learn_sim.url, settle=0.3, window=0.1)
    config = replace(config, agent=replace(config.agent, observer="polling"))  # settle rule only
    drop = config.route().watch
    with watching(config) as agent:
        with (drop / "users.txt").open("w", encoding="utf-8") as sis:
            sis.write("|".join(PEOPLE_HEADER) + "\n" + "|".join(ROWS[0]) + "\n")
            sis.flush()
            wait_for(lambda: not (drop / "users.txt").exists(), what="the paused file claimed")
            sis.writelines("|".join(row) + "\n" for row in ROWS[1:])
        wait_for(lambda: agent.batches, what="the batch's end")

    assert [u.rows for u in learn_sim.uploads_snapshot()] == [3]
    [outcome] = agent.batches[0].files
    assert (outcome.status, outcome.rows) == (Status.SUCCESS, 3)


def test_watch_with_inotify_holds_a_file_its_writer_keeps_open_past_settle_seconds(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    """Native observer: a writer that pauses with the file open (no close-write seen after its last
    write) is not taken, however long the pause; a file that arrives meanwhile goes out without it."""
    from tests.support.learn import COURSE_HEADER, course_rows
    from tests.test_strays import watching

    config = load(tmp_path, learn_sim.url, settle=0.2, window=0.2)  # observer = native
    drop = config.route().watch
    staging = tmp_path / "staging"
    staging.mkdir()
    with watching(config) as agent:
        write_flatfile(staging / "terms.txt", COURSE_HEADER, course_rows(1)).rename(drop / "first.txt")
        wait_for(lambda: len(agent.batches) == 1, what="a first batch: the observer is watching")
        with (drop / "users.txt").open("w", encoding="utf-8") as sis:
            sis.write("|".join(PEOPLE_HEADER) + "\n" + "|".join(ROWS[0]) + "\n")
            sis.flush()  # …then the export pauses, the file still open
            write_flatfile(staging / "courses.txt", COURSE_HEADER, course_rows(1)).rename(drop / "courses.txt")
            wait_for(lambda: len(agent.batches) == 2, what="a batch without the open file")
            assert [u.slug for u in learn_sim.uploads_snapshot()] == ["course", "course"]
            assert (drop / "users.txt").exists()  # not taken: its writer has not closed it
            sis.writelines("|".join(row) + "\n" for row in ROWS[1:])
        wait_for(lambda: len(learn_sim.uploads_snapshot()) == 3, what="the file once closed (IN_CLOSE_WRITE)")
    assert [(u.slug, u.rows) for u in learn_sim.uploads_snapshot()][2] == ("person", 3)


def test_the_kernel_tells_a_file_held_open_for_writing(tmp_path: Path) -> None:
    from agent.writecheck import open_for_writing

    path = write_flatfile(tmp_path / "users.txt", PEOPLE_HEADER, ROWS)
    assert open_for_writing(path) is False
    with path.open("a", encoding="utf-8"):
        assert open_for_writing(path) is True
    with path.open("r", encoding="utf-8"):  # a reader (antivirus, backup) is no writer
        assert open_for_writing(path) is False
    assert open_for_writing(tmp_path / "gone.txt") is None
