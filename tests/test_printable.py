"""`agent.printable`: names people read never carry a raw control character."""

from __future__ import annotations

import os

import pytest

from agent.printable import printable, printable_lines


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
