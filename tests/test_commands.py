"""The commands beside the loop (`post`, `status`, `check`), through the command line as an admin types them."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.callbacks import new_token, token_digest
from agent.cli import main
from agent.clock import utcnow
from agent.config import load_config
from agent.journal import Journal
from agent.receiver import Receiver
from agent.simulator import LearnSimulator
from tests.support.agentconf import write_config
from tests.support.learn import PEOPLE_HEADER, person_rows, write_flatfile


def _post_setup(tmp_path: Path, sim: LearnSimulator, **kwargs: Any) -> tuple[Path, Path]:
    ini = write_config(tmp_path, sim.url, **kwargs)
    users = write_flatfile(tmp_path / "users.txt", PEOPLE_HEADER, person_rows(5))
    return ini, users


def test_post_sends_exact_bytes_polls_prints_code_and_archives(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ini, users = _post_setup(tmp_path, learn_sim)
    digest = hashlib.sha256(users.read_bytes()).hexdigest()

    assert main(["-c", str(ini), "post", str(users)]) == 0

    (upload,) = learn_sim.uploads_snapshot()
    assert (upload.slug, upload.operation, upload.sha256) == ("person", "store", digest)
    out = capsys.readouterr().out
    assert upload.uid in out and "poll:" in out and "result: SUCCESS" in out
    (archived,) = (tmp_path / "var" / "archive").iterdir()
    assert re.fullmatch(r"users\.\d{8}T\d{6}Z\.txt", archived.name)
    assert f"file: {archived}" in out and not users.exists()


@pytest.mark.timeout(60)
def test_post_shows_the_time_left_on_its_progress_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = LearnSimulator(rows_per_second=500, start_delay=0.2).start()
    try:
        ini = write_config(tmp_path, sim.url)
        users = write_flatfile(tmp_path / "users.txt", PEOPLE_HEADER, person_rows(1000))
        assert main(["-c", str(ini), "post", str(users)]) == 0
    finally:
        sim.stop()
    polls = [line for line in capsys.readouterr().out.splitlines() if "poll:" in line]
    assert any(line.endswith("under a minute left") for line in polls), polls


def test_post_with_object_operation_and_keep(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    ini, users = _post_setup(tmp_path, learn_sim)
    assert main(["-c", str(ini), "post", str(users), "--operation", "delete", "--keep"]) == 0
    assert [(u.slug, u.operation) for u in learn_sim.uploads_snapshot()] == [("person", "delete")]
    assert users.exists()


def test_post_wrong_password_fails_plainly_without_the_password(
    tmp_path: Path, learn_sim: LearnSimulator, capfd: pytest.CaptureFixture[str]
) -> None:
    ini, users = _post_setup(tmp_path, learn_sim, password="not-the-right-pw")

    assert main(["-c", str(ini), "post", str(users)]) == 1

    captured = capfd.readouterr()
    assert "refused the username/password" in captured.out
    assert (tmp_path / "var" / "failed" / "users.txt").exists()
    reason = (tmp_path / "var" / "failed" / "users.txt.reason.txt").read_text(encoding="utf-8")
    everything = (
        captured.out
        + captured.err
        + reason
        + "".join(p.read_text(encoding="utf-8", errors="replace") for p in (tmp_path / "var" / "outbox").iterdir())
    )
    assert "not-the-right-pw" not in everything


def test_post_two_500s_then_success(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real back-off (1 s, then 2 s) is kept: this is what an admin's post goes through."""
    ini, users = _post_setup(tmp_path, learn_sim)
    learn_sim.faults.fail_uploads = 2
    assert main(["-c", str(ini), "post", str(users)]) == 0
    assert "result: SUCCESS" in capsys.readouterr().out
    assert learn_sim.upload_attempts == 3 and len(learn_sim.uploads_snapshot()) == 1


def test_post_never_finishing_ends_timed_out(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ini, users = _post_setup(tmp_path, learn_sim, timeout_minutes=0.01)
    learn_sim.faults.stuck = True
    assert main(["-c", str(ini), "post", str(users)]) == 1
    assert "result: TIMED OUT" in capsys.readouterr().out


def test_post_refresh_guard_and_force(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_config(tmp_path, learn_sim.url, operation="refresh")
    full = write_flatfile(tmp_path / "users.txt", PEOPLE_HEADER, person_rows(50))
    assert main(["-c", str(ini), "post", str(full)]) == 0
    short = write_flatfile(tmp_path / "users.txt", PEOPLE_HEADER, person_rows(10))
    assert main(["-c", str(ini), "post", str(short)]) == 1
    out = capsys.readouterr().out
    assert "result: HELD" in out and "--force" in out
    held = tmp_path / "var" / "failed" / "users.txt"
    assert main(["-c", str(ini), "post", str(held), "--force"]) == 0
    assert len(learn_sim.uploads_snapshot()) == 2


def test_status_lists_files_and_batches(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ini, users = _post_setup(tmp_path, learn_sim)
    assert main(["-c", str(ini), "status"]) == 0
    assert "No files handled yet" in capsys.readouterr().out
    assert main(["-c", str(ini), "post", str(users)]) == 0
    capsys.readouterr()
    assert main(["-c", str(ini), "status", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "users.txt" in out and "SUCCESS" in out and learn_sim.uploads_snapshot()[0].uid in out


def test_check_reports_each_item(tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    assert main(["-c", str(ini), "check"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "credentials accepted" in out and "FAIL" not in out
    assert learn_sim.uploads_snapshot() == []
    bad = write_config(tmp_path, learn_sim.url, password="wrong-password-here")
    assert main(["-c", str(bad), "check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "wrong-password-here" not in out


def _with_webhook(tmp_path: Path, sim: LearnSimulator, webhook: str) -> Path:
    return write_config(tmp_path, sim.url, email="transport = file\nto = admins@example.edu\n\n[webhook]\n" + webhook)


def test_status_lists_jobs_awaiting_notification_with_their_age(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = _with_webhook(tmp_path, learn_sim, "listen = 127.0.0.1:0\n")
    config = load_config(ini, environ={})
    now = utcnow()
    with Journal(config.agent.journal_path) as journal:
        for name, job_id, hours_ago in (("warehouse.csv", "J-OLD", 4.0), ("gifts.csv", "J-NEW", 0.5)):
            file_id = journal.add_file(route="sis", target="learn", name=name, source_path=tmp_path / name)
            journal.job_expected(file_id, new_token())
            queued = now - timedelta(hours=hours_ago)
            journal.job_queued(file_id, job_id, queued, queued + timedelta(hours=3))
        done = journal.add_file(route="sis", target="learn", name="donors.csv", source_path=tmp_path / "d")
        token = new_token()
        journal.job_expected(done, token_digest(token))
        journal.job_queued(done, "J-DONE", now, now + timedelta(hours=3))
        journal.job_settled(token_digest(token), succeeded=False, message="Row 12 is bad", payload=b"{}", at=now)

    assert main(["-c", str(ini), "status"]) == 0

    out = capsys.readouterr().out
    section = out.split("Jobs awaiting notification:", 1)[1]
    old = next(line for line in section.splitlines() if "J-OLD" in line)
    new = next(line for line in section.splitlines() if "J-NEW" in line)
    assert "warehouse.csv" in old and "4 h 00 min" in old and "NOT NOTIFIED" in old
    assert "gifts.csv" in new and "30 min" in new and "NOT NOTIFIED" not in new
    ended = out.split("Jobs ended (as AlumnIQ reported):", 1)[1]
    assert "J-DONE" not in section.split("Jobs ended")[0]
    assert re.search(r"donors\.csv\s+J-DONE\s+FAILED\s+\S+ \S+\s+Row 12 is bad", ended)


def test_check_reaches_the_listener_and_warns_about_plain_http(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    with Receiver(("127.0.0.1", 0), lambda _token, _raw: False) as receiver:
        port = receiver.address[1]
        ini = _with_webhook(tmp_path, learn_sim, f"listen = 127.0.0.1:{port}\n")
        assert main(["-c", str(ini), "check"]) == 0
        out = capsys.readouterr().out
        assert "OK   webhook listener" in out and f"127.0.0.1:{port} answers" in out
        assert "WARN webhook public_url" in out and "is not https" in out
        secure = _with_webhook(
            tmp_path, learn_sim, f"listen = 127.0.0.1:{port}\npublic_url = https://feeds.example.edu/aq\n"
        )
        assert main(["-c", str(secure), "check"]) == 0
        assert "WARN" not in capsys.readouterr().out
    assert main(["-c", str(ini), "check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL webhook listener" in out and "feed-agent watch" in out
