"""The agent as admins run it: `watch` with the real observer, `run`, recovery after SIGKILL, signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from agent.commands import status_report
from agent.config import load_config
from agent.daemon import WATCH_FILES, Agent, run_once
from agent.journal import Journal
from agent.settings import Config
from agent.simulator import LearnSimulator
from tests.support.agentconf import load, write_config
from tests.support.cli import spawn
from tests.support.clock import FakeClock
from tests.support.faults import ReadOnlyFolder, fill_up, tiny_disk_prefix
from tests.support.learn import (
    COURSE_HEADER,
    MEMBERSHIP_HEADER,
    PEOPLE_HEADER,
    course_rows,
    membership_rows,
    person_rows,
    write_flatfile,
)
from tests.support.outcomes import batch, outcome
from tests.support.recording import RecordingReporter
from tests.support.s3 import JobApiStandIn, WriteOnlyBucket
from tests.support.smtp import SmtpServer, TlsCert
from tests.support.waiting import wait_for

WAIT = 30.0


@contextmanager
def watching(config: Config, reporter: RecordingReporter | None = None) -> Iterator[Agent]:
    agent = Agent(config, reporter=reporter or RecordingReporter())
    thread = threading.Thread(target=agent.watch, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.stop.set()
        agent.wake.set()
        thread.join(timeout=WAIT)
        agent.close()
    assert not thread.is_alive()


def archived_files(config: Config) -> list[Path]:
    return sorted(config.agent.archive_dir.iterdir()) if config.agent.archive_dir.exists() else []


def test_watch_sends_out_of_order_drops_in_dependency_order(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, settle=0.3, window=0.8)
    drop = config.route().watch
    reporter = RecordingReporter()
    with watching(config, reporter):
        # memberships first, written slowly in pieces
        rows = membership_rows(6, courses=2)
        with (drop / "enrol.txt").open("w", encoding="utf-8") as handle:
            handle.write("|".join(MEMBERSHIP_HEADER) + "\n")
            for row in rows:
                handle.write("|".join(row) + "\n")
                handle.flush()
                time.sleep(0.1)
        write_flatfile(drop / "courses.txt", COURSE_HEADER, course_rows(2))
        staging = tmp_path / "staging"
        staging.mkdir()
        write_flatfile(staging / "users.txt", PEOPLE_HEADER, person_rows(6)).rename(drop / "users.txt")
        wait_for(lambda: len(archived_files(config)) == 3, what="three archived files")
        wait_for(lambda: len(reporter.files) == 3, what="three reports (each recorded after its archive)")

        assert [u.slug for u in learn_sim.uploads_snapshot()] == ["person", "course", "membership"]
        assert all(learn_sim.dataset(u.uid).errors == 0 for u in learn_sim.uploads_snapshot())
        assert [f.status.value for f in reporter.files] == ["SUCCESS"] * 3

        # An admin moves a file back from the archive: processed again as a new file, old mtime or not.
        old = next(p for p in archived_files(config) if p.name.startswith("users."))
        os.utime(old, (time.time() - 86400 * 400, time.time() - 86400 * 400))
        shutil.move(str(old), drop / old.name)
        wait_for(lambda: len(learn_sim.uploads_snapshot()) == 4, what="the re-sent file")
        wait_for(lambda: len(archived_files(config)) == 3 and not any(drop.iterdir()), what="archived again")
    names = [p.name for p in archived_files(config)]
    assert sum(n.startswith("users.") for n in names) == 1
    assert all(n.count("T") >= 1 and n.count("Z") == 1 for n in names if n.startswith("users."))  # one stamp


def test_run_empties_the_folder_and_returns_true(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, settle=0.2)
    drop = config.route().watch
    write_flatfile(drop / "b-enrol.txt", MEMBERSHIP_HEADER, membership_rows(4, courses=1))
    write_flatfile(drop / "a-courses.txt", COURSE_HEADER, course_rows(1))
    write_flatfile(drop / "c-users.txt", PEOPLE_HEADER, person_rows(4))
    assert run_once(config).ok is True
    assert not any(drop.iterdir())
    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["person", "course", "membership"]
    assert len(list(config.agent.outbox_dir.glob("*.eml"))) == 4  # three per-file reports + summary
    assert "SUCCESS" in status_report(config)


def test_run_returns_false_when_anything_needs_attention(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, settle=0.2)
    (config.route().watch / "junk.txt").write_bytes(b"\x00\x01binary")
    assert run_once(config).ok is False
    assert (config.agent.failed_dir / "junk.txt").exists()
    assert "binary" in (config.agent.failed_dir / "junk.txt.reason.txt").read_text(encoding="utf-8")


def test_symlinks_are_moved_aside_and_folders_left_never_followed(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, settle=0.2)
    drop = config.route().watch
    secret = tmp_path / "outside.txt"
    write_flatfile(secret, PEOPLE_HEADER, person_rows(2))
    (drop / "link.txt").symlink_to(secret)
    (drop / "subfolder").mkdir()
    reporter = RecordingReporter()
    with watching(config, reporter):
        wait_for(lambda: (config.agent.failed_dir / "link.txt.reason.txt").exists(), what="symlink moved aside")
        wait_for(lambda: len(reporter.files) == 2, what="a REJECTED report for each")
    assert learn_sim.uploads_snapshot() == []
    assert secret.exists() and (drop / "subfolder").is_dir()  # agent.strays: a folder stays where it is


def test_missing_alert_once_per_silence(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    """Injected clock: the alert goes once when a route stays silent too long, not at every check."""
    config = load(tmp_path, learn_sim.url, route_extra="expect_every_hours = 2")
    reporter = RecordingReporter()
    clock = FakeClock()
    agent = Agent(config, reporter=reporter, clock=clock)
    try:
        agent._housekeeping()
        assert reporter.missing_alerts == []  # just started: not silent yet
        clock.advance(2 * 3600 + 1)
        agent._housekeeping()
        agent._housekeeping()
        clock.advance(600)
        agent._housekeeping()
        assert len(reporter.missing_alerts) == 1  # once per silent period, not every check
    finally:
        agent.close()
    route, folder, hours, last = reporter.missing_alerts[0]
    assert route == "sis" and folder == config.route().watch and hours == 2 and last is None


def test_run_sends_missing_alerts_once_per_silence_across_runs(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    """Cron: every run is a new process; the silence's start and the alert live in the journal."""
    config = load(tmp_path, learn_sim.url, route_extra="expect_every_hours = 2")
    clock = FakeClock(datetime.now(timezone.utc))

    def nightly_run() -> tuple[RecordingReporter, Agent]:
        reporter = RecordingReporter()
        agent = Agent(config, reporter=reporter, clock=clock)
        try:
            agent.run_once()
        finally:
            agent.close()
        return reporter, agent

    reporter, agent = nightly_run()
    assert reporter.missing_alerts == [] and agent.all_ok  # first look at the folder: not silent yet
    clock.advance(3 * 3600)
    reporter, agent = nightly_run()
    assert len(reporter.missing_alerts) == 1 and not agent.all_ok
    assert agent.attention == ["route sis: no file arrived for 3.0 hours (missing-file alert sent)"]
    clock.advance(3600)
    reporter, agent = nightly_run()
    assert reporter.missing_alerts == [] and agent.all_ok  # the same silence: no second alert


# ------------------------------------------------------------------------------------------------
# Real processes: SIGKILL mid-poll, then restart; SIGTERM stops cleanly


def test_sigkill_after_upload_then_restart_never_uploads_twice(tmp_path: Path) -> None:
    with LearnSimulator(rows_per_second=20.0) as sim:  # 40 rows: about two seconds of processing
        ini = write_config(tmp_path, sim.url, settle=0.2, window=0.2)
        config = load_config(ini, environ={})
        write_flatfile(tmp_path / "drop" / "users.txt", PEOPLE_HEADER, person_rows(40))
        log_path = tmp_path / "agent.log"
        first = spawn(ini, "watch", log_path=log_path)
        try:
            wait_for(lambda: len(sim.uploads_snapshot()) == 1, what="the upload")
            with Journal(config.agent.journal_path) as journal:
                wait_for(lambda: any(r.reference for r in journal.in_flight()), what="the receipt in the journal")
            assert sim.dataset(sim.uploads_snapshot()[0].uid).finished is False  # still processing: mid-poll
            first.send_signal(signal.SIGKILL)
            first.wait(WAIT)
        finally:
            if first.poll() is None:
                first.kill()
        assert list(config.agent.processing_dir.iterdir())  # the file waits in processing/
        second = spawn(ini, "watch", log_path=log_path)
        try:
            wait_for(lambda: len(archived_files(config)) == 1, what="the archived file after restart")
            second.send_signal(signal.SIGTERM)
            assert second.wait(WAIT) == 0
        finally:
            if second.poll() is None:
                second.kill()
        assert len(sim.uploads_snapshot()) == 1
        log_text = log_path.read_text(encoding="utf-8", errors="replace")
        assert "resuming" in log_text and "sis-password" not in log_text


def test_sigterm_stops_watch_cleanly(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    log_path = tmp_path / "agent.log"
    process = spawn(ini, "watch", log_path=log_path)
    try:
        wait_for(lambda: "watching" in log_path.read_text(encoding="utf-8", errors="replace"), what="start-up")
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "stopped" in log_path.read_text(encoding="utf-8")


@pytest.mark.parametrize("count", [300])
def test_many_files_at_once_none_missed(tmp_path: Path, count: int) -> None:
    with LearnSimulator(rows_per_second=100000.0, start_delay=0) as sim:  # instant: the burst is under test
        config = load(tmp_path, sim.url, settle=0.2, window=0.3)
        drop = config.route().watch
        for i in range(count):
            write_flatfile(drop / f"users{i:04d}.txt", PEOPLE_HEADER, [(f"K{i}", "SIS", "A", "B", f"u{i}", "e@x")])
        assert run_once(config).ok is True
        assert len(sim.uploads_snapshot()) == count
        assert len(archived_files(config)) == count


# ------------------------------------------------------------------------------------------------
# Other destinations through the same `run`: Handshake's write-only bucket and AlumnIQ's job API


def destinations_config(
    root: Path,
    bucket: WriteOnlyBucket,
    api: JobApiStandIn,
    *,
    secret: str | None = None,
) -> Path:
    (root / "drop-handshake").mkdir(parents=True, exist_ok=True)
    (root / "drop-alumniq").mkdir(exist_ok=True)
    (root / ".env").write_text(
        f"HS_KEY={bucket.writer.access_key_id}\nHS_SECRET={secret or bucket.writer.secret_access_key}\n"
        f"AQ_KEY={bucket.writer.access_key_id}\nAQ_SECRET={bucket.writer.secret_access_key}\n"
        f"AQ_API_KEY={api.api_key}\n",
        encoding="utf-8",
    )
    ini = root / "agent.ini"
    common = f"""bucket = {bucket.bucket}
region = {bucket.region}
endpoint_url = {bucket.endpoint}
"""
    ini.write_text(
        f"""[agent]
work_dir = var
env_file = .env
settle_seconds = 0.2
[route:handshake]
watch = drop-handshake
target = handshake
[route:alumniq]
watch = drop-alumniq
target = alumniq
[target:handshake]
type = s3
prefix = {bucket.prefix}
access_key_id = ${{HS_KEY}}
secret_access_key = ${{HS_SECRET}}
{common}
[target:alumniq]
type = job
prefix = {bucket.prefix}warehouse/
key = {{name}}
job_url = {api.job_url}
api_key = ${{AQ_API_KEY}}
notify_email = sis-admins@example.edu
access_key_id = ${{AQ_KEY}}
secret_access_key = ${{AQ_SECRET}}
{common}
[email]
transport = file
to = admins@example.edu
""",
        encoding="utf-8",
    )
    return ini


def all_output(config: Config, captured: str) -> str:
    """Everything an admin or a log shipper could see: emails, reason files, journal, console."""
    texts = [captured]
    for folder in (config.agent.outbox_dir, config.agent.failed_dir):
        texts += [p.read_bytes().decode("utf-8", "replace") for p in folder.glob("*") if p.is_file()]
    texts.append(config.agent.journal_path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def test_run_delivers_to_write_only_bucket_and_job_api(
    tmp_path: Path, write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, capfd: pytest.CaptureFixture[str]
) -> None:
    from agent.cli import main

    ini = destinations_config(tmp_path, write_only_s3, job_api)
    users = tmp_path / "drop-handshake" / "users.csv"
    users.write_text('student_id,email,first_name\n1,"a@x.edu",Ann\n2,b@x.edu,"Bo, Jr"\n', encoding="utf-8")
    expected = users.read_bytes()
    (tmp_path / "drop-alumniq" / "warehouse.csv").write_text("id,name\n1,Ann\n", encoding="utf-8")

    assert main(["-c", str(ini), "run"]) == 0

    today = datetime.now(timezone.utc).strftime("%Y%m%d")
    assert write_only_s3.read(f"incoming/{today}_users.csv") == expected
    assert write_only_s3.read("incoming/warehouse/warehouse.csv") == b"id,name\n1,Ann\n"
    (call,) = job_api.calls
    assert call.job == "warehouse"
    assert call.body["filename"] == "warehouse.csv" and call.body["apiKey"] == job_api.api_key
    config = load_config(ini, environ={})
    output = all_output(config, capfd.readouterr().err)
    assert write_only_s3.writer.secret_access_key not in output and job_api.api_key not in output


def test_unknown_job_and_wrong_secret_fail_in_plain_words(
    tmp_path: Path, write_only_s3: WriteOnlyBucket, job_api: JobApiStandIn, capfd: pytest.CaptureFixture[str]
) -> None:
    from agent.cli import main

    wrong = "WRONG-secret-value-1234567890"
    ini = destinations_config(tmp_path, write_only_s3, job_api, secret=wrong)
    (tmp_path / "drop-handshake" / "users.csv").write_text("id,email\n1,a@x.edu\n", encoding="utf-8")
    (tmp_path / "drop-alumniq" / "donors.csv").write_text("id,name\n1,Ann\n", encoding="utf-8")

    assert main(["-c", str(ini), "run"]) == 1

    config = load_config(ini, environ={})
    subjects = sorted(
        str(message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"])
        for p in config.agent.outbox_dir.glob("*.eml")
    )
    assert "[feed-agent] FAILED users.csv — s3/upload" in subjects
    assert "[feed-agent] FAILED donors.csv — job/upload" in subjects
    users_reason = (config.agent.failed_dir / "users.csv.reason.txt").read_text(encoding="utf-8")
    assert "secret" in users_reason.lower()
    assert "does not exist" in (config.agent.failed_dir / "donors.csv.reason.txt").read_text(encoding="utf-8")
    output = all_output(config, capfd.readouterr().err)
    assert wrong not in output and job_api.api_key not in output


# ------------------------------------------------------------------------------------------------
# Reports through a real SMTP server (STARTTLS, certificate verified, AUTH required)


def test_batch_reports_reach_a_real_smtp_server(
    tmp_path: Path,
    learn_sim: LearnSimulator,
    smtp_server: Callable,
    tls_cert: TlsCert,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from agent.cli import main

    server = smtp_server(tls="starttls", users={"agent@example.edu": "mail-s3cret-pw"}, auth_required=True)
    email = (
        f"transport = smtp\nhost = 127.0.0.1\nport = {server.port}\nsecurity = starttls\n"
        f"verify_tls = {tls_cert.cert}\nusername = ${{SMTP_USERNAME}}\npassword = ${{SMTP_PASSWORD}}\n"
        "from = feed-agent@example.edu\nto = sis-admins@example.edu\n"
    )
    ini = write_config(tmp_path, learn_sim.url, email=email)
    with (tmp_path / ".env").open("a", encoding="utf-8") as env:
        env.write("SMTP_USERNAME=agent@example.edu\nSMTP_PASSWORD=mail-s3cret-pw\n")
    drop = tmp_path / "drop"
    write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(3))
    write_flatfile(drop / "courses.txt", COURSE_HEADER, course_rows(1))
    # memberships naming a person who is in no file: Learn reports record errors for those rows
    rows = [*membership_rows(3, courses=1), ("C001", "P99999", "SIS", "Student")]
    write_flatfile(drop / "x<script>.txt", MEMBERSHIP_HEADER, rows)

    assert main(["-c", str(ini), "run"]) == 1

    messages = server.parsed()
    subjects = [str(m["Subject"]) for m in messages]
    assert len(messages) == 4, subjects
    assert subjects[:3] == [
        "[feed-agent] SUCCESS users.txt — person/store",
        "[feed-agent] SUCCESS courses.txt — course/store",
        "[feed-agent] ERRORS x<script>.txt — membership/store",
    ]
    assert subjects[3].startswith("[feed-agent] Summary: 3 files — ")
    codes = [u.uid for u in learn_sim.uploads_snapshot()]
    for message, code in zip(messages[:3], codes, strict=True):
        assert code in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert code in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    html = messages[2].get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "x&lt;script&gt;.txt" in html and "<script>" not in html
    assert server.logins == ["agent@example.edu"] * 4
    everything = b"\n".join(server.messages).decode("utf-8", "replace") + capfd.readouterr().err
    for secret in ("mail-s3cret-pw", learn_sim.password):
        assert secret not in everything


def test_ready_marker_gates_the_file_and_is_consumed(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, settle=0.1, agent_extra="ready_suffix = .done")
    drop = config.route().watch
    write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(2))
    with watching(config) as agent:
        # Seen, but not ready without its marker (the "not ready long after settling" rule is tested
        # with an injected clock in tests/test_readiness.py).
        wait_for(lambda: agent.watcher.pending("sis"), what="the file to be seen")
        assert learn_sim.uploads_snapshot() == []
        (drop / "users.txt.done").write_text("", encoding="utf-8")
        wait_for(lambda: len(archived_files(config)) == 1, what="the file once its marker exists")
    assert not (drop / "users.txt.done").exists()
    assert len(learn_sim.uploads_snapshot()) == 1


def test_run_applies_archive_retention(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, agent_extra="archive_retention_days = 30")
    config.agent.archive_dir.mkdir(parents=True)
    old = config.agent.archive_dir / "users.20200101T000000Z.txt"
    old.write_text("old\n", encoding="utf-8")
    recent = config.agent.archive_dir / f"users.{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.txt"
    recent.write_text("new\n", encoding="utf-8")
    held = config.agent.keysets_dir / "held"
    held.mkdir(parents=True)
    old_list, recent_list = held / "3-people.txt.disabled.csv", held / "9-people.txt.disabled.csv"
    for key_list in (old_list, recent_list):
        key_list.write_text("external_person_key\nP1\n", encoding="utf-8")
    os.utime(old_list, (datetime(2020, 1, 1).timestamp(),) * 2)
    assert run_once(config).ok is True
    assert not old.exists() and recent.exists()
    assert not old_list.exists() and recent_list.exists()  # held key lists age out with the archive


class FlakyReporter(RecordingReporter):
    """Fails once after the first file, like any unexpected error in the middle of a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_once = False

    def file_done(self, outcome) -> None:  # type: ignore[no-untyped-def]
        super().file_done(outcome)
        if not self.failed_once:
            self.failed_once = True
            raise RuntimeError("disk full while writing the report")


def test_a_failing_step_is_retried_without_resending(
    tmp_path: Path, learn_sim: LearnSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load(tmp_path, learn_sim.url, agent_extra="retry_first_seconds = 0.2")
    drop = config.route().watch
    write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(2))
    write_flatfile(drop / "courses.txt", COURSE_HEADER, course_rows(1))
    reporter = FlakyReporter()
    with watching(config, reporter):
        wait_for(lambda: len(archived_files(config)) == 2, what="both files, the second after the retry")
    assert reporter.failed_once
    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["person", "course"]
    assert not any(config.agent.processing_dir.iterdir())


class BrokenReporter(RecordingReporter):
    """Its first `failures` per-file reports raise, like a bug in the middle of a batch."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def file_done(self, outcome) -> None:  # type: ignore[no-untyped-def]
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("a bug in the report")
        super().file_done(outcome)


def test_a_bug_in_a_step_is_isolated_retried_with_back_off_and_its_traceback_shown_once(
    tmp_path: Path, learn_sim: LearnSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = load(tmp_path, learn_sim.url, agent_extra="retry_first_seconds = 0.05\nretry_max_seconds = 0.2")
    drop = config.route().watch
    write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(2))
    write_flatfile(drop / "courses.txt", COURSE_HEADER, course_rows(1))
    reporter = BrokenReporter(failures=3)
    with watching(config, reporter):
        wait_for(lambda: len(reporter.troubles) == 2, what="the PROBLEM and the RESOLVED notices")
        wait_for(lambda: not any(config.agent.processing_dir.iterdir()), what="everything filed away")
    episode = [r for r in caplog.records if r.name == "agent.troubles" and "(attempt" in r.getMessage()]
    # attempt 1: both reports raise (each file isolated); attempt 2: users.txt's again; attempt 3 works
    assert [bool(r.exc_info) for r in episode] == [True, False]  # the bug's traceback, once
    assert not any(r.exc_info for r in caplog.records if r not in episode)
    assert [n.key for n in reporter.troubles] == ["route:sis", "route:sis"]
    assert reporter.troubles[0].cleared_at is None and reporter.troubles[1].cleared_at is not None
    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["person", "course"]  # nothing sent twice
    assert sorted(o.name for o in reporter.files) == ["courses.txt", "users.txt"]


class BrokenOnOneRoute(RecordingReporter):
    """Every report of one route raises (a bug that keeps hitting it) until `fixed` is set."""

    def __init__(self, route: str) -> None:
        super().__init__()
        self.route, self.fixed = route, False

    def file_done(self, outcome) -> None:  # type: ignore[no-untyped-def]
        if outcome.route == self.route and not self.fixed:
            raise RuntimeError("a bug on this route")
        super().file_done(outcome)


def test_a_route_that_keeps_failing_holds_only_its_own_files(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    second = "\n[route:other]\nwatch = ../drop-other\ntarget = learn\n"
    config = load(
        tmp_path, learn_sim.url, agent_extra="retry_first_seconds = 0.05\nretry_max_seconds = 0.2", route_extra=second
    )
    (tmp_path / "drop-other").mkdir()
    reporter = BrokenOnOneRoute("sis")
    write_flatfile(config.route("sis").watch / "users.txt", PEOPLE_HEADER, person_rows(2))
    with watching(config, reporter):
        wait_for(lambda: any(n.key == "route:sis" for n in reporter.troubles), what="the route's PROBLEM notice")
        write_flatfile(config.route("other").watch / "courses.txt", COURSE_HEADER, course_rows(1))
        wait_for(lambda: [o.name for o in reporter.files] == ["courses.txt"], what="the other route's file")
        write_flatfile(config.route("sis").watch / "more.txt", PEOPLE_HEADER, person_rows(1))
        reporter.fixed = True
        wait_for(lambda: len(reporter.troubles) == 2, what="the RESOLVED notice")
        wait_for(lambda: len(archived_files(config)) == 3, what="every file archived")
    assert [(n.key, n.cleared_at is not None) for n in reporter.troubles] == [("route:sis", False), ("route:sis", True)]
    slugs = [u.slug for u in learn_sim.uploads_snapshot()]
    assert sorted(slugs) == ["course", "person", "person"]  # users.txt once, then more.txt, never twice
    assert not any(config.agent.processing_dir.iterdir())


def test_only_one_watch_or_run_per_work_folder(
    tmp_path: Path, learn_sim: LearnSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    from agent.errors import AlreadyRunning

    config = load(tmp_path, learn_sim.url)
    write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(2))
    first = Agent(config, reporter=RecordingReporter())
    try:
        with pytest.raises(AlreadyRunning, match=str(os.getpid())):
            Agent(config, reporter=RecordingReporter())
        assert run_once(config).ok is False  # cron while the service runs: nothing done
        assert "already watching or running" in caplog.text
        assert (config.route().watch / "users.txt").exists()
    finally:
        first.close()
    assert run_once(config).ok is True  # once it is gone, the folder is free


def test_the_loop_sleeps_until_the_batch_window_closes_not_a_fixed_tick(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    config = load(tmp_path, learn_sim.url, settle=0.05, window=30)
    agent = Agent(config, reporter=RecordingReporter())
    try:
        agent._turn()  # recovery and waiting moves done: from now on the loop is healthy
        now = agent.clock.monotonic()
        # Nothing waiting: the loop sleeps until housekeeping (or an event wakes it).
        assert agent._until_next(now + 60) == pytest.approx(60, abs=1)
        assert agent._until_next(now + 7) == pytest.approx(7, abs=1)
        write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(2))
        agent.watcher.scan()
        agent.watcher.wait_until_settled(timeout=WAIT)
        [ready] = agent.watcher.pending("sis")
        assert ready.ready
        agent._turn()  # the window is still open: nothing is sent
        assert learn_sim.uploads_snapshot() == []
        # A ready file: the loop wakes when the batch window after its last change closes.
        expected = ready.last_change + 30 - agent.clock.monotonic()
        assert agent._until_next(agent.clock.monotonic() + 60) == pytest.approx(expected, abs=1)
        assert 0 < agent._until_next(agent.clock.monotonic() + 60) <= 30
    finally:
        agent.close()


def test_the_outcomes_a_daemon_keeps_are_bounded_by_files_too(
    tmp_path: Path, learn_sim: LearnSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.outcomes import batch, outcome

    monkeypatch.setattr("agent.daemon.RECENT_FILES", 1_000)
    agent = Agent(load(tmp_path, learn_sim.url), reporter=RecordingReporter())
    try:
        for number in range(5):
            agent._record([batch(*(outcome(name=f"b{number}-{i}.txt") for i in range(400)))])
        assert [b.files[0].name for b in agent.batches] == ["b3-0.txt", "b4-0.txt"]
        agent._record([batch(*(outcome(name=f"big-{i}.txt") for i in range(3_000)))])
        assert [len(b.files) for b in agent.batches] == [3_000]  # the latest batch is kept whole
    finally:
        agent.close()


def test_watch_keeps_only_the_latest_outcomes_in_memory(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url)
    agent = Agent(config, reporter=RecordingReporter())
    try:
        agent.watching = True
        for number in range(30):
            agent._record([batch(*(outcome(name=f"b{number}-f{i}.txt") for i in range(50)))])
        kept = [f.name for b in agent.batches for f in b.files]
        assert len(kept) <= WATCH_FILES and kept[-1] == "b29-f49.txt"
        agent._record([batch(*(outcome(name=f"big-{i}.txt") for i in range(WATCH_FILES + 1)))])
        assert [len(b.files) for b in agent.batches] == [WATCH_FILES + 1]  # the newest batch stays whole
        assert agent.all_ok
    finally:
        agent.close()


# ------------------------------------------------------------------------------------------------
# Failure episodes in a real `watch` (issue 14.3-14.5): alive, back-off as announced, one email each


def smtp_email(port: int, extra: str = "") -> str:
    return (
        f"transport = smtp\nhost = 127.0.0.1\nport = {port}\nsecurity = none\n"
        f"from = feed-agent@example.edu\nto = sis-admins@example.edu\nsummary = no\n{extra}"
    )


def stop_watch(process: subprocess.Popen[bytes]) -> int:
    try:
        process.send_signal(signal.SIGTERM)
        return process.wait(WAIT)
    finally:
        if process.poll() is None:
            process.kill()


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []


def subjects(server: SmtpServer) -> list[str]:
    return [str(message["Subject"]) for message in server.parsed()]


def test_an_unwritable_archive_at_start_keeps_watch_alive_and_sends_one_email(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], refuse_writes: Callable[[Path], ReadOnlyFolder]
) -> None:
    server = smtp_server()
    with LearnSimulator(rows_per_second=40.0) as sim:
        ini = write_config(
            tmp_path,
            sim.url,
            agent_extra="retry_first_seconds = 0.1\nretry_max_seconds = 0.4",
            email=smtp_email(server.port),
        )
        config = load_config(ini, environ={})
        write_flatfile(tmp_path / "drop" / "users.txt", PEOPLE_HEADER, person_rows(20))
        killed_at = {"FEED_AGENT_FAILPOINT": "receipt-journaled"}
        crashed = spawn(ini, "watch", log_path=tmp_path / "first.log", env=killed_at)
        assert crashed.wait(WAIT) == -signal.SIGKILL  # killed mid-delivery: the receipt is journaled
        archive_fault = refuse_writes(config.agent.archive_dir)

        log_path = tmp_path / "watch.log"
        process = spawn(ini, "watch", log_path=log_path)
        try:
            wait_for(lambda: len(server.messages) == 1, what="the file's report")
            retries = "Delivered files cannot be moved to archive/ (attempt"
            wait_for(lambda: sum(retries in line for line in lines_of(log_path)) >= 3, what="three moves tried")
            assert process.poll() is None  # still watching: no exit 1, no crash loop
            polls = sim.status_requests
            (report,) = server.parsed()
            assert "SUCCESS users.txt" in str(report["Subject"])
            text = " ".join(report.get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
            assert "The file is still in processing/" in text and "moves it by itself" in text
            assert len(server.messages) == 1  # one email, however many retries

            archive_fault.off()
            wait_for(lambda: len(archived_files(config)) == 1, what="the move once archive/ takes it")
            wait_for(lambda: len(server.messages) == 2, what="the RESOLVED email")
            assert stop_watch(process) == 0
        finally:
            if process.poll() is None:
                process.kill()
        assert len(server.messages) == 2  # the report, then one RESOLVED: nothing more, however many retries
        assert subjects(server)[1] == "[feed-agent] RESOLVED: Delivered files cannot be moved to archive/"
        assert sim.status_requests == polls  # moved without asking Learn again
        assert len(sim.uploads_snapshot()) == 1
        assert not any(config.agent.processing_dir.iterdir())
        log_text = log_path.read_text(encoding="utf-8")
        assert "Traceback" not in log_text
        with Journal(config.agent.journal_path) as journal:
            assert journal.troubles() == [] and journal.in_flight() == []


RETRY_SCALE = 10  # the back-off's defaults (5 s doubling to 300 s) 10 times shorter: 3 s stand for 30 s


def short_retries_config(tmp_path: Path, learn_sim: LearnSimulator, server: SmtpServer) -> Path:
    """A config whose failure back-off runs RETRY_SCALE times faster, mailing only problems."""
    return write_config(
        tmp_path,
        learn_sim.url,
        agent_extra=f"retry_first_seconds = {5 / RETRY_SCALE}\nretry_max_seconds = {300 / RETRY_SCALE}",
        email=smtp_email(server.port, "per_file = problems\n"),
    )


def test_thirty_seconds_of_an_unwritable_drop_folder_log_fewer_than_twenty_lines(
    tmp_path: Path,
    learn_sim: LearnSimulator,
    smtp_server: Callable[..., SmtpServer],
    refuse_writes: Callable[[Path], ReadOnlyFolder],
) -> None:
    server = smtp_server()
    ini = short_retries_config(tmp_path, learn_sim, server)
    config = load_config(ini, environ={})
    drop = config.route().watch
    write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(3))
    drop_fault = refuse_writes(drop)
    log_path = tmp_path / "watch.log"
    process = spawn(ini, "watch", log_path=log_path)
    try:
        attempt = f"Files cannot be taken from {drop} (attempt"
        wait_for(lambda: any(attempt in line for line in lines_of(log_path)), what="the first failed claim")
        time.sleep(30 / RETRY_SCALE)  # the window under test (not an assertion on time: lines are counted)
        lines = lines_of(log_path)
        assert process.poll() is None
        assert len(lines) < 20, "\n".join(lines)
        assert sum(attempt in line for line in lines) >= 2  # it did retry, on its back-off
        assert not any("Traceback" in line for line in lines)
        wait_for(lambda: len(server.messages) == 1, what="the PROBLEM email")
        assert subjects(server) == [f"[feed-agent] PROBLEM: Files cannot be taken from {drop}"]
        with Journal(config.agent.journal_path) as journal:
            assert journal.recent_files() == [] and journal.recent_batches() == []  # no rows from the retries

        drop_fault.off()
        wait_for(lambda: len(archived_files(config)) == 1, what="the file, once the folder takes writes")
        wait_for(lambda: len(server.messages) == 2, what="the RESOLVED email")
        assert stop_watch(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert len(server.messages) == 2  # one PROBLEM, one RESOLVED
    assert subjects(server)[1] == f"[feed-agent] RESOLVED: Files cannot be taken from {drop}"
    assert len(learn_sim.uploads_snapshot()) == 1


def test_run_with_an_unwritable_archive_says_so_in_plain_words_and_the_next_run_moves_it(
    tmp_path: Path,
    learn_sim: LearnSimulator,
    refuse_writes: Callable[[Path], ReadOnlyFolder],
    capfd: pytest.CaptureFixture[str],
) -> None:
    from agent.cli import main

    ini = write_config(tmp_path, learn_sim.url)
    config = load_config(ini, environ={})
    write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(3))
    archive_fault = refuse_writes(config.agent.archive_dir)

    assert main(["-c", str(ini), "run"]) == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "Delivered files cannot be moved to archive/: users.txt:" in err
    assert [p.name for p in config.agent.processing_dir.iterdir()] == ["users.txt"]
    status = status_report(config)
    assert status.startswith("Problems now (the agent retries by itself):")
    assert "Delivered files cannot be moved to archive/: failing since" in status

    archive_fault.off()
    polls = learn_sim.status_requests
    assert main(["-c", str(ini), "run"]) == 0  # the next night: moved, nothing sent or asked again
    assert "Traceback" not in capfd.readouterr().err
    assert len(archived_files(config)) == 1 and not any(config.agent.processing_dir.iterdir())
    assert len(learn_sim.uploads_snapshot()) == 1 and learn_sim.status_requests == polls
    assert "Problems now" not in status_report(config)
    outbox = sorted(p.name for p in config.agent.outbox_dir.iterdir())
    assert sum("RESOLVED" in (config.agent.outbox_dir / name).read_text(errors="replace") for name in outbox) == 1


def test_thirty_seconds_of_a_full_disk_log_fewer_than_twenty_lines(
    tmp_path: Path, learn_sim: LearnSimulator, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server()
    ini = short_retries_config(tmp_path, learn_sim, server)
    config = load_config(ini, environ={})
    work = config.agent.work_dir  # journal, processing/, archive/, the mail spool: all on one tiny disk
    log_path = tmp_path / "watch.log"
    process = spawn(ini, "watch", log_path=log_path, prefix=tiny_disk_prefix(work, 4096))
    try:
        wait_for(lambda: any("uses the native observer" in line for line in lines_of(log_path)), what="start-up")
        seen_by_agent = Path(f"/proc/{process.pid}/root") / work.relative_to(work.anchor)
        filler = fill_up(seen_by_agent)
        write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(3))
        wait_for(lambda: any("(attempt 1, failing since" in line for line in lines_of(log_path)), what="a failure")
        time.sleep(30 / RETRY_SCALE)  # the window under test (lines are counted, not seconds)
        lines = lines_of(log_path)
        assert process.poll() is None  # still watching
        assert len(lines) < 20, "\n".join(lines)
        assert any("No space left on device" in line for line in lines)
        assert not any("Traceback" in line for line in lines)
        wait_for(lambda: len(server.messages) == 1, what="the PROBLEM email, sent past the full spool")
        assert subjects(server)[0].startswith("[feed-agent] PROBLEM: ")

        filler.unlink()  # space again: the file goes out, once
        wait_for(lambda: len(learn_sim.uploads_snapshot()) == 1, what="the upload once the disk has room")
        wait_for(lambda: any((seen_by_agent / "archive").glob("users.*.txt")), what="the archived file")
        wait_for(lambda: len(server.messages) == 2, what="the RESOLVED email")
        assert stop_watch(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert subjects(server)[1].startswith("[feed-agent] RESOLVED: ")
    assert len(learn_sim.uploads_snapshot()) == 1


def test_a_file_that_vanished_from_processing_before_a_restart_keeps_watch_alive_with_one_email(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server()
    with LearnSimulator(rows_per_second=40.0) as sim:
        ini = write_config(tmp_path, sim.url, email=smtp_email(server.port))
        config = load_config(ini, environ={})
        write_flatfile(tmp_path / "drop" / "users.txt", PEOPLE_HEADER, person_rows(20))
        killed_at = {"FEED_AGENT_FAILPOINT": "receipt-journaled"}
        crashed = spawn(ini, "watch", log_path=tmp_path / "first.log", env=killed_at)
        assert crashed.wait(WAIT) == -signal.SIGKILL
        (left,) = config.agent.processing_dir.iterdir()
        left.unlink()  # someone cleaned processing/ while the service was down

        log_path = tmp_path / "watch.log"
        process = spawn(ini, "watch", log_path=log_path)
        try:
            wait_for(lambda: len(server.messages) == 1, what="the file's one report")
            wait_for(lambda: any("not found in" in line for line in lines_of(log_path)), what="the vanished file")
            assert process.poll() is None  # still watching
            write_flatfile(tmp_path / "drop" / "courses.txt", COURSE_HEADER, course_rows(1))
            wait_for(lambda: len(sim.uploads_snapshot()) == 2, what="a new file still flows")
            wait_for(lambda: len(archived_files(config)) == 1, what="the new file archived")
            assert stop_watch(process) == 0
        finally:
            if process.poll() is None:
                process.kill()
    (report,) = [m for m in server.parsed() if "users.txt" in str(m["Subject"])]
    assert "SUCCESS users.txt" in str(report["Subject"])  # delivered before the crash: followed, not re-sent
    assert [u.slug for u in sim.uploads_snapshot()] == ["person", "course"]
    assert "Traceback" not in log_path.read_text(encoding="utf-8")


def test_episodes_left_by_an_earlier_process_neither_spin_the_loop_nor_stay_open_once_done(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    config = load(tmp_path, learn_sim.url)
    since = datetime.now(timezone.utc)
    with Journal(config.agent.journal_path) as journal:  # what a stopped `watch` left in the journal
        for key in ("route:sis", f"drop:{config.route().watch}"):
            journal.trouble_failed(key, "an error of yesterday", since)
            journal.trouble_alerted(key, since)
    reporter = RecordingReporter()
    agent = Agent(config, reporter=reporter)
    try:
        agent._turn()  # recovery at start: nothing of route sis is left in processing/ any more
        assert [(n.key, n.cleared_at is not None) for n in reporter.troubles] == [("route:sis", True)]
        # The drop folder's episode waits for a file to come through; meanwhile the loop sleeps.
        assert [e.key for e in agent.troubles.open_episodes()] == [f"drop:{config.route().watch}"]
        now = agent.clock.monotonic()
        assert agent._until_next(now + 60) == pytest.approx(60, abs=1)
        write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(2))
        agent.watcher.scan()
        agent.watcher.wait_until_settled(timeout=WAIT)
        wait_for(lambda: agent._turn() or archived_files(config), what="the file, through the drop folder")
        assert [n.key for n in reporter.troubles] == ["route:sis", f"drop:{config.route().watch}"]
        assert agent.troubles.open_episodes() == []
    finally:
        agent.close()
