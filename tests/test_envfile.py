"""`agent.envfile`: a `.env` file read literally, ambiguous lines refused by file and line, never by value."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.envfile import read_env_file
from agent.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def test_comments_blank_lines_export_and_quotes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# secrets\n\nexport A=plain\nB='single $ {x} # kept'\nC=\"double # kept\"\nD=\nE=tail#not-a-comment\n",
    )
    assert read_env_file(path) == {
        "A": "plain",
        "B": "single $ {x} # kept",
        "C": "double # kept",
        "D": "",
        "E": "tail#not-a-comment",
    }


def test_a_comment_after_a_quoted_value_is_a_comment(tmp_path: Path) -> None:
    assert read_env_file(write(tmp_path, "A='x y' # the password\n")) == {"A": "x y"}


def test_the_line_number_counts_blank_lines_before_the_binding(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 5: the value of B is not quoted"):
        read_env_file(write(tmp_path, "A=1\n\n# b follows\n\nB=two words #3\n"))


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-file"
    folder.mkdir()
    with pytest.raises(ConfigError, match="the env_file cannot be read"):
        read_env_file(folder)
