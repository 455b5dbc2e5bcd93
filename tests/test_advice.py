"""Suggested commands are one line that works as printed: absolute feed-agent, -c, route, operation."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from agent.advice import command_line, feed_agent_executable, post_command
from agent.cli import main
from agent.simulator import LearnSimulator
from tests.support.agentconf import write_config
from tests.support.learn import PEOPLE_HEADER, person_rows, write_flatfile
from tests.support.outcomes import outbox_messages


def test_the_executable_is_this_installations_by_absolute_path() -> None:
    words = feed_agent_executable()
    assert Path(words[0]).is_absolute()
    assert words == [str(Path(sys.executable).with_name("feed-agent"))] or words[1:] == ["-m", "agent"]


def test_post_command_names_config_route_and_operation_and_survives_spaces(tmp_path: Path) -> None:
    held = tmp_path / "failed dir" / "users weekly.txt"
    line = post_command(tmp_path / "agent.ini", held, route="weekly", operation="refresh", force=True)
    assert "\n" not in line
    words = shlex.split(line)
    assert words[-9:] == [
        "-c",
        str(tmp_path / "agent.ini"),
        "post",
        str(held),
        "--route",
        "weekly",
        "--operation",
        "refresh",
        "--force",
    ]
    assert command_line(None, "status").endswith("status") and " -c " not in command_line(None, "status")


def test_the_held_emails_command_copied_from_the_text_part_sends_one_refresh(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The admin's 7 am copy-paste: a shrunken weekly refresh is HELD by the guard; the command in
    the email's text part, run as printed in a shell, sends it once, as a refresh, on its own route."""
    weekly = tmp_path / "drop weekly"
    weekly.mkdir()
    route = f"[route:weekly]\nwatch = {weekly}\ntarget = learn\noperation = refresh\n"
    ini = write_config(tmp_path, learn_sim.url, target_extra=route)  # the first route is a nightly store
    write_flatfile(weekly / "users.txt", PEOPLE_HEADER, person_rows(40))
    assert main(["-c", str(ini), "run", "--route", "weekly"]) == 0
    write_flatfile(weekly / "users.txt", PEOPLE_HEADER, person_rows(10))  # 75 % fewer: the guard holds it
    assert main(["-c", str(ini), "run", "--route", "weekly"]) == 1
    assert [(u.slug, u.operation) for u in learn_sim.uploads_snapshot()] == [("person", "refresh")]
    capsys.readouterr()

    [held] = [
        m for m in outbox_messages(tmp_path / "var" / "outbox") if str(m["Subject"]).startswith("[feed-agent] HELD")
    ]
    text = held.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    executable = feed_agent_executable()[0]
    [command] = [line.strip() for line in text.splitlines() if executable in line]
    command = command[command.index(shlex.quote(executable)) :]  # the whole rest of the line, as printed
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEED_AGENT")}
    done = subprocess.run(command, shell=True, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(u.slug, u.operation, u.rows) for u in learn_sim.uploads_snapshot()] == [
        ("person", "refresh", 40),
        ("person", "refresh", 10),
    ]
