"""The SQLite ledger on real files: schema and migrations, crash safety, queries, threads."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.errors import JournalError
from agent.journal import FileRecord, Journal
from agent.journal_schema import MIGRATIONS, SCHEMA_VERSION, FileState, JobState, Owner
from agent.records import Receipt, Status

REPO_ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 22, 10, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "work" / "journal.sqlite3"


@pytest.fixture
def journal(journal_path: Path) -> Iterator[Journal]:
    with Journal(journal_path) as opened:
        yield opened


def pragma(path: Path, name: str) -> object:
    """Read a PRAGMA through a separate connection, as another process would see it."""
    connection = sqlite3.connect(str(path))
    try:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        connection.close()


def add(
    journal: Journal,
    name: str = "users.txt",
    *,
    route: str = "sis",
    target: str = "learn",
    arrived_at: datetime | None = None,
    **fields: object,
) -> int:
    file_id = journal.add_file(
        route=route, target=target, name=name, source_path=Path("/drop") / name, arrived_at=arrived_at
    )
    if fields:
        journal._update(file_id, **fields)
    return file_id


# -- schema, reopen, migrations ---------------------------------------------------------------------


def test_new_journal_creates_folder_schema_and_wal(journal_path: Path) -> None:
    with Journal(journal_path) as journal:
        assert journal_path.is_file()
        assert pragma(journal_path, "user_version") == SCHEMA_VERSION >= 1
        assert pragma(journal_path, "journal_mode") == "wal"
        # synchronous is per connection: read the journal's own (1 = NORMAL).
        assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        indexes = {
            row[0]
            for row in journal._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"
            )
        }
        assert {"files_state", "files_refresh_guard", "files_route_arrival"} <= indexes


def test_data_survives_reopen_with_every_column(journal_path: Path) -> None:
    receipt = Receipt(target="learn", kind="learn", reference="ab12cd", details={"url": "https://x"})
    with Journal(journal_path) as journal:
        batch_id = journal.start_batch("sis")
        file_id = journal.add_file(
            route="sis",
            target="learn",
            name="users.txt",
            source_path=Path("/drop/users.txt"),
            batch_id=batch_id,
            size=120,
            arrived_at=T0,
        )
        journal._update(
            file_id,
            state="submitted",
            current_path=Path("/work/processing/users.txt"),
            sha256="f" * 64,
            rows=3,
            object="person",
            operation="store",
            receipt=receipt.to_json(),
            reference=receipt.reference,
            claimed_at=T0 + timedelta(seconds=1),
            submitted_at=T0 + timedelta(seconds=2),
            queued=3,
            completed=0,
            warnings=0,
            errors=0,
            long_run_alerted=True,
            message="sent",
        )
        journal.set_meta("last_prune", "2026-11-22")
    with Journal(journal_path) as journal:
        record = journal.file(file_id)
        assert pragma(journal_path, "user_version") == SCHEMA_VERSION
        assert journal.get_meta("last_prune") == "2026-11-22"
    assert isinstance(record, FileRecord)
    assert (record.id, record.batch_id, record.route, record.target, record.name) == (
        file_id,
        batch_id,
        "sis",
        "learn",
        "users.txt",
    )
    assert record.source_path == "/drop/users.txt"
    assert record.current_path == "/work/processing/users.txt"
    assert (record.sha256, record.size, record.rows) == ("f" * 64, 120, 3)
    assert (record.object, record.operation, record.state) == ("person", "store", "submitted")
    assert record.reference == "ab12cd"
    assert record.receipt_object() == receipt
    assert (record.queued, record.completed, record.warnings, record.errors) == (3, 0, 0, 0)
    assert record.long_run_alerted is True
    assert record.message == "sent"
    assert record.arrived_at == T0 and record.arrived_at.tzinfo is not None
    assert record.claimed_at == T0 + timedelta(seconds=1)
    assert record.submitted_at == T0 + timedelta(seconds=2)
    assert record.finished_at is None
    assert record.updated_at.tzinfo is not None
    assert record.in_flight


def test_empty_v0_file_is_migrated(journal_path: Path) -> None:
    journal_path.parent.mkdir(parents=True)
    journal_path.touch()
    assert pragma(journal_path, "user_version") == 0
    with Journal(journal_path) as journal:
        file_id = add(journal)
        assert journal.file(file_id).state == "claiming"
    assert pragma(journal_path, "user_version") == SCHEMA_VERSION


def test_journal_from_a_newer_agent_is_refused(journal_path: Path) -> None:
    journal_path.parent.mkdir(parents=True)
    connection = sqlite3.connect(str(journal_path))
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    connection.close()
    with pytest.raises(JournalError, match="newer feed-agent"):
        Journal(journal_path)
    assert pragma(journal_path, "user_version") == SCHEMA_VERSION + 5  # left untouched


def test_damaged_file_gives_plain_advice(journal_path: Path) -> None:
    journal_path.parent.mkdir(parents=True)
    journal_path.write_bytes(b"this is not a database at all, just some text " * 100)
    with pytest.raises(JournalError, match="move it aside"):
        Journal(journal_path)


def test_path_that_cannot_be_opened_says_so(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="writable"):
        Journal(tmp_path)  # a folder, not a file


def test_journal_locked_by_another_process_says_so(journal_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Journal(journal_path).close()
    monkeypatch.setattr("agent.journal_base.BUSY_TIMEOUT_SECONDS", 0.2)
    other = sqlite3.connect(str(journal_path), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock, as a stuck writer would
        with pytest.raises(JournalError, match="locked by another process"):
            Journal(journal_path)
    finally:
        other.close()
    with Journal(journal_path) as journal:  # usable again once the lock is gone
        assert journal.recent_files() == []


# -- _update (the validation under every verb) ----------------------------------------------------


@pytest.mark.parametrize("field", ["bogus", "id", "state = 'held' --", "Name"])
def test_update_file_rejects_unknown_fields(journal: Journal, field: str) -> None:
    file_id = add(journal)
    before = journal.file(file_id)
    with pytest.raises(ValueError, match="not journal file columns"):
        journal._update(file_id, **{field: "x", "state": "held"})
    assert journal.file(file_id) == before  # nothing was written, not even the valid field


def test_update_file_converts_and_validates_values(journal: Journal) -> None:
    file_id = add(journal)
    before = journal.file(file_id).updated_at
    plus_two = timezone(timedelta(hours=2))
    journal._update(
        file_id,
        status=Status.TIMED_OUT,
        finished_at=datetime(2026, 11, 22, 12, 0, tzinfo=plus_two),
        current_path=Path("/work/failed/users.txt"),
        long_run_alerted=1,
    )
    record = journal.file(file_id)
    assert record.status == "TIMED OUT"
    assert record.finished_at == T0.replace(hour=10, minute=0)
    assert record.finished_at is not None and record.finished_at.utcoffset() == timedelta(0)
    assert record.current_path == "/work/failed/users.txt"
    assert record.long_run_alerted is True
    assert record.updated_at >= before

    with pytest.raises(ValueError, match="timezone-aware"):
        journal._update(file_id, finished_at=datetime(2026, 11, 22, 12, 0))
    with pytest.raises(ValueError, match="unknown state"):
        journal._update(file_id, state="done")
    with pytest.raises(ValueError, match="unknown status"):
        journal._update(file_id, status="OK")
    with pytest.raises(TypeError, match="integer"):
        journal._update(file_id, rows="12")
    with pytest.raises(ValueError, match="cannot be empty"):
        journal._update(file_id, state=None)
    with pytest.raises(KeyError):
        journal._update(file_id + 100, state="held")
    with pytest.raises(KeyError):
        journal.file(file_id + 100)
    assert journal.file(file_id).status == "TIMED OUT"


def test_explicit_updated_at_is_kept(journal: Journal) -> None:
    file_id = add(journal)
    journal._update(file_id, updated_at=T0)
    assert journal.file(file_id).updated_at == T0


# -- queries ----------------------------------------------------------------------------------------


def test_in_flight_is_oldest_first_and_filters_route(journal: Journal) -> None:
    first = add(journal, "a.txt", state="submitted")
    done = add(journal, "b.txt", state="archived")
    second = add(journal, "c.txt", route="other")
    third = add(journal, "d.txt", state="finished")
    add(journal, "e.txt", state="failed")
    assert [r.id for r in journal.in_flight()] == [first, second, third]
    assert [r.id for r in journal.in_flight("sis")] == [first, third]
    assert journal.in_flight("nowhere") == []
    assert not journal.file(done).in_flight


def test_recent_files_puts_in_flight_first_then_newest(journal: Journal) -> None:
    old_done = add(journal, "a.txt", state="archived")
    running = add(journal, "b.txt", state="submitted")
    rejected = add(journal, "c.txt", state="rejected")
    claiming = add(journal, "d.txt")
    newest_done = add(journal, "e.txt", state="held")
    ids = [r.id for r in journal.recent_files()]
    assert ids == [claiming, running, newest_done, rejected, old_done]
    assert [r.id for r in journal.recent_files(limit=3)] == [claiming, running, newest_done]


def test_batches_start_finish_and_recent(journal: Journal) -> None:
    first = journal.start_batch("sis")
    second = journal.start_batch("hr")
    journal.finish_batch(first, Status.WARNINGS, 4)
    batches = journal.recent_batches()
    assert [b.id for b in batches] == [second, first]
    assert batches[1].status == "WARNINGS" and batches[1].files == 4
    assert batches[1].finished_at is not None and batches[1].finished_at >= batches[1].started_at
    assert batches[0].finished_at is None and batches[0].status is None and batches[0].route == "hr"
    assert [b.id for b in journal.recent_batches(limit=1)] == [second]
    with pytest.raises(KeyError):
        journal.finish_batch(second + 10, "SUCCESS", 0)


def test_a_batch_and_its_files_are_reported_once_and_then_closed(journal: Journal) -> None:
    batch = journal.start_batch("sis")
    first = journal.add_file(route="sis", target="learn", name="a.txt", source_path=Path("/d/a.txt"), batch_id=batch)
    second = journal.add_file(route="sis", target="learn", name="b.txt", source_path=Path("/d/b.txt"), batch_id=batch)
    assert [f.id for f in journal.batch_files(batch)] == [first, second]
    assert [b.id for b in journal.unreported_batches()] == [batch]
    journal.file_reported(first)
    taken = journal.file(first).reported_at
    journal.file_reported(first)  # a second mark keeps the first moment
    assert taken is not None and journal.file(first).reported_at == taken
    journal.batch_reported(batch)
    assert journal.unreported_batches() == [] and journal.batch(batch).reported_at is not None
    with pytest.raises(KeyError):
        journal.batch(batch + 1)


def test_sent_and_decided_unsent_are_states_a_restart_reads(journal: Journal) -> None:
    file_id = add(journal)
    journal.sent(file_id, T0)
    record = journal.file(file_id)
    assert record.state is FileState.SENT and record.sent_at == T0 and record.in_flight
    journal.decided_unsent(file_id, Status.UNCONFIRMED, "no answer", T0)
    record = journal.file(file_id)
    assert record.state is FileState.FINISHED and record.status == "UNCONFIRMED" and record.message == "no answer"
    journal.ended_unsent(file_id, Status.UNCONFIRMED, "no answer", Path("/failed/users.txt"), T0)
    assert journal.file(file_id).state is FileState.UNCONFIRMED and not journal.file(file_id).in_flight


def _sync_shape(statement: str) -> str:
    """What a traced statement is, for the sync test: a level change, the SENT write, or another write."""
    for marker, shape in (("synchronous=FULL", "FULL"), ("synchronous=NORMAL", "NORMAL"), ("sent_at", "SENT")):
        if marker in statement:
            return shape
    return "write"


def test_sent_alone_is_synced_to_disk_before_it_returns(journal: Journal) -> None:
    """SENT is the record a power loss must not undo (recovery would find the file `submitting` and
    send it again): its commit runs with synchronous=FULL (an fsync of the WAL). The writes around it
    stay NORMAL, and so does the connection afterwards."""
    file_id = add(journal)
    statements: list[str] = []
    journal._conn.set_trace_callback(statements.append)
    journal.submitting(file_id)
    journal.sent(file_id, T0)
    journal.submitted(file_id, Receipt(target="learn", kind="learn", reference="abc"))
    journal._conn.set_trace_callback(None)
    shapes = [_sync_shape(s) for s in statements if s.startswith(("UPDATE", "PRAGMA"))]
    assert shapes == ["write", "FULL", "SENT", "NORMAL", "write"]
    assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    assert journal.file(file_id).state is FileState.SUBMITTED


def test_a_durable_write_cannot_hide_inside_a_transaction(journal: Journal) -> None:
    """SQLite cannot change the sync level inside a transaction: such a write would silently be no
    more durable than the transaction's commit, so it is refused, and the transaction rolls back."""
    file_id = add(journal)
    with pytest.raises(RuntimeError, match="its own transaction"), journal.atomically():
        journal.submitting(file_id)
        journal.sent(file_id, T0)
    assert journal.file(file_id).state is not FileState.SUBMITTING
    journal.sent(file_id, T0)
    assert journal.file(file_id).state is FileState.SENT


def refresh(
    journal: Journal,
    rows: int,
    status: Status | None,
    *,
    target: str = "learn",
    object: str = "person",
    operation: str = "refresh",
    minutes: int = 0,
) -> int:
    return add(
        journal,
        f"{object}-{rows}.txt",
        target=target,
        object=object,
        operation=operation,
        rows=rows,
        status=status,
        finished_at=T0 + timedelta(minutes=minutes),
        state="archived",
    )


def _last_rows(journal: Journal, target: str, slug: str, operation: str = "refresh", sources: str = "") -> int | None:
    record = journal.last_delivery(target, slug, operation, sources)
    return None if record is None else record.rows


def test_last_delivery_is_the_newest_accepted_file_of_the_same_feed(journal: Journal) -> None:
    assert _last_rows(journal, "learn", "person") is None
    refresh(journal, 1000, Status.SUCCESS, minutes=1)
    assert _last_rows(journal, "learn", "person") == 1000
    refresh(journal, 800, Status.ERRORS, minutes=3)  # processed, with record errors
    assert _last_rows(journal, "learn", "person") == 800
    for status in (Status.FAILED, Status.REJECTED, Status.HELD, Status.TIMED_OUT, None):
        refresh(journal, 5, status, minutes=10)  # never replaced the data
    refresh(journal, 7, Status.SUCCESS, operation="store", minutes=11)
    refresh(journal, 9, Status.SUCCESS, object="course", minutes=12)
    refresh(journal, 11, Status.SUCCESS, target="learn-test", minutes=13)
    refresh(journal, 13, Status.SUCCESS, operation="refreshlegacy", minutes=14)  # another feed
    assert _last_rows(journal, "learn", "person") == 800
    assert _last_rows(journal, "learn", "course") == 9
    assert _last_rows(journal, "learn-test", "person") == 11
    assert _last_rows(journal, "learn", "person", "store") == 7
    assert _last_rows(journal, "learn", "membership") is None


def test_a_refreshlegacy_baseline_is_per_data_source_key_set(journal: Journal) -> None:
    for rows, sources, minute in ((100, "SIS_A", 1), (200, "SIS_B", 2), (300, "SIS_A,SIS_B", 3)):
        file_id = refresh(journal, rows, Status.SUCCESS, operation="refreshlegacy", minutes=minute)
        journal.keys_compared(file_id, data_source_keys=sources, disabled=None, added=None)
    assert _last_rows(journal, "learn", "person", "refreshlegacy", "SIS_A") == 100
    assert _last_rows(journal, "learn", "person", "refreshlegacy", "SIS_B") == 200
    assert _last_rows(journal, "learn", "person", "refreshlegacy", "SIS_A,SIS_B") == 300
    assert _last_rows(journal, "learn", "person", "refreshlegacy", "SIS_C") is None


def test_deliveries_lists_accepted_files_newest_first_with_filters(journal: Journal) -> None:
    refresh(journal, 10, Status.SUCCESS, operation="store", minutes=1)
    refresh(journal, 20, Status.FAILED, operation="store", minutes=2)
    refresh(journal, 30, Status.WARNINGS, operation="store", minutes=3)
    refresh(journal, 40, Status.SUCCESS, object="course", operation="store", minutes=4)
    assert [r.rows for r in journal.deliveries(slug="person")] == [30, 10]
    assert [r.rows for r in journal.deliveries(limit=2)] == [40, 30]
    assert [r.rows for r in journal.deliveries(since=T0 + timedelta(minutes=2))] == [40, 30]


def test_a_feeds_recent_deliveries_are_read_from_the_index_in_order_not_sorted(journal: Journal) -> None:
    """The store notice asks for a feed's last 7 deliveries before every store, and the refresh guard
    for the last one: both must walk files_feed_history in its order and stop, not sort the feed's
    whole history (a burst of 2,000 stores of one feed sorted up to 2,000 rows per file)."""
    for minute in range(1, 30):
        refresh(journal, minute, Status.SUCCESS, operation="store", minutes=minute)
    asked: list[str] = []
    journal._conn.set_trace_callback(asked.append)
    recent = journal.deliveries(target="learn", slug="person", operation="store", before=20, limit=7)
    sizes = journal.delivered_rows(target="learn", slug="person", operation="store", before=20, limit=7)
    last = journal.last_delivery("learn", "person", "store")
    journal._conn.set_trace_callback(None)
    assert [r.rows for r in recent] == sizes == [19, 18, 17, 16, 15, 14, 13]
    assert last is not None and last.rows == 29
    feed_queries = [q for q in asked if q.startswith("SELECT")]
    assert len(feed_queries) == 3, asked
    for sql in feed_queries:
        plan = " ".join(str(row[-1]) for row in journal._conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "files_feed_history" in plan and "TEMP B-TREE" not in plan, (sql, plan)


def test_the_planned_batch_is_the_one_batch_of_all_the_files(journal: Journal) -> None:
    first = journal.start_batch("sis", Owner.SERVICE)
    ids = [add(journal, f"f{i}.txt", batch_id=first) for i in range(1203)]  # more than one query's worth
    assert journal.planned_batch(ids) == first
    other = journal.start_batch("sis", Owner.SERVICE)
    assert journal.planned_batch([*ids, add(journal, "late.txt", batch_id=other)]) is None  # two batches
    assert journal.planned_batch([*ids, add(journal, "loose.txt")]) is None  # one file in no batch
    assert journal.planned_batch([]) is None


def test_last_arrival_uses_arrival_then_claim_time(journal: Journal) -> None:
    assert journal.last_arrival("sis") is None
    add(journal, "a.txt", arrived_at=T0)
    add(journal, "b.txt", claimed_at=T0 + timedelta(hours=2))  # no arrival recorded
    add(journal, "c.txt", arrived_at=T0 + timedelta(hours=1))
    add(journal, "d.txt", route="other", arrived_at=T0 + timedelta(days=3))
    assert journal.last_arrival("sis") == T0 + timedelta(hours=2)
    assert journal.last_arrival("other") == T0 + timedelta(days=3)


def test_mail_failure_queue(journal: Journal) -> None:
    assert journal.unreported_mail_failures() == []
    journal.record_mail_failure("[feed-agent] SUCCESS users.txt", "connection refused")
    journal.record_mail_failure("[feed-agent] Summary: 1 file", "535 authentication failed")
    listed = journal.unreported_mail_failures()
    assert listed == [
        "[feed-agent] SUCCESS users.txt: connection refused",
        "[feed-agent] Summary: 1 file: 535 authentication failed",
    ]
    journal.record_mail_failure("late", "timed out")  # another thread, after the listing
    journal.mark_mail_failures_reported()
    assert journal.unreported_mail_failures() == ["late: timed out"]
    journal.mark_mail_failures_reported()
    assert journal.unreported_mail_failures() == []


def test_mark_after_empty_listing_keeps_newer_failures(journal: Journal) -> None:
    assert journal.unreported_mail_failures() == []
    journal.record_mail_failure("late", "timed out")
    journal.mark_mail_failures_reported()
    assert journal.unreported_mail_failures() == ["late: timed out"]


def test_meta_overwrites(journal: Journal) -> None:
    assert journal.get_meta("k") is None
    journal.set_meta("k", "1")
    journal.set_meta("k", "2")
    assert journal.get_meta("k") == "2"


# -- threads and crashes ----------------------------------------------------------------------------


def test_several_threads_write_at_once(journal: Journal) -> None:
    threads_count, per_thread = 6, 40
    errors: list[BaseException] = []
    start = threading.Barrier(threads_count)

    def worker(index: int) -> None:
        try:
            start.wait(timeout=20)
            for n in range(per_thread):
                file_id = add(journal, f"t{index}-{n}.txt", route=f"r{index}")
                journal._update(file_id, state="claimed", rows=n)
                journal._update(file_id, state="archived", status=Status.SUCCESS)
                if n % 10 == 0:
                    journal.record_mail_failure(f"t{index}", str(n))
                journal.recent_files(5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    records = journal.recent_files(limit=threads_count * per_thread + 10)
    assert len(records) == threads_count * per_thread
    assert {r.state for r in records} == {"archived"}
    assert len(journal.unreported_mail_failures()) == threads_count * (per_thread // 10)


def test_killed_process_leaves_committed_rows(journal_path: Path) -> None:
    """A process SIGKILLed right after its writes (no close): the next one sees every commit."""
    script = textwrap.dedent("""
        import os, signal, sys
        from pathlib import Path
        from agent.journal import Journal
        journal = Journal(Path(sys.argv[1]))
        file_id = journal.add_file(route="sis", target="learn", name="users.txt",
                                   source_path=Path("/drop/users.txt"))
        journal._update(file_id, state="submitted", receipt='{"x": 1}', reference="ref-1")
        journal.record_mail_failure("subject", "error")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    completed = subprocess.run(
        [sys.executable, "-c", script, str(journal_path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == -9, completed.stderr
    assert journal_path.with_name(journal_path.name + "-wal").exists()  # never checkpointed
    with Journal(journal_path) as journal:
        [record] = journal.in_flight()
        assert (record.state, record.reference) == ("submitted", "ref-1")
        assert journal.unreported_mail_failures() == ["subject: error"]


def test_second_journal_sees_commits_of_an_open_one(journal_path: Path) -> None:
    with Journal(journal_path) as writer:
        file_id = add(writer, state="submitting")
        with Journal(journal_path) as reader:
            assert reader.file(file_id).state == "submitting"
            writer._update(file_id, state="submitted")
            assert reader.file(file_id).state == "submitted"
            reader._update(file_id, message="seen by the CLI")
        assert writer.file(file_id).message == "seen by the CLI"


# -- jobs that end later (AlumnIQ) -------------------------------------------------------------------


def queued_job(journal: Journal, name: str = "warehouse.csv", digest: str = "d" * 64, job_id: str = "J-1") -> int:
    file_id = add(journal, name, route="alumniq", target="alumniq")
    journal.job_expected(file_id, digest)
    journal.job_queued(file_id, job_id, T0, T0 + timedelta(hours=3))
    return file_id


def test_a_version_1_journal_gains_the_jobs_table_and_keeps_its_files(journal_path: Path) -> None:
    journal_path.parent.mkdir(parents=True)
    connection = sqlite3.connect(str(journal_path))
    for statement in MIGRATIONS[0]:
        connection.execute(statement)
    connection.execute(
        "INSERT INTO files (route, target, name, state, updated_at) VALUES ('sis', 'learn', 'old.txt', 'archived', ?)",
        (T0.isoformat(),),
    )
    connection.execute("PRAGMA user_version = 1")
    connection.commit()
    connection.close()
    with Journal(journal_path) as journal:
        assert [f.name for f in journal.recent_files()] == ["old.txt"]
        file_id = queued_job(journal)
        assert journal.jobs()[0].file_id == file_id
    assert pragma(journal_path, "user_version") == SCHEMA_VERSION


def test_a_job_settles_once_and_keeps_the_raw_body(journal: Journal) -> None:
    queued_job(journal)
    settled = journal.job_settled("d" * 64, succeeded=False, message="bad row", payload=b'{"x": 1}', at=T0)
    assert settled is not None and settled.state is JobState.FAILED and settled.name == "warehouse.csv"
    assert (settled.job_id, settled.message, settled.payload, settled.notified_at) == (
        "J-1",
        "bad row",
        b'{"x": 1}',
        T0,
    )
    assert journal.job_settled("d" * 64, succeeded=True, message="", payload=b"", at=T0) is None  # replay
    assert journal.job_settled("e" * 64, succeeded=True, message="", payload=b"", at=T0) is None  # unknown
    assert journal.jobs()[0].state is JobState.FAILED and journal.jobs()[0].payload == b'{"x": 1}'


def test_overdue_jobs_are_alerted_once(journal: Journal) -> None:
    queued_job(journal, "a.csv", "a" * 64, "J-A")
    queued_job(journal, "b.csv", "b" * 64, "J-B")
    journal.job_settled("b" * 64, succeeded=True, message="ok", payload=b"{}", at=T0)
    assert journal.jobs_overdue(T0 + timedelta(hours=2)) == []
    [late] = journal.jobs_overdue(T0 + timedelta(hours=3))
    assert late.job_id == "J-A" and late.notify_by == T0 + timedelta(hours=3)
    assert journal.job_alerted(late.id, T0 + timedelta(hours=3))
    assert not journal.job_alerted(late.id, T0 + timedelta(hours=4))  # a second process lost the race
    assert journal.jobs_overdue(T0 + timedelta(hours=9)) == []
    assert [j.job_id for j in journal.jobs(awaiting_only=True)] == ["J-A"]


def test_a_resend_replaces_the_url_and_a_second_queued_changes_nothing(journal: Journal) -> None:
    file_id = add(journal, "w.csv")
    journal.job_expected(file_id, "1" * 64)
    journal.job_expected(file_id, "2" * 64)  # the job call is made again after a crash
    assert journal.job_settled("1" * 64, succeeded=True, message="", payload=b"", at=T0) is None
    journal.job_queued(file_id, "J-2", T0, T0 + timedelta(hours=1))
    journal.job_queued(file_id, "J-2", T0 + timedelta(hours=5), T0 + timedelta(hours=6))  # resumed after restart
    [job] = journal.jobs()
    assert (job.state, job.job_id, job.notify_by) == (JobState.AWAITING, "J-2", T0 + timedelta(hours=1))


def test_a_notification_racing_the_job_calls_answer_still_settles(journal: Journal) -> None:
    file_id = add(journal, "w.csv")
    journal.job_expected(file_id, "3" * 64)
    assert journal.job_settled("3" * 64, succeeded=True, message="", payload=b"{}", at=T0) is not None
    journal.job_queued(file_id, "J-3", T0, T0 + timedelta(hours=1))
    [job] = journal.jobs()
    assert (
        job.state is JobState.SUCCEEDED and job.job_id == "J-3" and journal.jobs_overdue(T0 + timedelta(days=1)) == []
    )


def test_batches_an_older_agent_left_open_are_closed_not_summarized_again(journal_path: Path) -> None:
    journal_path.parent.mkdir(parents=True)
    connection = sqlite3.connect(str(journal_path))
    for migration in MIGRATIONS[:5]:
        for statement in migration:
            connection.execute(statement)
    started = T0.isoformat()
    connection.execute("INSERT INTO batches (route, started_at) VALUES ('sis', ?)", (started,))  # left open
    connection.execute("PRAGMA user_version = 5")
    connection.commit()
    connection.close()
    with Journal(journal_path) as journal:
        assert journal.unreported_batches() == []
        [batch] = journal.recent_batches()
        assert batch.finished_at == T0 and batch.reported_at == T0


def test_writes_made_atomically_land_together_or_not_at_all(journal: Journal) -> None:
    with pytest.raises(RuntimeError), journal.atomically():
        batch = journal.start_batch("sis")
        journal.add_file(route="sis", target="learn", name="a.txt", source_path=Path("/d/a.txt"), batch_id=batch)
        raise RuntimeError("the process dies here")
    assert journal.recent_batches() == [] and journal.recent_files() == []
    with journal.atomically():
        batch = journal.start_batch("sis")
        journal.add_file(route="sis", target="learn", name="a.txt", source_path=Path("/d/a.txt"), batch_id=batch)
    assert [f.name for f in journal.batch_files(batch)] == ["a.txt"]
