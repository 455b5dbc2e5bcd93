"""Failpoints: FEED_AGENT_FAILPOINT=NAME[:N] kills the process right after the Nth pass of a step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from agent import failpoints
from tests.support.cli import run


def _child(code: str, value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != failpoints.VARIABLE}
    if value is not None:
        env[failpoints.VARIABLE] = value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


PASS_THREE_TIMES = (
    "from agent import failpoints\n"
    "for i in range(3):\n"
    "    failpoints.hit('poll-journaled')\n"
    "    print('passed', i + 1, flush=True)\n"
)


def test_the_process_dies_by_sigkill_right_after_the_nth_pass() -> None:
    done = _child(PASS_THREE_TIMES, "poll-journaled:2")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split("\n")[:-1] == ["passed 1"]
    assert "failpoint poll-journaled:2" in done.stderr


def test_the_first_pass_by_default_and_other_names_never() -> None:
    assert _child(PASS_THREE_TIMES, "poll-journaled").stdout == ""
    survived = _child(PASS_THREE_TIMES, "body-sent")
    assert survived.returncode == 0 and survived.stdout.count("passed") == 3


def test_unset_means_nothing_armed() -> None:
    done = _child("from agent import failpoints\nprint(failpoints.armed(), failpoints.PROBLEM)", None)
    assert done.stdout.strip() == "None None"


@pytest.mark.parametrize("value", ["no-such-step", "body-sent:x", "body-sent:0"])
def test_a_bad_value_is_a_configuration_error(value: str, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != failpoints.VARIABLE}
    env[failpoints.VARIABLE] = value
    done = subprocess.run(
        [sys.executable, "-m", "agent", "-c", str(tmp_path / "none.ini"), "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "FEED_AGENT_FAILPOINT" in done.stderr and "Traceback" not in done.stderr


def test_the_failpoints_command_lists_the_names_and_is_not_in_the_main_help(capsys) -> None:
    status, out, _ = run(capsys, "failpoints")
    assert status == 0 and out.split() == list(failpoints.NAMES)
    assert {"claim-renamed", "body-sent", "receipt-received", "report-mailed"} <= set(failpoints.NAMES)
    with pytest.raises(SystemExit):
        run(capsys, "--help")
    assert "failpoints" not in capsys.readouterr().out
