"""`agent.printable`: names people read never carry a raw control character."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.cli import main
from agent.printable import printable, printable_lines
from agent.simulator import LearnSimulator
from tests.support.agentconf import write_config
from tests.support.learn import PEOPLE_HEADER, person_rows, write_flatfile
from tests.support.smtp import SmtpServer


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("users.txt", "users.txt"),
        ("users\n2026-11-22 ERROR forged.txt", "users\\n2026-11-22 ERROR forged.txt"),
        ("a\rb\tc", "a\\rb\\tc"),
        ("\x1b[31mred\x1b[0m.txt", "\\x1b[31mred\\x1b[0m.txt"),
        ("invoice\u202etxt.exe", "invoice\\u202etxt.exe"),  # right-to-left override
        ("x\x7fy\x85z", "x\\x7fy\\x85z"),
        ("élèves-日本.txt", "élèves-日本.txt"),  # letters of any script stay as they are
        (os.fsdecode(b"caf\xe9.txt"), "caf\\xe9.txt"),  # Latin-1 bytes that are not UTF-8
    ],
)
def test_control_format_and_undecodable_characters_are_escaped(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    shown.encode("utf-8")  # always encodable: an email header or a log can carry it
    assert printable(shown) == shown  # escaping twice changes nothing


def test_printable_lines_keeps_the_lines_of_a_body_and_escapes_the_rest() -> None:
    assert printable_lines("first\n\tsecond \x1b[2J\r") == "first\n\tsecond \\x1b[2J\\r"


# ------------------------------------------------------------------------------------------------
# End to end: real files with such names, `feed-agent run`, a real SMTP server


def test_a_file_named_with_a_newline_gets_its_email_and_forges_no_line(
    tmp_path: Path, learn_sim: LearnSimulator, smtp_server: Callable[..., SmtpServer], capfd: pytest.CaptureFixture[str]
) -> None:
    server = smtp_server()
    email = f"transport = smtp\nhost = 127.0.0.1\nport = {server.port}\nsecurity = none\nto = sis@example.edu\n"
    ini = write_config(tmp_path, learn_sim.url, email=email)
    drop = tmp_path / "drop"
    forged = "users\n2026-11-22T07:00:05.123Z ERROR forged.txt"
    write_flatfile(drop / forged, PEOPLE_HEADER, person_rows(2))
    (drop / "junk\x1b[2J\rReason: all fine.txt").write_bytes(b"\x00\x01 not a feed")

    assert main(["-c", str(ini), "run"]) == 1  # the junk file is REJECTED

    subjects = sorted(str(m["Subject"]) for m in server.parsed())
    assert subjects == [
        "[feed-agent] REJECTED junk\\x1b[2J\\rReason: all fine.txt — unknown/store",
        "[feed-agent] SUCCESS users\\n2026-11-22T07:00:05.123Z ERROR forged.txt — person/store",
        "[feed-agent] Summary: 2 files — 1 SUCCESS, 1 REJECTED",
    ]
    for message in server.parsed():
        for kind in ("plain", "html"):
            text = message.get_body((kind,)).get_content()  # type: ignore[union-attr]
            assert "\x1b" not in text and "\nReason: all fine" not in text and "\n2026-11-22T07" not in text

    err = capfd.readouterr().err
    lines = err.splitlines()
    assert lines and all(line[:4].isdigit() or line.startswith("feed-agent: ") for line in lines), lines
    assert "users\\n2026-11-22T07:00:05.123Z ERROR forged.txt" in err and "\x1b" not in err

    [archived] = [p for p in (tmp_path / "var" / "archive").iterdir() if p.name.startswith("users")]
    assert "\n" in archived.name  # the file itself keeps its real name
    [reason] = (tmp_path / "var" / "failed").glob("*.reason.txt")
    text = reason.read_text(encoding="utf-8")
    assert "File: junk\\x1b[2J\\rReason: all fine.txt\n" in text
    assert "\x1b" not in text and "\r" not in text
    assert [line.split(":")[0] for line in text.splitlines() if line] == [
        "Time",
        "File",
        "Reason",
        "Fix the problem, then move junk\\x1b[2J\\rReason",
    ]


def test_post_and_status_print_no_raw_control_character_of_a_file_name(
    tmp_path: Path, learn_sim: LearnSimulator, capfd: pytest.CaptureFixture[str]
) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    name = "users\x1b]0;pwned\x07\x1b[2J.txt"
    path = write_flatfile(tmp_path / name, PEOPLE_HEADER, person_rows(2))

    assert main(["-c", str(ini), "post", str(path)]) == 0
    assert main(["-c", str(ini), "status"]) == 0

    captured = capfd.readouterr()
    everything = captured.out + captured.err
    assert "\x1b" not in everything and "\x07" not in everything
    assert "users\\x1b]0;pwned\\x07\\x1b[2J.txt" in captured.out


def test_inspect_shows_a_name_with_a_newline_on_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = write_flatfile(tmp_path / "users\nforged.txt", PEOPLE_HEADER, person_rows(2))
    assert main(["inspect", str(path)]) == 0
    out = capfd.readouterr().out
    [line] = [line for line in out.splitlines() if "forged" in line]
    assert "users\\nforged.txt" in line and line.split()[1] == "users\\nforged.txt"
