"""Running the command line in-process, as a test would type it, or as a real process (`spawn`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """`feed-agent ARGV...` through `agent.cli.main`; returns (exit status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def spawn(
    ini: Path,
    *argv: str | Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """`python -m agent -c INI ARGV...` as a real process (its own signals, its own pid), stdout and
    stderr appended to `log_path`; FEED_AGENT_* variables of the test run are not passed on unless in `env`.
    `prefix` runs it under another command (e.g. in a mount namespace of its own)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEED_AGENT")}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "agent", "-c", str(ini), *(str(a) for a in argv)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**clean, **(env or {})},
        )
