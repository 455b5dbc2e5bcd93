"""Telling a running feed-agent from a dead one, a zombie, another program, or a reused pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from agent.processes import _looks_like_feed_agent, is_feed_agent
from tests.support.net import free_port
from tests.support.waiting import wait_for


def test_this_process_is_running() -> None:
    assert is_feed_agent(os.getpid())


def test_no_pid_or_a_finished_feed_agent_is_not_running() -> None:
    done = subprocess.Popen([sys.executable, "-m", "agent", "failpoints"], stdout=subprocess.DEVNULL)
    assert done.wait(30) == 0
    assert not is_feed_agent(done.pid)
    assert not is_feed_agent(None)
    assert not is_feed_agent(0)


def test_a_feed_agent_is_running_until_killed_and_a_zombie_is_not() -> None:
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "simulate", "--port", str(free_port())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        now = datetime.now(timezone.utc)
        wait_for(lambda: is_feed_agent(agent.pid, started_by=now + timedelta(seconds=5)), what="a running feed-agent")
        # A row written before this process started cannot be its own: the pid was reused.
        assert not is_feed_agent(agent.pid, started_by=now - timedelta(hours=1))
        agent.send_signal(signal.SIGKILL)
        wait_for(lambda: not is_feed_agent(agent.pid), what="the killed process (a zombie until reaped)")
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.wait(30)


def test_another_program_with_the_pid_is_not_a_feed_agent() -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not is_feed_agent(other.pid)
    finally:
        other.kill()
        other.wait(30)


def test_the_command_lines_a_feed_agent_runs_with() -> None:
    assert _looks_like_feed_agent(["/opt/feed-agent/.venv/bin/python", "/opt/feed-agent/.venv/bin/feed-agent", "post"])
    assert _looks_like_feed_agent(["/usr/bin/python3", "-m", "agent", "-c", "x.ini", "watch"])
    assert _looks_like_feed_agent(["python", "/srv/feed-agent/agent/__main__.py", "run"])
    assert not _looks_like_feed_agent(["/usr/bin/python3", "-m", "http.server"])
    assert not _looks_like_feed_agent(["vim", "feed-agent.txt"])
