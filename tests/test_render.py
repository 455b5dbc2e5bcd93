"""Rendering: the shipped templates, an admin's override, and a broken override falling back."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from agent.advice import command_line
from agent.records import Status
from agent.render import TEMPLATE_NAMES, Renderer, prose, shipped_templates_dir
from tests.support.outcomes import batch, outcome


def test_shipped_templates_are_all_there() -> None:
    folder = shipped_templates_dir()
    assert sorted(p.name for p in folder.glob("*.j2")) == sorted(TEMPLATE_NAMES)


def test_templates_dir_overrides_one_file_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "per_file.txt.j2").write_text("CUSTOM {{ report.status.label }} {{ report.name }}\n")
    rendered = Renderer(tmp_path).file_report(outcome(Status.WARNINGS))
    assert rendered.text == "CUSTOM WARNINGS courses.txt\n"
    assert "What to do next" in rendered.html  # shipped HTML still used
    assert Renderer(tmp_path).summary(batch(outcome())).text.startswith("SUCCESS: summary")


def test_a_broken_override_falls_back_to_the_shipped_template(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "per_file.html.j2").write_text("<p>{{ report.no_such_field }}</p>")
    with caplog.at_level(logging.WARNING, logger="agent.reports"):
        rendered = Renderer(tmp_path).file_report(outcome(Status.SUCCESS))
    assert "What to do next" in rendered.html
    assert "per_file.html.j2" in caplog.text and "using the shipped" in caplog.text


def test_jinja_is_loaded_only_when_a_report_is_rendered() -> None:
    """With email off nothing is rendered, so a `post` must not pay for importing jinja2 at start-up."""
    probe = (
        "import sys; import agent.notify, agent.posting; from agent.render import Renderer; "
        "renderer = Renderer(); print('jinja2' in sys.modules); "
        "from tests.support.outcomes import outcome; renderer.file_report(outcome()); print('jinja2' in sys.modules)"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=root, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


# -- EmailReporter ------------------------------------------------------------------------------------------


def test_prose_wraps_words_but_keeps_a_command_whole_on_its_line() -> None:
    command = command_line(Path("/etc/feed agent/agent.ini"), "post", "/var/lib/feed-agent/failed/users.txt", "--force")
    text = "What is wrong: " + "the file shrank a lot, " * 6 + "send it anyway with: " + command + "\nThen check."
    lines = prose(text, 40, "  ").split("\n  ")
    assert all(len(line) <= 40 for line in lines if command not in line)
    assert command in lines and lines[-1] == "Then check."
    assert lines[lines.index(command) - 1].endswith("anyway with:")
