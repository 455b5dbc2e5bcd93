"""`agent.strays` through `watch` and `run`: a link, a pipe or a folder in the drop folder gets one
REJECTED email saying what was found; links and pipes are moved aside, a folder stays (reported once,
also across restarts and runs)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from agent.cli import main
from agent.daemon import Agent
from agent.settings import Config
from agent.simulator import LearnSimulator
from tests.support.agentconf import load, write_config
from tests.support.learn import PEOPLE_HEADER, person_rows, write_flatfile
from tests.support.smtp import SmtpServer
from tests.support.waiting import wait_for


@contextmanager
def watching(config: Config) -> Iterator[Agent]:
    agent = Agent(config)  # its own EmailReporter: .eml files in the outbox (transport = file)
    thread = threading.Thread(target=agent.watch, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.stop.set()
        agent.wake.set()
        thread.join(timeout=30)
        agent.close()
    assert not thread.is_alive()


def emails(config: Config) -> list[EmailMessage]:
    found = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in config.agent.outbox_dir.glob("*.eml")]
    return [m for m in found if isinstance(m, EmailMessage)]


def rejected(config: Config) -> dict[str, str]:
    """Subject → plain body of every REJECTED email so far."""
    found = {}
    for message in emails(config):
        if " REJECTED " in str(message["Subject"]):
            found[str(message["Subject"])] = str(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    return found


def test_watch_reports_a_link_a_pipe_and_a_folder_once_each(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    config = load(tmp_path, learn_sim.url, settle=0.2)
    drop = config.route().watch
    outside = write_flatfile(tmp_path / "outside.txt", PEOPLE_HEADER, person_rows(2))
    (drop / "link.txt").symlink_to(outside)
    os.mkfifo(drop / "pipe.txt")
    (drop / "exports").mkdir()
    inside = write_flatfile(drop / "exports" / "users.txt", PEOPLE_HEADER, person_rows(1))

    with watching(config) as agent:
        wait_for(lambda: len(rejected(config)) == 3, what="three REJECTED emails")
        agent.watcher.scan()  # what every rescan does
        agent.watcher.scan()
        write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(2))
        wait_for(lambda: len(learn_sim.uploads_snapshot()) == 1, what="a regular file still flows")

    reports = rejected(config)
    assert sorted(reports) == [
        "[feed-agent] REJECTED exports — unknown/store",
        "[feed-agent] REJECTED link.txt — unknown/store",
        "[feed-agent] REJECTED pipe.txt — unknown/store",
    ]
    folder = " ".join(reports["[feed-agent] REJECTED exports — unknown/store"].split())
    assert "it is a folder, and only regular files are processed" in folder
    assert f"Nothing was moved: the folder stays in {drop} and is not reported again" in folder
    link = " ".join(reports["[feed-agent] REJECTED link.txt — unknown/store"].split())
    assert "it is a symbolic link" in link and "the link only: what it points to was not touched" in link
    assert "it is a named pipe" in " ".join(reports["[feed-agent] REJECTED pipe.txt — unknown/store"].split())

    failed = config.agent.failed_dir
    assert (failed / "link.txt").is_symlink() and (failed / "link.txt.reason.txt").is_file()
    assert (failed / "pipe.txt").exists() and (failed / "pipe.txt.reason.txt").is_file()
    reason = (failed / "link.txt.reason.txt").read_text(encoding="utf-8")
    assert "is a symbolic link" in reason and "Only regular files are processed." in reason
    assert f"Moving it back would only get it rejected again: put a regular file with the data into {drop}" in reason
    assert inside.is_file() and outside.is_file()  # the folder and what it holds stay; the link target too
    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["person"]

    with watching(config):  # a restart: the folder was reported before
        write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(3))
        wait_for(lambda: len(learn_sim.uploads_snapshot()) == 2, what="the next regular file")
    assert len(rejected(config)) == 3


def test_run_emails_a_stray_through_smtp_exits_1_and_names_a_folder_only_once(
    tmp_path: Path,
    learn_sim: LearnSimulator,
    smtp_server: Callable[..., SmtpServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = smtp_server()
    email = f"transport = smtp\nhost = 127.0.0.1\nport = {server.port}\nsecurity = none\nto = sis@example.edu\n"
    ini = write_config(tmp_path, learn_sim.url, email=email)
    drop = tmp_path / "drop"
    (drop / "spring\nterm").mkdir()
    os.mkfifo(drop / "feed.fifo")

    assert main(["-c", str(ini), "run", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "feed-agent: spring\\nterm REJECTED: a folder, not a file (left in place)\n" in err
    assert f"feed-agent: feed.fifo REJECTED: a named pipe, not a file (moved to {tmp_path / 'var' / 'failed'}" in err
    subjects = sorted(str(m["Subject"]) for m in server.parsed())
    assert subjects == [
        "[feed-agent] REJECTED feed.fifo — unknown/store",
        "[feed-agent] REJECTED spring\\nterm — unknown/store",
    ]

    assert main(["-c", str(ini), "run", "--quiet"]) == 0  # the folder is still there, reported before
    assert capsys.readouterr().err == ""
    assert len(server.parsed()) == 2 and (drop / "spring\nterm").is_dir()


def test_a_stray_is_emailed_even_with_per_file_off(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    """No batch summary lists it, so `per_file = no` (summaries only) must not make it silent."""
    ini = write_config(tmp_path, learn_sim.url, email="transport = file\nto = sis@example.edu\nper_file = no\n")
    (tmp_path / "drop" / "exports").mkdir()
    write_flatfile(tmp_path / "drop" / "users.txt", PEOPLE_HEADER, person_rows(1))
    assert main(["-c", str(ini), "run"]) == 1
    config = load(tmp_path, learn_sim.url, email="transport = file\nto = sis@example.edu\nper_file = no\n")
    subjects = sorted(str(m["Subject"]) for m in emails(config))
    assert subjects == ["[feed-agent] REJECTED exports — unknown/store", "[feed-agent] Summary: 1 files — 1 SUCCESS"]
