"""Running the command line in-process, as a test would type it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """`feed-agent ARGV...` through `agent.cli.main`; returns (exit status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err
