"""`post` owns its file: the service never adopts it, `status` shows a dead one as interrupted, only
`post` resumes it; Ctrl-C and SIGTERM say where the file was left. Real processes, real signals, the
Learn simulator over HTTP; uploads are counted at the simulator."""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.config import load_config
from agent.journal import Journal
from agent.journal_schema import FileRecord, FileState, Owner
from agent.settings import Config
from agent.simulator import LearnSimulator
from tests.support.agentconf import write_config
from tests.support.cli import run, spawn
from tests.support.learn import COURSE_HEADER, PEOPLE_HEADER, course_rows, person_rows, write_flatfile
from tests.support.waiting import wait_for

WAIT = 30.0
SLOW_READ = 1024 * 1024  # bytes/s: the simulator reads an upload as a slow link would
BIG_ROWS = 600_000  # about 30 MB: far more than loopback socket buffers hold, so the upload is under way


def _row(config: Config, name: str) -> FileRecord | None:
    if not config.agent.journal_path.exists():
        return None
    with Journal(config.agent.journal_path) as journal:
        rows = [r for r in journal.recent_files(50) if r.name == name]
    return rows[0] if rows else None


def _state(config: Config, name: str) -> FileState | None:
    row = _row(config, name)
    return None if row is None else row.state


def _stop(process: subprocess.Popen[bytes], signum: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        process.send_signal(signum)
    process.wait(WAIT)


def _resume_command(status_text: str) -> list[str]:
    """The command `status` prints for an interrupted post (after "run:"), split as a shell would."""
    line = next(line for line in status_text.splitlines() if "ended early" in line)
    return shlex.split(line.split("run: ", 1)[1])


# ------------------------------------------------------------------------------------------------
# Ownership in the journal


def test_post_rows_carry_their_owner_and_pid(tmp_path: Path, learn_sim: LearnSimulator, capsys) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    config = load_config(ini, environ={})
    (tmp_path / "admin").mkdir()
    moved = write_flatfile(tmp_path / "admin" / "users.txt", PEOPLE_HEADER, person_rows(3))
    kept = write_flatfile(tmp_path / "admin" / "courses.txt", COURSE_HEADER, course_rows(2))

    assert run(capsys, "-c", ini, "post", moved)[0] == 0
    assert run(capsys, "-c", ini, "post", kept, "--keep")[0] == 0

    users, courses = _row(config, "users.txt"), _row(config, "courses.txt")
    assert users is not None and courses is not None
    assert (users.owner, courses.owner) == (Owner.POST, Owner.POST_KEEP)
    assert users.owner_pid is not None and users.owner_pid > 0
    assert users.source_path == str(moved)  # absolute: a later `post FILE` finds the row by it
    assert kept.exists() and not moved.exists()
    with Journal(config.agent.journal_path) as journal:
        assert {b.owner for b in journal.recent_batches()} == {Owner.POST, Owner.POST_KEEP}


def test_post_keep_of_a_file_in_a_watched_folder_is_refused(tmp_path: Path, learn_sim: LearnSimulator, capsys) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    dropped = write_flatfile(tmp_path / "drop" / "users.txt", PEOPLE_HEADER, person_rows(3))
    before = dropped.read_bytes()

    status, _out, err = run(capsys, "-c", ini, "post", dropped, "--keep")

    assert status == 1
    assert "in the watched folder of route sis" in err and "second time" in err
    assert dropped.read_bytes() == before and learn_sim.uploads_snapshot() == []


def test_post_of_a_file_the_service_has_in_processing_is_refused(
    tmp_path: Path, learn_sim: LearnSimulator, capsys
) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    config = load_config(ini, environ={})
    config.agent.processing_dir.mkdir(parents=True)
    taken = write_flatfile(config.agent.processing_dir / "users.txt", PEOPLE_HEADER, person_rows(3))

    status, _out, err = run(capsys, "-c", ini, "post", taken)

    assert status == 1 and "the service is handling it" in err
    assert taken.exists() and learn_sim.uploads_snapshot() == []


# ------------------------------------------------------------------------------------------------
# A post that died: never adopted by the service, shown as interrupted, resumed only by `post`


def test_a_killed_post_is_never_adopted_by_watch_and_only_post_resumes_it(tmp_path: Path, capsys) -> None:
    with LearnSimulator(rows_per_second=20.0) as sim:  # 60 rows: about three seconds of processing
        ini = write_config(tmp_path, sim.url)
        config = load_config(ini, environ={})
        (tmp_path / "admin").mkdir()
        users = write_flatfile(tmp_path / "admin" / "users.txt", PEOPLE_HEADER, person_rows(60))
        post = spawn(ini, "post", users, log_path=tmp_path / "post.log")
        try:
            wait_for(lambda: _state(config, "users.txt") is FileState.SUBMITTED, what="the post's receipt")
        finally:
            _stop(post, signal.SIGKILL)  # as a closed terminal or the OOM killer would
        assert len(sim.uploads_snapshot()) == 1

        watch = spawn(ini, "watch", log_path=tmp_path / "watch.log")
        try:  # a file of the service's own proves the restarted watch is at work (its recovery ran first)
            write_flatfile(tmp_path / "drop" / "courses.txt", COURSE_HEADER, course_rows(2))
            wait_for(lambda: _state(config, "courses.txt") is FileState.ARCHIVED, what="watch at work")
        finally:
            _stop(watch, signal.SIGTERM)
        assert watch.returncode == 0
        assert [u.slug for u in sim.uploads_snapshot()] == ["person", "course"]  # the post's file: once
        assert (config.agent.processing_dir / "users.txt").exists()
        assert _state(config, "users.txt") is FileState.SUBMITTED
        assert "Traceback" not in (tmp_path / "watch.log").read_text()

        status, out, _err = run(capsys, "-c", ini, "status")
        assert status == 0
        assert "interrupted" in out and "Interrupted posts" in out
        assert "was sent and Learn is processing it (reference" in out

        resumed = subprocess.run(_resume_command(out), capture_output=True, text=True, timeout=WAIT)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "resuming the interrupted post of users.txt" in resumed.stdout
        assert "result: SUCCESS" in resumed.stdout
        assert len(sim.uploads_snapshot()) == 2  # followed, never sent again
        assert _state(config, "users.txt") is FileState.ARCHIVED
        assert not (config.agent.processing_dir / "users.txt").exists()
        assert "interrupted" not in run(capsys, "-c", ini, "status")[1]


SENT_WHOLE = ("body-sent", "receipt-received")  # the last byte went out, the answer was never journaled
POST_FAILPOINTS = (
    "batch-planned",
    "claim-renamed",
    "claim-journaled",
    "inspect-journaled",
    "submit-journaled",
    *SENT_WHOLE,
    "receipt-journaled",
    "poll-journaled",
    "result-journaled",
    "archive-renamed",
)


@pytest.mark.parametrize("point", POST_FAILPOINTS)
def test_a_post_killed_at_each_step_is_left_to_post_and_resumed_without_a_second_upload(
    tmp_path: Path, learn_sim: LearnSimulator, point: str, capsys
) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    config = load_config(ini, environ={})
    (tmp_path / "admin").mkdir()
    users = write_flatfile(tmp_path / "admin" / "users.txt", PEOPLE_HEADER, person_rows(3))
    post = spawn(ini, "post", users, log_path=tmp_path / "post.log", env={"FEED_AGENT_FAILPOINT": point})
    assert post.wait(WAIT) == -signal.SIGKILL, (tmp_path / "post.log").read_text()
    uploads = len(learn_sim.uploads_snapshot())
    assert uploads == (0 if POST_FAILPOINTS.index(point) < POST_FAILPOINTS.index("body-sent") else 1)

    assert run(capsys, "-c", ini, "run")[0] == 0  # the service: nothing of its own, and the post's is not its own
    assert len(learn_sim.uploads_snapshot()) == uploads
    row = _row(config, "users.txt")
    assert row is not None and row.in_flight and row.owner is Owner.POST
    assert "interrupted" in run(capsys, "-c", ini, "status")[1]

    newer = point == "poll-journaled"  # the SIS wrote a new export where the old one was meanwhile
    if newer:
        write_flatfile(users, PEOPLE_HEADER, person_rows(4))
    status, out, _err = run(capsys, "-c", ini, "post", users)  # the admin runs the same command again

    assert "resuming the interrupted post of users.txt" in out
    assert ("is not sent by this command" in out) is newer and users.exists() is newer
    assert len(learn_sim.uploads_snapshot()) == 1  # sent once in all, whatever step the post died at
    if point in SENT_WHOLE:  # Learn may have it: never sent again, UNCONFIRMED
        assert status == 1 and "result: UNCONFIRMED" in out
        assert _state(config, "users.txt") is FileState.UNCONFIRMED
    else:
        assert status == 0 and "result: SUCCESS" in out
        assert _state(config, "users.txt") is FileState.ARCHIVED
    assert list(config.agent.processing_dir.iterdir()) == []


def test_an_interrupted_post_keep_never_lets_run_move_the_admins_file(tmp_path: Path, capsys) -> None:
    with LearnSimulator(rows_per_second=20.0) as sim:
        ini = write_config(tmp_path, sim.url)
        config = load_config(ini, environ={})
        (tmp_path / "admin").mkdir()
        users = write_flatfile(tmp_path / "admin" / "users.txt", PEOPLE_HEADER, person_rows(60))
        post = spawn(ini, "post", users, "--keep", log_path=tmp_path / "post.log")
        try:
            wait_for(lambda: _state(config, "users.txt") is FileState.SUBMITTED, what="the post's receipt")
        finally:
            _stop(post, signal.SIGKILL)

        assert run(capsys, "-c", ini, "run")[0] == 0  # nothing of its own to do

        assert users.exists() and list(config.agent.archive_dir.glob("users*")) == []
        assert len(sim.uploads_snapshot()) == 1
        row = _row(config, "users.txt")
        assert row is not None and row.owner is Owner.POST_KEEP and row.state is FileState.SUBMITTED
        out = run(capsys, "-c", ini, "status")[1]
        assert "--keep" in _resume_command(out)


def test_a_second_post_of_a_file_still_being_posted_is_refused(tmp_path: Path, capsys) -> None:
    with LearnSimulator(rows_per_second=10.0) as sim:
        ini = write_config(tmp_path, sim.url, timeout_minutes=1.0)
        config = load_config(ini, environ={})
        (tmp_path / "admin").mkdir()
        users = write_flatfile(tmp_path / "admin" / "users.txt", PEOPLE_HEADER, person_rows(100))
        post = spawn(ini, "post", users, log_path=tmp_path / "post.log")
        try:
            wait_for(lambda: _state(config, "users.txt") is FileState.SUBMITTED, what="the post's receipt")
            status, _out, err = run(capsys, "-c", ini, "post", users)
            assert status == 1 and f"still being posted by feed-agent process {post.pid}" in err
            assert f"posting (pid {post.pid})" in run(capsys, "-c", ini, "status")[1]
        finally:
            _stop(post, signal.SIGKILL)
        assert len(sim.uploads_snapshot()) == 1


# ------------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM


def test_ctrl_c_while_learn_processes_says_sent_with_the_reference(tmp_path: Path, capsys) -> None:
    with LearnSimulator(rows_per_second=10.0) as sim:
        ini = write_config(tmp_path, sim.url, timeout_minutes=1.0)
        config = load_config(ini, environ={})
        (tmp_path / "admin").mkdir()
        users = write_flatfile(tmp_path / "admin" / "users.txt", PEOPLE_HEADER, person_rows(100))
        log_path = tmp_path / "post.log"
        post = spawn(ini, "post", users, log_path=log_path)
        try:
            row = wait_for(
                lambda: (r := _row(config, "users.txt")) is not None and r.state is FileState.SUBMITTED and r,
                what="the post's receipt",
            )
            _stop(post, signal.SIGINT)
        finally:
            _stop(post)
        assert post.returncode == 1  # DESIGN.md: the file did not complete
        said = log_path.read_text()
        assert f"interrupted: users.txt was sent and Learn is processing it (reference {row.reference})" in said
        assert "it is not sent again" in said and " post " in said
        assert "Traceback" not in said
        assert _state(config, "users.txt") is FileState.SUBMITTED  # the post's to resume
        shown = run(capsys, "-c", ini, "status")[1]
        assert "interrupted" in shown and "STOPPED" in shown and "SUCCESS" not in shown  # file and batch
        assert len(sim.uploads_snapshot()) == 1


def _big_file(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    return write_flatfile(folder / "users.txt", PEOPLE_HEADER, person_rows(BIG_ROWS))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_post_stopped_mid_upload_abandons_it_and_gives_the_file_back(tmp_path: Path, signum: int) -> None:
    with LearnSimulator(rows_per_second=10_000_000.0) as sim:
        sim.faults.read_bytes_per_second = SLOW_READ
        ini = write_config(tmp_path, sim.url)
        config = load_config(ini, environ={})
        users = _big_file(tmp_path / "admin")
        before = users.stat().st_size
        log_path = tmp_path / "post.log"
        post = spawn(ini, "post", users, log_path=log_path)
        try:
            wait_for(lambda: _state(config, "users.txt") is FileState.SUBMITTING and sim.upload_attempts, what="upload")
            asked = time.monotonic()
            post.send_signal(signum)
            post.wait(WAIT)
            print(f"post ended {time.monotonic() - asked:.2f} s after the signal")  # for the report
        finally:
            _stop(post)
        assert post.returncode == 1
        said = log_path.read_text()
        assert "interrupted: users.txt was not sent (nothing reached Learn)" in said
        assert f"The file is at {users}" in said and "Traceback" not in said
        assert users.stat().st_size == before  # back where the admin had it, whole
        assert list(config.agent.processing_dir.iterdir()) == []
        row = _row(config, "users.txt")
        assert row is not None and row.state is FileState.FAILED and row.current_path == str(users)
        assert sim.uploads_snapshot() == []  # Learn never got a data set


@pytest.mark.parametrize("command", ["watch", "run"])
def test_sigterm_during_a_slow_upload_stops_the_service_and_the_file_stays_claimable(
    tmp_path: Path, command: str, capsys
) -> None:
    with LearnSimulator(rows_per_second=10_000_000.0) as sim:
        sim.faults.read_bytes_per_second = SLOW_READ
        ini = write_config(tmp_path, sim.url)
        config = load_config(ini, environ={})
        _big_file(tmp_path / "drop")
        log_path = tmp_path / f"{command}.log"
        agent = spawn(ini, command, log_path=log_path)
        try:
            wait_for(lambda: _state(config, "users.txt") is FileState.SUBMITTING and sim.upload_attempts, what="upload")
            asked = time.monotonic()
            agent.send_signal(signal.SIGTERM)
            agent.wait(WAIT)
            print(f"{command} ended {time.monotonic() - asked:.2f} s after SIGTERM")  # for the report
        finally:
            _stop(agent)
        assert agent.returncode == (0 if command == "watch" else 1)
        assert "Traceback" not in log_path.read_text()
        row = _row(config, "users.txt")
        assert row is not None and row.state is FileState.CLAIMED and "abandoned" in (row.message or "")
        assert (config.agent.processing_dir / "users.txt").exists()
        assert sim.uploads_snapshot() == []

        sim.faults.read_bytes_per_second = 0  # the next run sends it, once
        assert run(capsys, "-c", ini, "run")[0] == 0
        assert len(sim.uploads_snapshot()) == 1 and _state(config, "users.txt") is FileState.ARCHIVED


def test_a_stop_while_waiting_for_the_answer_to_a_whole_upload_never_sends_it_again(tmp_path: Path, capsys) -> None:
    with LearnSimulator() as sim:
        sim.faults.withhold_answers = 1  # accepted, but the answer never comes
        ini = write_config(tmp_path, sim.url)
        config = load_config(ini, environ={})
        (tmp_path / "admin").mkdir()
        users = write_flatfile(tmp_path / "admin" / "users.txt", PEOPLE_HEADER, person_rows(3))
        log_path = tmp_path / "post.log"
        post = spawn(ini, "post", users, log_path=log_path)
        try:
            wait_for(lambda: _state(config, "users.txt") is FileState.SENT and sim.uploads_snapshot(), what="sent")
            _stop(post, signal.SIGINT)
        finally:
            _stop(post)
        assert post.returncode == 1
        said = log_path.read_text()
        assert "interrupted: users.txt went to Learn whole, but the answer had not come" in said
        assert "To record it as UNCONFIRMED" in said and "Traceback" not in said

        status, out, _err = run(capsys, "-c", ini, "post", users)

        assert status == 1 and "result: UNCONFIRMED" in out
        assert len(sim.uploads_snapshot()) == 1 and _state(config, "users.txt") is FileState.UNCONFIRMED


def test_sigterm_while_watch_waits_for_the_answer_leaves_it_unconfirmed(tmp_path: Path, capsys) -> None:
    with LearnSimulator() as sim:
        sim.faults.withhold_answers = 1
        ini = write_config(tmp_path, sim.url)
        config = load_config(ini, environ={})
        write_flatfile(tmp_path / "drop" / "users.txt", PEOPLE_HEADER, person_rows(3))
        watch = spawn(ini, "watch", log_path=tmp_path / "watch.log")
        try:
            wait_for(lambda: _state(config, "users.txt") is FileState.SENT and sim.uploads_snapshot(), what="sent")
            _stop(watch, signal.SIGTERM)
        finally:
            _stop(watch)
        assert watch.returncode == 0 and _state(config, "users.txt") is FileState.SENT

        assert run(capsys, "-c", ini, "run")[0] == 1  # UNCONFIRMED needs a look

        assert len(sim.uploads_snapshot()) == 1 and _state(config, "users.txt") is FileState.UNCONFIRMED
