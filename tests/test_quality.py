"""The quality gate, run with the tests so that CI and a newcomer run the same thing.

`ruff format --check`, `ruff check` (rules and the complexity limit in ruff.toml) and
`mypy --strict agent` must all be clean. They run from the virtual environment `install.sh --dev`
made; their output is shown when they fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECKS = {
    "ruff format --check": [sys.executable, "-m", "ruff", "format", "--check", "."],
    "ruff check": [sys.executable, "-m", "ruff", "check", "."],
    "mypy --strict agent": [sys.executable, "-m", "mypy", "--strict", "agent"],
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_quality_gate(name: str) -> None:
    done = subprocess.run(CHECKS[name], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
