"""Suggested commands are one line that works as printed: absolute feed-agent, -c, route, operation."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from agent.advice import command_line, feed_agent_executable, post_command


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
